//! intercept: one service runs on the laptop inside the box's stack.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::box_arg::BoxFlag;
use super::context::Global;
use crate::intercept::hold;
use crate::intercept::plan::{self, Plan};
use crate::intercept::session::{self, Ended, Intercept};
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
    let by = holder(&ctx.owner().to_string());
    print_plan(&plan, &info.name);
    let onbox = ctx.shell(&info).await?;
    let alias = host_alias(&info.name);
    let intercept = Intercept { ssh_config: &config, alias: &alias, onbox: &onbox, manifest: &manifest.manifest, plan: &plan, by: &by };
    let result = intercept.run(&args.command).await;
    // That session idled through the intercept; a lost connection may
    // never answer its goodbye.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), onbox.close()).await;
    let ended = result?;
    if let Ended::Command(_) = ended {
        let service = &plan.service;
        let look = async { ctx.on_box(&info, async |shell| Ok::<_, anyhow::Error>(session::wait_restored(shell, &manifest.manifest, service).await?)).await };
        match tokio::time::timeout(std::time::Duration::from_secs(45), look).await {
            Ok(Ok(true)) => eprintln!("intercept ended: {service} runs on box {} again", info.name),
            Ok(Ok(false)) | Err(_) => eprintln!(
                "intercept ended, but {service} is not up on box {} yet: see `workstation services {service}` and `workstation logs {service}`",
                info.name
            ),
            Ok(Err(e)) => eprintln!("intercept ended; could not look at {service} on box {}: {e:#}", info.name),
        }
    }
    Ok(match ended {
        Ended::Command(status) => {
            use std::os::unix::process::ExitStatusExt;
            let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            ExitCode::from(u8::try_from(code).unwrap_or(255))
        }
        Ended::ConnectionLost => {
            eprintln!(
                "intercept ended: the connection to box {} was lost; your command was stopped, and the box starts {} again by itself within {} s",
                info.name,
                plan.service,
                hold::LEASE.as_secs()
            );
            ExitCode::FAILURE
        }
    })
}

/// `owner@host`, reduced to what a holder name may hold.
fn holder(owner: &str) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or fails.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        String::from_utf8_lossy(&buf[..buf.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned()
    } else {
        String::new()
    };
    let clean = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(48).collect::<String>();
    let by = format!("{}@{}", clean(owner), clean(&host));
    if crate::stack::holds::valid_holder(&by) {
        by
    } else {
        clean(owner)
    }
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
