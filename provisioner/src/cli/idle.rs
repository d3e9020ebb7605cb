//! keep, reap: holding a box up for a while, and the central backstop that
//! stops every owner's idle boxes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use comfy_table::presets::NOTHING;
use comfy_table::Table;

use super::box_arg::BoxArg;
use super::context::Global;
use super::output::{self, Output};
use crate::idle::reap::{self, ReapReport};
use crate::manifest::IdlePolicy;
use crate::provider::ProviderKind;

/// Keep a box from stopping itself for a while (at most idle.max_keep).
///
/// Examples:
///   workstation keep --for 2h
///   workstation keep api-test --for 30m
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct KeepArgs {
    #[command(flatten)]
    target: BoxArg,
    /// How long, e.g. 2h or 90m.
    #[arg(long = "for", value_name = "DURATION", value_parser = super::duration::parse)]
    duration: Duration,
}

/// Stop every owner's idle boxes and end expired previews: the backstop
/// cron runs (see examples/reap/). Previews are terminated only once
/// expired by now (a later --at plans, with --dry-run, but ends nothing
/// early).
///
/// Uses the manifest's [idle] policy for all boxes and their
/// workstation:last-active and workstation:keep-until tags. Preview boxes
/// past their workstation:expires tag are terminated, running or stopped.
/// Boxes stopped or terminated by someone else meanwhile are reported, not
/// errors.
///
/// Examples:
///   workstation reap --dry-run
///   workstation reap -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ReapArgs {
    /// Print the plan; stop or terminate nothing.
    #[arg(long)]
    dry_run: bool,
    /// Decide as of this time (RFC 3339) instead of now, e.g. to see what
    /// the 20:00 run will stop.
    #[arg(long, value_name = "TIME")]
    at: Option<DateTime<Utc>>,
    /// StopInstances (and TerminateInstances) calls in flight at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Whose preview boxes expire (terraform's preview_owner): the reaper's
    /// IAM policy lets it terminate only that owner's previews.
    #[arg(long, default_value = reap::PREVIEW_OWNER, value_name = "OWNER")]
    preview_owner: String,
}

pub async fn keep(global: &Global, args: KeepArgs) -> Result<ExitCode> {
    let manifest = global.optional_manifest()?;
    let policy = manifest.as_ref().map(|m| m.manifest.idle.clone()).unwrap_or_default();
    let ctx = global.context(manifest.as_ref()).await?;
    let (info, until) = ctx.keep(&args.target.get(), args.duration, &policy).await?;
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "box": info.name, "id": info.id, "keep_until": until }))?,
        Output::Text => println!("box {} kept until {} (it may stop after that when idle)", info.name, until.format("%Y-%m-%d %H:%M UTC")),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reap(global: &Global, args: ReapArgs) -> Result<ExitCode> {
    let manifest = global.optional_manifest()?;
    let default = IdlePolicy::default();
    let run = reap::Run {
        policies: manifest.as_ref().map_or(reap::Policies::same(&default), |m| reap::Policies::of(&m.manifest)),
        at: args.at.unwrap_or_else(Utc::now),
        dry_run: args.dry_run,
        concurrency: args.concurrency,
        preview_owner: &args.preview_owner,
        max_boxes_per_owner: manifest.as_ref().and_then(|m| m.manifest.machine.max_boxes_per_owner),
    };
    // `--provider local` (or local in the settings) reaps this machine's
    // local boxes; otherwise every owner's EC2 instances.
    let (report, api_calls) = match global.provider_kind()? {
        ProviderKind::Local => {
            let ctx = global.context(manifest.as_ref()).await?;
            (reap::reap_listed(ctx.provider(), &run).await?, Default::default())
        }
        ProviderKind::Aws => {
            let (provider, calls) = global.aws(manifest.as_ref()).await?;
            let report = reap::reap(&provider, &run).await?;
            (report, calls.counts())
        }
    };
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "report": report, "api_calls": api_calls }))?,
        Output::Text => print(&report, &api_calls),
    }
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print(report: &ReapReport, api_calls: &std::collections::BTreeMap<String, u64>) {
    if !report.plan.is_empty() {
        let mut table = Table::new();
        table.load_preset(NOTHING).set_header(["ID", "OWNER", "NAME", "LAST ACTIVE", "WHY"]);
        for p in &report.plan {
            let reason = match &p.verdict {
                crate::idle::policy::Verdict::Stop { reason, .. } => reason.clone(),
                other => format!("{other:?}"),
            };
            table.add_row([p.id.clone(), p.owner.clone(), p.name.clone(), p.last_active.map_or("-".into(), |t| t.format("%m-%d %H:%M").to_string()), reason]);
        }
        println!("{table}");
    }
    if !report.expired.is_empty() {
        let mut table = Table::new();
        table.load_preset(NOTHING).set_header(["ID", "OWNER", "PREVIEW", "EXPIRED"]);
        for e in &report.expired {
            table.add_row([e.id.clone(), e.owner.clone(), format!("#{} ({})", e.preview, e.name), e.expires.format("%m-%d %H:%M").to_string()]);
        }
        println!("{table}");
    }
    for o in &report.over_limit {
        println!(
            "{} has {} boxes, over box.max_boxes_per_owner = {}: ask them to destroy {} (`workstation list`, `workstation destroy NAME`)",
            o.owner,
            o.boxes,
            o.max,
            o.boxes - o.max as usize
        );
    }
    let calls: Vec<String> = api_calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
    let calls = if calls.is_empty() { vec!["none (local boxes)".to_owned()] } else { calls };
    if report.dry_run {
        println!(
            "{} boxes, {} would stop, {} expired previews would be terminated (dry run); API calls: {}",
            report.examined,
            report.plan.len(),
            report.expired.len(),
            calls.join(", ")
        );
    } else {
        println!(
            "{} boxes: {} stopped, {} expired previews terminated, {} already stopped or gone, {} failed; API calls: {}",
            report.examined,
            report.stopped.len(),
            report.terminated.len(),
            report.gone.len(),
            report.failed.len(),
            calls.join(", ")
        );
    }
    for f in &report.failed {
        eprintln!("error: stopping or terminating {}: {}", f.id, f.error);
    }
}
