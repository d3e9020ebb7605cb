//! hosts, share: what this laptop's hostnames point at, and switching them
//! to a colleague's box and back.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use super::output::{self, Output};
use super::Global;
use crate::hosts::{self, Pointed, Status};
use crate::name::{BoxName, Owner};

/// Show which box this laptop's hostnames point at (through the hosts agent).
#[derive(Debug, Args)]
pub struct HostsArgs {}

/// Point the manifest's hostnames at a colleague's box for a demo, or back
/// at yours with --off. Without arguments, show where they point.
///
/// Your browser and tools then reach the colleague's services directly, so
/// their box sees the traffic and does not stop itself as idle.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// The colleague (box owner) whose box to use.
    #[arg(conflicts_with = "off")]
    owner: Option<Owner>,
    /// Which of their boxes (or of yours, with --off).
    #[arg(long = "box", default_value_t = BoxName::default(), value_name = "NAME")]
    box_name: BoxName,
    /// Point the hostnames back at your own box.
    #[arg(long)]
    off: bool,
}

pub async fn hosts(global: &Global, _args: HostsArgs) -> Result<ExitCode> {
    let status = crate::hosts::HostsAgent::from_env().status().await?;
    print_status(global.output, &status)
}

pub async fn share(global: &Global, args: ShareArgs) -> Result<ExitCode> {
    let manifest = global.optional_manifest()?;
    let ctx = global.context(manifest.as_ref()).await?;
    if args.owner.is_none() && !args.off {
        return print_status(global.output, &ctx.hosts.status().await?);
    }
    let Some(manifest) = manifest.filter(|m| !m.manifest.hostnames.is_empty()) else {
        bail!("the manifest lists no hostnames to share; add hostnames = [\"api.dev.example.com\"] to workstation.toml");
    };
    let names = &manifest.manifest.hostnames;
    let pointed = match &args.owner {
        Some(owner) => {
            let info = ctx.shared_box(owner, &args.box_name).await?;
            let label = hosts::label(owner.as_str(), &info.name);
            let address = info.address.expect("shared_box checks the address");
            ctx.hosts.point(names, address, &label).await?
        }
        None => {
            let mine = ctx.find(&args.box_name).await;
            match mine {
                Ok(info) if info.state == crate::provider::BoxState::Running => match ctx.point_hostnames(&info, &manifest).await {
                    Pointed::Skipped { reason } => bail!(reason),
                    p => p,
                },
                // No box of yours to return to: clear, rather than leave
                // the names on a colleague's box.
                _ => {
                    ctx.hosts.clear(names).await?;
                    Pointed::Skipped { reason: format!("your box {} is not running; the hostnames were cleared", args.box_name) }
                }
            }
        }
    };
    match global.output {
        Output::Json => output::json(&pointed)?,
        Output::Text => output::print_pointed(&pointed),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(format: Output, status: &Status) -> Result<ExitCode> {
    match format {
        Output::Json => output::json(status)?,
        Output::Text if status.names.is_empty() => println!("no hostnames pointed (in {})", status.hosts_file.display()),
        Output::Text => println!("{}", output::hosts_table(status)),
    }
    Ok(ExitCode::SUCCESS)
}
