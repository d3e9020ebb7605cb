//! cost: what boxes cost in dollars, billed and estimated.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use chrono::Utc;
use clap::Args;
use comfy_table::presets::NOTHING;
use comfy_table::Table;

use super::context::Global;
use super::output::{self, Output};
use crate::cost::billed::CostExplorer;
use crate::cost::prices::PriceList;
use crate::cost::report::{self, CostReport, Inputs};
use crate::laptop::paths::Paths;
use crate::provider::usage::Month;
use crate::provider::{Provider, ProviderKind};

/// What boxes cost in dollars this month (or --month): billed, by Cost
/// Explorer; estimated, from each box's running and stopped hours at list
/// prices; the hours boxes spent stopped by their idle check and reap, and
/// what that saved; data volumes kept without a box.
///
/// Billed figures need Cost Explorer's read, which terraform grants to the
/// platform role (docs/operator.md, "Costs"); they lag usage by up to a
/// day, and Cost Explorer charges $0.01 a request. The estimate needs only
/// the Price List API; prices are cached for a day.
///
/// Examples:
///   workstation cost
///   workstation cost --all --month 2026-11
///   workstation cost --estimate -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CostArgs {
    /// Every owner's boxes, not only yours.
    #[arg(long)]
    all: bool,
    /// The month, e.g. 2026-11 (default: this month, UTC).
    #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
    month: Option<Month>,
    /// The estimate alone: do not ask Cost Explorer.
    #[arg(long)]
    estimate: bool,
}

fn parse_month(text: &str) -> Result<Month, String> {
    Month::parse(text).ok_or_else(|| format!("{text:?} is not a month; write it as YYYY-MM, e.g. 2026-11"))
}

pub async fn cost(global: &Global, args: CostArgs) -> Result<ExitCode> {
    if global.provider_kind()? == ProviderKind::Local {
        anyhow::bail!("local boxes run on this machine and cost nothing; `workstation cost` reports EC2 boxes (--provider aws)");
    }
    let now = Utc::now();
    let month = args.month.unwrap_or_else(|| Month::of(now));
    if month > Month::of(now) {
        anyhow::bail!("--month {month} has not begun; give this month or an earlier one");
    }
    let manifest = global.manifest_for_lookup();
    let owner = global.settings()?.owner;
    let sdk = global.sdk(manifest.as_ref()).await?;
    let (provider, _) = global.aws_on(&sdk)?;
    let (price_list, region) = price_list(&sdk, false)?;
    let mine = (!args.all).then_some(&owner);
    let boxes = provider.list(mine).await?;
    let volumes = provider.volumes(mine).await?;
    let types: Vec<String> = boxes.iter().filter_map(|b| b.instance_type.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let prices = price_list.prices(&region, &types, now).await?;
    let bill = if args.estimate {
        Ok(None)
    } else {
        match CostExplorer::new(&sdk).month(month, now).await {
            // Only the asked-for owner's share of the account's bill.
            Ok(mut bill) if !args.all => {
                bill.boxes.retain(|(o, _), _| o == owner.as_str());
                Ok(Some(bill))
            }
            other => other.map(Some).map_err(|e| e.to_string()),
        }
    };
    let root_gib = manifest.as_ref().map(|m| m.manifest.machine.disk_gib);
    let report = report::build(Inputs { month, now, boxes: &boxes, volumes: &volumes, root_gib, prices: &prices, bill });
    match global.output {
        Output::Json => output::json(&report)?,
        Output::Text => print(&report, args.all),
    }
    Ok(ExitCode::SUCCESS)
}

/// The Price List on `sdk` (quick: `status`'s, which must not wait), and
/// the region whose prices are asked.
fn price_list(sdk: &aws_config::SdkConfig, quick: bool) -> Result<(PriceList, String)> {
    let region = sdk.region().map(|r| r.to_string()).context("no AWS region: set [aws] region in your settings, box.region in the manifest, or --region")?;
    let cache = Paths::from_env()?.cache_dir;
    Ok((if quick { PriceList::quick(sdk, cache) } else { PriceList::new(sdk, cache) }, region))
}

fn usd(v: Option<f64>) -> String {
    v.map_or("-".into(), |u| format!("${u:.2}"))
}

fn print(r: &CostReport, all: bool) {
    println!("{} so far (as of {}), {} list prices", r.month, r.as_of.format("%Y-%m-%d %H:%M UTC"), r.prices.region);
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(["OWNER", "BOX", "TYPE", "STATE", "RUNNING", "STOPPED", "IDLE-STOPPED", "ESTIMATE", "SAVED", "BILLED"]);
    for b in &r.boxes {
        let hours = |h: f64| if b.id.is_some() { format!("{h:.1} h") } else { "-".into() };
        table.add_row([
            b.owner.clone(),
            b.name.clone(),
            b.instance_type.clone().unwrap_or_else(|| "-".into()),
            b.state.unwrap_or("gone").into(),
            hours(b.running_hours),
            hours(b.stopped_hours),
            hours(b.idle_stopped_hours),
            usd(b.estimate_usd),
            usd(b.saved_usd),
            usd(b.billed_usd),
        ]);
    }
    println!("{table}");
    if all || r.owners.len() > 1 {
        let mut owners = Table::new();
        owners.load_preset(NOTHING).set_header(["OWNER", "BOXES", "BILLED", "ESTIMATE", "IDLE-STOPPED", "SAVED BY AUTO-STOP"]);
        for o in &r.owners {
            owners.add_row([
                o.owner.clone(),
                o.boxes.to_string(),
                usd(o.billed_usd),
                usd(Some(o.estimate_usd)),
                format!("{:.1} h", o.idle_stopped_hours),
                usd(Some(o.saved_usd)),
            ]);
        }
        println!("\n{owners}");
    }
    for v in &r.kept_volumes {
        println!(
            "kept volume {} ({}/{}, {} GiB, no box): ${:.2}/month; `workstation destroy {} --purge` deletes it",
            v.id, v.owner, v.name, v.size_gib, v.monthly_usd, v.name
        );
    }
    match (&r.billed_unavailable, r.tags_active) {
        (Some(why), _) => eprintln!("billed: not shown: {why}"),
        (None, Some(false)) => eprintln!(
            "billed: none of the account's ${:.2} carries a workstation:owner tag: activate the cost-allocation tags (activate_owner_cost_tag, terraform/budgets.tf and cost.tf) and allow up to a day",
            r.untagged_usd.unwrap_or(0.0)
        ),
        _ => {}
    }
    if r.month < Month::of(r.as_of).previous() {
        eprintln!("estimate: boxes' ledgers keep this month and the last, so {}'s hours are not known; the bill is", r.month);
    }
    eprintln!("estimate: hours from each box's workstation:usage ledger (starts through workstation), at on-demand prices; see docs/operator.md, \"Costs\"");
}

/// `status`'s cost of one EC2 box this month so far, at cached list
/// prices (never Cost Explorer, which charges per request); None on a
/// local box, or with a warning when prices cannot be had.
pub async fn of_box(global: &Global, manifest: Option<&crate::manifest::LoadedManifest>, info: &crate::provider::BoxInfo) -> Option<report::BoxCost> {
    if global.provider_kind().ok()? != ProviderKind::Aws {
        return None;
    }
    let now = Utc::now();
    let sdk = global.sdk(manifest).await.ok()?;
    let (price_list, region) = price_list(&sdk, true).ok()?;
    let types = Vec::from_iter(info.instance_type.clone());
    let prices = match price_list.prices(&region, &types, now).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("no cost line: {e}");
            return None;
        }
    };
    let gib = manifest.map_or(0, |m| m.manifest.machine.disk_gib);
    Some(report::box_cost(info, Month::of(now), now, &prices, gib))
}
