//! The platform team's verbs: `manifest publish` (the deployed manifest
//! the reaper reads) and `admin offboard`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::context::{aws_region, Global};
use super::output::{self, Output};
use crate::admin::offboard::{self, OffboardReport, Step};
use crate::manifest::{deployed, S3Url};
use crate::provider::aws::sdk;

/// The deployed manifest: what the scheduled reaper applies.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    Publish(PublishArgs),
}

/// Publish workstation.toml as the deployed manifest (the reaper's policy).
///
/// The reaper reads its [idle] policy and box.max_boxes_per_owner from this
/// copy, so a manifest change takes effect without a terraform apply;
/// `workstation doctor` tells engineers when theirs differs. Needs
/// terraform's manifest_publisher policy (the image CI role has it).
///
/// Examples:
///   workstation manifest publish
///   workstation manifest publish --to s3://workstation-seeds-ab12/manifest/workstation.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PublishArgs {
    /// Where to (default: the manifest's box.deployed_manifest, terraform's
    /// manifest_url output).
    #[arg(long, value_name = "S3_URL")]
    to: Option<String>,
}

/// Break-glass verbs on any owner's boxes (terraform's admin policy).
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    Offboard(OffboardArgs),
}

/// Clean up after an engineer who left: stop, wait out a grace, remove.
///
/// The first run stops OWNER's boxes, marks them and their kept volumes
/// (the grace starts) and deletes their EC2 key pairs. Until the grace
/// ends nothing else goes: the boxes and their data are all still there.
/// A run after the grace terminates the boxes and deletes the kept
/// volumes. Run it again any time (e.g. daily from cron): it converges.
/// Hostnames live in laptops' hosts files: there are no records to remove.
///
/// Examples:
///   workstation admin offboard alice --dry-run
///   workstation admin offboard alice --grace 30d
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct OffboardArgs {
    /// The owner name (their boxes' workstation:owner tag).
    owner: String,
    /// List the steps without doing any.
    #[arg(long)]
    dry_run: bool,
    /// How long after the first run boxes and data are kept.
    #[arg(long, default_value = "14d", value_parser = super::duration::parse)]
    grace: std::time::Duration,
    /// Plan as of this time (RFC 3339) instead of now: what a later run
    /// will do. Only with --dry-run: a real run back-dated would shorten
    /// the grace.
    #[arg(long, value_name = "TIME", hide = true, requires = "dry_run")]
    at: Option<DateTime<Utc>>,
}

pub async fn manifest(global: &Global, cmd: ManifestCommand) -> Result<ExitCode> {
    let ManifestCommand::Publish(args) = cmd;
    let loaded = global.load_manifest()?;
    let url = match args.to.as_deref().or(loaded.manifest.machine.deployed_manifest.as_deref()) {
        Some(url) => S3Url::parse(url).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
        None => anyhow::bail!(
            "no destination: set box.deployed_manifest in {} to terraform's manifest_url output, or pass --to s3://BUCKET/KEY",
            loaded.path.display()
        ),
    };
    let text = std::fs::read_to_string(&loaded.path).with_context(|| format!("cannot read {}", loaded.path.display()))?;
    let aws = global.aws_settings()?;
    let s3 = sdk::s3_client(&sdk::config(aws.profile.as_deref(), aws_region(&aws, Some(&loaded))).await);
    deployed::publish(&s3, &url, &text).await?;
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "published": url.to_string(), "sha256": loaded.hash }))?,
        Output::Text => println!("published {} to {url} (sha256 {})", loaded.path.display(), loaded.hash),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn admin(global: &Global, cmd: AdminCommand) -> Result<ExitCode> {
    let AdminCommand::Offboard(args) = cmd;
    let owner = args.owner.parse().map_err(|e| anyhow::anyhow!("OWNER {:?}: {e}", args.owner))?;
    let grace = chrono::Duration::from_std(args.grace).context("--grace is too long")?;
    let manifest = global.optional_manifest()?;
    let (provider, _) = global.aws(manifest.as_ref()).await?;
    let report = offboard::offboard(&provider, &owner, args.at.unwrap_or_else(Utc::now), grace, args.dry_run).await?;
    match global.output {
        Output::Json => output::json(&report)?,
        Output::Text => print(&report),
    }
    Ok(if report.failed() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(report: &OffboardReport) {
    if report.steps.is_empty() {
        println!("{} has nothing left: no boxes, key pairs or kept volumes", report.owner);
        return;
    }
    let day = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    for done in &report.steps {
        let what = match &done.step {
            Step::Mark { id, name } => format!("mark {name} ({id}) offboarded"),
            Step::Stop { id, name } => format!("stop {name} ({id})"),
            Step::DeleteKeyPair { name } => format!("delete key pair {name}"),
            Step::Keep { id, name, until } => format!("keep {name} ({id}) until {}", day(until)),
            Step::KeepVolume { id, gib, until } => format!("keep volume {id} ({gib} GiB) until {}", day(until)),
            Step::Terminate { id, name } => format!("terminate {name} ({id})"),
            Step::DeleteVolume { id, gib } => format!("delete volume {id} ({gib} GiB)"),
        };
        let outcome = match (done.ok, &done.error) {
            (None, _) => "planned".to_string(),
            (Some(true), _) => "done".to_string(),
            (Some(false), e) => format!("FAILED: {}", e.as_deref().unwrap_or("")),
        };
        println!("{what:<60} {outcome}");
    }
    if let Some(ends) = report.grace_ends.filter(|e| *e > report.at) {
        println!("grace ends {}: run `workstation admin offboard {}` again after it to remove the boxes and their data", day(&ends), report.owner);
    }
    if report.dry_run {
        println!("(dry run: nothing was changed)");
    }
}
