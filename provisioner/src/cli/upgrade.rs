//! `upgrade`: a box onto the newest image, keeping its data.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use super::box_arg::BoxArg;
use super::context::Global;
use super::output::{self, Output};

/// Move your box onto the newest image, keeping its data volume.
///
/// EC2 replaces the box's root volume from the image (same instance, id,
/// address and data volume: home, src/, store data). The new root's host
/// key is pinned from the box's own tag, the stack comes back up on its
/// data (nothing reseeded), and your dotfiles are installed again. Safe to
/// run again after an interruption: it finishes what the last run began.
///
/// Examples:
///   workstation upgrade                     your box "dev"
///   workstation upgrade api-test --image ami-0123456789abcdef0
///   workstation upgrade --all --dry-run     who runs an older image (platform team)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct UpgradeArgs {
    #[command(flatten)]
    target: BoxArg,
    /// This image instead of the newest the manifest names.
    #[arg(long, value_name = "AMI")]
    image: Option<String>,
    /// Every owner's boxes (only with --dry-run: an upgrade needs the
    /// owner's SSH key, so each engineer runs their own).
    #[arg(long, requires = "dry_run")]
    all: bool,
    /// Only say which of your boxes (every owner's with --all) run an
    /// older image.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    timeout: super::stack::HealthTimeout,
}

pub async fn upgrade(global: &Global, args: UpgradeArgs) -> Result<ExitCode> {
    if let Some(image) = &args.image {
        if !image.starts_with("ami-") || image.len() < 12 || !image[4..].bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--image {image:?} is not an AMI id; it looks like \"ami-0123456789abcdef0\"");
        }
    }
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    if args.dry_run {
        let mut behind = ctx.behind(&manifest).await?;
        if !args.all {
            behind.retain(|b| b.info.owner == ctx.owner().as_str());
        }
        match global.output {
            Output::Json => output::json(&behind)?,
            Output::Text if behind.is_empty() => println!("every box runs the newest image of its line"),
            Output::Text => {
                for b in &behind {
                    println!("{}/{} ({}): {}", b.info.owner, b.info.name, b.info.id, b.drift.sentence(&b.info.name));
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.target.get();
    let mut report = output::with_spinner(global.output, async |p| ctx.upgrade(&name, &manifest, args.image.as_deref(), args.timeout.value, p).await).await?;
    report.dotfiles = ctx.dotfiles_on(&report.info, global.settings()?.dotfiles.as_deref()).await;
    match global.output {
        Output::Json => output::json(&report)?,
        Output::Text => {
            let b = &report.info;
            let image = |i: &Option<String>| i.clone().unwrap_or_else(|| "its image".into());
            match report.root.replaced {
                true => println!("box {} ({}) upgraded: {} -> {}", b.name, b.id, image(&report.root.from), image(&report.root.to)),
                false => println!("box {} ({}) already runs {}", b.name, b.id, image(&report.root.to)),
            }
            println!("data volume {} kept; host key {} pinned", report.data_volume, report.host_key_fingerprint);
            output::print_up(&report.up);
            if let Some(d) = report.dotfiles.as_ref().filter(|d| !d.ok) {
                eprintln!("warning: dotfiles from {}: {}", d.source, d.failure.as_deref().unwrap_or("failed"));
            }
        }
    }
    Ok(if report.up.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
