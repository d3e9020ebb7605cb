//! intercept: one service runs on the laptop inside the box's stack.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::box_arg::BoxFlag;
use super::context::Global;
use crate::intercept::branch;
use crate::intercept::end::{self, Restored};
use crate::intercept::hold;
use crate::intercept::personal::Personal;
use crate::intercept::plan::{self, Plan};
use crate::intercept::session::{Ended, Intercept};
use crate::manifest::Manifest;
use crate::ssh::ssh_config::host_alias;
use crate::stack::front::Match;

/// Run one service on this laptop inside the box's stack (with your
/// debugger, hot reload, ...), the rest of the stack staying on the box.
///
/// On your own box, SERVICE is stopped under supervisord and each of its
/// ports on the box now reaches this laptop (the box's other services, and
/// colleagues who `share` the box, talk to your process). CMD runs here
/// with SERVICE's environment from the manifest; every other service and
/// store of the box is forwarded to this laptop's loopback, at its own
/// port when free there, else at another one with the environment's
/// `127.0.0.1:PORT` / `localhost:PORT` addresses rewritten to match.
/// CMD's exit status is this command's. When CMD exits (or on Ctrl-C), the
/// forwards close and SERVICE runs on the box again; if this laptop
/// vanishes (killed, asleep, offline), the box takes SERVICE back by
/// itself within about 10 s. Only TCP ports the manifest declares are
/// forwarded.
///
/// Examples:
///   workstation intercept api -- cargo run
///   workstation intercept web --port 3000:3001 -- npm run dev -- --port 3001
///   workstation intercept api --box api-test -- dlv debug ./cmd/api
///   workstation intercept api --env payments/staging --header x-dev=alice -- cargo run
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InterceptArgs {
    /// The service (a [services.NAME] of the manifest).
    service: String,
    #[command(flatten)]
    target: BoxFlag,
    /// A team box instead, TEAM/ENV (with --header or --mirror: the team's
    /// box keeps serving everyone else).
    #[arg(long, value_name = "TEAM/ENV")]
    env: Option<crate::env::EnvRef>,
    /// Send box port BOX to local port LOCAL instead of the same port
    /// (repeatable).
    #[arg(long = "port", value_name = "BOX:LOCAL")]
    ports: Vec<PortMap>,
    /// Only requests with this header reach this laptop (NAME=VALUE, such
    /// as x-dev=alice); SERVICE keeps running on the box for the rest.
    #[arg(long, value_name = "NAME=VALUE", value_parser = Match::header)]
    header: Option<Match>,
    /// The box's SERVICE answers every request; this laptop gets a copy of
    /// each (its answers are dropped).
    #[arg(long, conflicts_with = "header")]
    mirror: bool,
    /// Give CMD its own copy of this postgres or redis store (repeatable;
    /// with --header or --mirror).
    #[arg(long = "branch-db", value_name = "STORE")]
    branch_db: Vec<String>,
    /// Keep the --branch-db postgres copies when the intercept ends (your
    /// next intercept with --branch-db uses a kept copy again).
    #[arg(long, requires = "branch_db")]
    keep: bool,
    /// The command to run here (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct PortMap {
    on_box: u16,
    local: u16,
}

impl std::str::FromStr for PortMap {
    type Err = String;

    fn from_str(s: &str) -> Result<PortMap, String> {
        let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
        match s.split_once(':').map(|(b, l)| (port(b), port(l))) {
            Some((Some(on_box), Some(local))) => Ok(PortMap { on_box, local }),
            _ => Err(format!("{s:?} is not BOX:LOCAL (two ports, 1-65535), e.g. 8080:18080")),
        }
    }
}

pub async fn intercept(global: &Global, args: InterceptArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let overrides: Vec<(u16, u16)> = args.ports.iter().map(|p| (p.on_box, p.local)).collect();
    let plan = plan::plan(&manifest.manifest, &args.service, &overrides, plan::loopback_free, plan::loopback_any)?;
    let matches = if args.mirror { Some(Match::Mirror) } else { args.header.clone() };
    if let Some(matches) = matches {
        return personal(global, &args, &manifest.manifest, &plan, &matches).await;
    }
    if !args.branch_db.is_empty() {
        anyhow::bail!("--branch-db needs --header or --mirror: a whole intercept takes the service from everyone, so its data is yours already");
    }
    if let Some(env) = &args.env {
        anyhow::bail!("--env {env} needs --header or --mirror: a whole intercept would take the service from the whole team; add --header x-dev=$USER");
    }
    let (ctx, info) = super::ssh::running_box(global, &args.target.get()).await?;
    let config = ctx.write_ssh_config(false).await?;
    let by = end::holder(&ctx.owner().to_string());
    print_plan(&plan, &info.name);
    let onbox = ctx.shell(&info).await?;
    let alias = host_alias(&info.name);
    let ssh_options = ctx.openssh_options();
    let intercept =
        Intercept { ssh_config: &config, ssh_options: &ssh_options, alias: &alias, onbox: &onbox, manifest: &manifest.manifest, plan: &plan, by: &by };
    let result = intercept.run(&args.command).await;
    end::close(onbox).await;
    let ended = result?;
    let service = &plan.service;
    if let Ended::Command(_) = ended {
        match end::restored(&ctx, &info, &manifest.manifest, service).await {
            Restored::Up => eprintln!("intercept ended: {service} runs on box {} again", info.name),
            Restored::NotYet => eprintln!(
                "intercept ended, but {service} is not up on box {} yet: see `workstation services {service}` and `workstation logs {service}`",
                info.name
            ),
            Restored::Unknown(e) => eprintln!("intercept ended; could not look at {service} on box {}: {e}", info.name),
        }
    }
    Ok(match ended {
        Ended::Command(status) => super::ssh::exit_code(status),
        Ended::ConnectionLost => {
            eprintln!(
                "intercept ended: the connection to box {} was lost; your command was stopped, and the box starts {service} again by itself within {} s",
                info.name,
                hold::LEASE.as_secs()
            );
            ExitCode::FAILURE
        }
    })
}

/// `--header`/`--mirror`: the box's service keeps running; its front
/// routes the matching requests here.
async fn personal(global: &Global, args: &InterceptArgs, manifest: &Manifest, plan: &Plan, matches: &Match) -> Result<ExitCode> {
    let service = &plan.service;
    let Some((front_port, to)) = manifest.services[service].front_target() else {
        anyhow::bail!(
            "{service} has no front, so the box cannot route only your requests to this laptop: add `front = {{ port = PORT }}` to [services.{service}] (clients use PORT, the service keeps its own), run `workstation up`, and try again (docs/team.md)"
        );
    };
    let local_port = plan.incoming.iter().find(|i| i.box_port == to).map_or(to, |i| i.local_port);
    let specs = branch::specs(manifest, &args.branch_db, args.keep)?;
    let (ctx, info) = super::ssh::running_target(global, &args.target.get(), args.env.as_ref()).await?;
    let config = ctx.write_ssh_config(false).await?;
    let by = end::holder(&ctx.owner().to_string());
    eprintln!("intercepting {service} on box {} for requests with {}:", info.name, matches.describe());
    eprintln!("  box :{front_port} (its proxy) -> this laptop 127.0.0.1:{local_port}; everyone else's requests reach the box's {service} (:{to})");
    print_outgoing(plan);
    let onbox = ctx.shell(&info).await?;
    let alias = ctx.ssh_alias(&info);
    let ssh_options = ctx.openssh_options();
    let session = Personal {
        ssh_config: &config,
        ssh_options: &ssh_options,
        alias: &alias,
        onbox: &onbox,
        plan,
        by: &by,
        matches,
        local_port,
        branches: &specs,
        keep: args.keep,
    };
    let result = session
        .run(&args.command, |branches| {
            let mut environment = plan.environment.clone();
            branch::point_at(&mut environment, plan, &specs, branches);
            eprintln!("routed: run your service on 127.0.0.1:{local_port}");
            environment
        })
        .await;
    end::close(onbox).await;
    let kept = if args.keep && !specs.is_empty() { "; the data branches are kept" } else { "" };
    match result? {
        Ended::Command(status) => {
            eprintln!("intercept ended: the box's proxy sends every request to the box's {service} again{kept}");
            Ok(super::ssh::exit_code(status))
        }
        Ended::ConnectionLost => {
            eprintln!(
                "intercept ended: the connection to box {} was lost; your command was stopped, and the box removes your route by itself within {} s",
                info.name,
                crate::intercept::hold::LEASE.as_secs()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_outgoing(plan: &Plan) {
    for o in &plan.outgoing {
        let moved = if o.local_port != o.box_port { " (its port is taken here; the environment says so)" } else { "" };
        eprintln!("  this laptop 127.0.0.1:{} -> {} on the box :{}{moved}", o.local_port, o.program, o.box_port);
    }
}

fn print_plan(plan: &Plan, name: &str) {
    eprintln!("intercepting {} on box {name}:", plan.service);
    for i in &plan.incoming {
        eprintln!("  box :{} -> this laptop 127.0.0.1:{}", i.box_port, i.local_port);
    }
    print_outgoing(plan);
}
