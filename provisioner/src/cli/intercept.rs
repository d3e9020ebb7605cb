//! intercept: one service runs on the laptop inside the box's stack.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::box_arg::BoxFlag;
use super::context::Global;
use crate::intercept::end::{self, Restored};
use crate::intercept::hold;
use crate::intercept::plan::{self, Plan};
use crate::intercept::session::{Ended, Intercept};
use crate::ssh::ssh_config::host_alias;

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
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InterceptArgs {
    /// The service (a [services.NAME] of the manifest).
    service: String,
    #[command(flatten)]
    target: BoxFlag,
    /// Send box port BOX to local port LOCAL instead of the same port
    /// (repeatable).
    #[arg(long = "port", value_name = "BOX:LOCAL")]
    ports: Vec<PortMap>,
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

fn print_plan(plan: &Plan, name: &str) {
    eprintln!("intercepting {} on box {name}:", plan.service);
    for i in &plan.incoming {
        eprintln!("  box :{} -> this laptop 127.0.0.1:{}", i.box_port, i.local_port);
    }
    for o in &plan.outgoing {
        let moved = if o.local_port != o.box_port { " (its port is taken here; the environment says so)" } else { "" };
        eprintln!("  this laptop 127.0.0.1:{} -> {} on the box :{}{moved}", o.local_port, o.program, o.box_port);
    }
}
