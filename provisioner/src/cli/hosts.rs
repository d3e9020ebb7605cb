//! hosts, share: what this laptop's hostnames point at, and switching them
//! to a colleague's box and back.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::box_arg::BoxFlag;
use super::context::Global;
use super::output::{self, Output};
use crate::boxes::share;
use crate::laptop::hosts::{HostsAgent, Status};
use crate::manifest::name::Owner;
use crate::preview;

/// Show which box this laptop's hostnames point at (through the hosts agent).
///
/// Examples:
///   workstation hosts
///   workstation hosts -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct HostsArgs {}

/// Point the manifest's hostnames at a colleague's box for a demo, or back
/// at yours with --off. Without arguments, show where they point.
///
/// Your browser and tools then reach the colleague's services directly, so
/// their box sees the traffic and does not stop itself as idle.
///
/// Examples:
///   workstation share alice            point the hostnames at alice's dev box
///   workstation share alice --box demo
///   workstation share alice --start    start it first if it is stopped (with alice's consent)
///   workstation share --off             back at yours
///   workstation share --allow-start     let colleagues start your box for a demo
///   workstation share --preview 12      point the preview hostnames (api.pr-12...) at pull request 12's box
///   workstation share --preview 12 --off   take them off this laptop
///   workstation share --env payments/staging   point api.payments-staging... at the payments team's box
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ShareArgs {
    /// The colleague (box owner) whose box to use.
    #[arg(conflicts_with = "off")]
    owner: Option<Owner>,
    /// Which of their boxes (or of yours, with --off).
    #[command(flatten)]
    target: BoxFlag,
    /// Point the hostnames back at your own box.
    #[arg(long)]
    off: bool,
    /// Start the colleague's box if it is stopped: allowed when they let
    /// colleagues start it (`--allow-start`); otherwise only the platform
    /// team can.
    #[arg(long, requires = "owner")]
    start: bool,
    /// Let colleagues start your box with `share NAME --start` (tags it
    /// workstation:shareable=true).
    #[arg(long, conflicts_with_all = ["owner", "off", "forbid_start"])]
    allow_start: bool,
    /// Stop letting colleagues start your box.
    #[arg(long, conflicts_with_all = ["owner", "off"])]
    forbid_start: bool,
    /// Point pull request N's preview hostnames (the manifest's with
    /// `pr-N` as a label) at its preview box; with OWNER, that owner's.
    /// With --off, take them off this laptop.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with_all = ["start", "allow_start", "forbid_start"])]
    preview: Option<u32>,
    /// Point team box TEAM/ENV's hostnames (the manifest's with TEAM-ENV
    /// as a label) at it. With --off, take them off this laptop.
    #[arg(long, value_name = "TEAM/ENV", conflicts_with_all = ["owner", "preview", "start", "allow_start", "forbid_start"])]
    env: Option<crate::env::EnvRef>,
}

pub async fn hosts(global: &Global, _args: HostsArgs) -> Result<ExitCode> {
    let status = HostsAgent::from_env().status().await?;
    print_status(global.output, &status)
}

pub async fn share(global: &Global, args: ShareArgs) -> Result<ExitCode> {
    let manifest = global.optional_manifest()?;
    let ctx = global.context(manifest.as_ref()).await?;
    if args.allow_start || args.forbid_start {
        let info = share::allow_start(&ctx, &args.target.get(), args.allow_start).await?;
        match global.output {
            Output::Json => output::json(&serde_json::json!({ "box": info.name, "id": info.id, "colleagues_may_start": args.allow_start }))?,
            Output::Text if args.allow_start => println!("colleagues may now start box {} with `workstation share {} --start`", info.name, ctx.owner()),
            Output::Text => println!("only you can start box {} now", info.name),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(target) = &args.env {
        let manifest = manifest.ok_or(share::ShareError::NoHostnames)?;
        if args.off {
            let names = crate::env::unshare(&ctx, &manifest, target).await?;
            match global.output {
                Output::Json => output::json(&serde_json::json!({ "cleared": names }))?,
                Output::Text => println!("cleared {}", names.join(", ")),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let pointed = crate::env::share(&ctx, &manifest, target).await?;
        match global.output {
            Output::Json => output::json(&pointed)?,
            Output::Text => output::print_pointed(&pointed),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(number) = args.preview {
        let manifest = manifest.ok_or(share::ShareError::NoHostnames)?;
        if args.off {
            let names = preview::unshare(&ctx, &manifest, number).await?;
            match global.output {
                Output::Json => output::json(&serde_json::json!({ "cleared": names }))?,
                Output::Text => println!("cleared {}", names.join(", ")),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let pointed = preview::share(&ctx, &manifest, number, args.owner.as_ref().map(Owner::as_str)).await?;
        match global.output {
            Output::Json => output::json(&pointed)?,
            Output::Text => output::print_pointed(&pointed),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.owner.is_none() && !args.off {
        return print_status(global.output, &ctx.hosts().status().await?);
    }
    let pointed = match &args.owner {
        Some(owner) => {
            output::with_spinner(global.output, async |p| share::share(&ctx, manifest.as_ref(), owner, &args.target.get(), args.start, p).await).await?
        }
        None => share::share_off(&ctx, manifest.as_ref(), &args.target.get()).await?,
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
