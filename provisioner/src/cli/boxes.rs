//! create, list, status, start, stop, destroy.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

use super::box_arg::BoxArg;
use super::context::Global;
use super::output::{self, Output};
use crate::boxes::data::{DataOnCreate, DataOnDestroy};
use crate::boxes::drift::Drift;
use crate::boxes::{Context, CreateReport, LifecycleError};
use crate::laptop::hosts::Pointed;
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::provider::BoxInfo;
use crate::ssh::ssh_config::host_alias;

/// Launch your box (or finish making it), pin its host key, check SSH.
///
/// Idempotent: running it again on an existing box starts it if stopped and
/// completes any step a previous run did not finish. Two creates of one
/// name at the same time still give one box. The data volume a `destroy`
/// of this name kept (home, src/, stores) is reattached unless --data new.
///
/// Examples:
///   workstation create              your box "dev"
///   workstation create api-test     a second box
///   workstation create --data new   a fresh box, the kept data left alone
///   workstation create -o json      the report, for scripts
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CreateArgs {
    #[command(flatten)]
    target: BoxArg,
    /// What to do with a kept data volume of this name.
    #[arg(long, value_enum, default_value_t = DataOnCreate::Reattach)]
    data: DataOnCreate,
    #[command(flatten)]
    timeout: super::stack::HealthTimeout,
}

/// List your boxes (all owners' with --all), or data volumes.
///
/// Examples:
///   workstation list
///   workstation list --all -o json
///   workstation list --volumes      data volumes, kept ones with their cost
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {
    /// Show every owner's boxes (platform team).
    #[arg(long)]
    all: bool,
    /// Show data volumes (attached and kept) instead of boxes.
    #[arg(long)]
    volumes: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    #[command(flatten)]
    target: BoxArg,
}

/// Destroy a box (asks first); its data volume is kept unless --purge.
///
/// The kept volume (home, src/, store data) is reattached by the next
/// `create` of the name; `list --volumes` shows it and its monthly cost.
/// With --purge and no box left, deletes the name's kept volumes.
///
/// Examples:
///   workstation destroy dev                 keeps the data volume
///   workstation destroy dev --purge         deletes the data too
///   workstation destroy api-test --yes
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DestroyArgs {
    #[command(flatten)]
    target: BoxArg,
    /// Keep the data volume (the default).
    #[arg(long, conflicts_with = "purge")]
    keep_data: bool,
    /// Delete the data volume too: home, src/ and store data are gone.
    #[arg(long)]
    purge: bool,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
}

pub async fn create(global: &Global, args: CreateArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    let mut report = launch(&ctx, &manifest, &args, global.output).await?;
    report.dotfiles = ctx.dotfiles_on(&report.info, global.settings()?.dotfiles.as_deref()).await;
    match global.output {
        Output::Json => output::json(&report)?,
        Output::Text => print_created(&report),
    }
    Ok(if report.up.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `create` with a spinner, without printing the result.
async fn launch(ctx: &Context, manifest: &LoadedManifest, args: &CreateArgs, out: Output) -> Result<CreateReport> {
    Ok(output::with_spinner(out, async |p| ctx.create_box(&args.target.get(), manifest, args.data, args.timeout.value, p).await).await?)
}

pub(super) fn print_created(report: &CreateReport) {
    let b = &report.info;
    for dup in &report.terminated_duplicates {
        eprintln!("note: terminated duplicate instance {dup} of box {} (a concurrent create launched it)", b.name);
    }
    let verb = match (report.created, report.started) {
        (true, _) => "created",
        (false, true) => "started",
        (false, false) => "already exists",
    };
    println!("box {} ({}) {verb}: {} at {}", b.name, b.id, b.state.as_str(), b.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into()));
    if let Some(v) = &report.reattached {
        println!("data: reattached kept volume {v} (home, src/ and stores as they were)");
    }
    if let Some(d) = &report.drift {
        eprintln!("note: box {} runs an older image: {}", b.name, d.sentence(&b.name));
    }
    println!("host key {} pinned{}", report.host_key_fingerprint, if report.host_key_newly_pinned { "" } else { " (unchanged)" });
    output::print_up(&report.up);
    output::print_pointed(&report.hostnames);
    if let Some(d) = &report.dotfiles {
        match (d.ok, &d.script, d.how) {
            (false, ..) => eprintln!("warning: dotfiles from {}: {}", d.source, d.failure.as_deref().unwrap_or("failed")),
            (true, _, "unchanged") => println!("dotfiles: installed before, unchanged ({})", d.source),
            (true, Some(script), _) => println!("dotfiles: ran {script} from {}", d.source),
            (true, None, _) => println!("dotfiles: linked {} into home from {}", d.linked.join(", "), d.source),
        }
    }
    println!("connect: workstation ssh {}   or   ssh {}", b.name, host_alias(&b.name));
}

pub async fn list(global: &Global, args: ListArgs) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    if args.volumes {
        return list_volumes(global, &ctx, args.all).await;
    }
    let boxes = ctx.provider().list(if args.all { None } else { Some(ctx.owner()) }).await?;
    match global.output {
        Output::Json => output::json(&boxes)?,
        Output::Text if boxes.is_empty() => eprintln!("no boxes; `workstation create` makes one"),
        Output::Text => {
            println!("{}", output::boxes_table(&boxes, args.all));
            let line = ctx.image_line(manifest.as_ref()).await;
            for b in &boxes {
                if let Some(d) = Drift::of(b.image_id.as_deref(), &line) {
                    eprintln!("note: {} runs an older image: {}", b.name, d.sentence(&b.name));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_volumes(global: &Global, ctx: &Context, all: bool) -> Result<ExitCode> {
    let volumes = ctx.volumes(all).await?;
    match global.output {
        Output::Json => output::json(&volumes)?,
        Output::Text if volumes.is_empty() => eprintln!("no data volumes"),
        Output::Text => {
            println!("{}", output::volumes_table(&volumes, all));
            let kept: Vec<_> = volumes.iter().filter(|v| v.is_kept()).collect();
            if !kept.is_empty() {
                let cost: f64 = kept.iter().map(|v| v.monthly_usd()).sum();
                eprintln!(
                    "{} kept volume(s) without a box cost ${cost:.2}/month; `workstation create NAME` reattaches one, `workstation destroy NAME --purge` deletes it",
                    kept.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(global: &Global, args: NameArg) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    let status = ctx.status(&args.target.get(), manifest.as_ref()).await?;
    let info = &status.info;
    let cost = super::cost::of_box(global, manifest.as_ref(), info).await;
    match global.output {
        Output::Json => {
            let mut json = serde_json::to_value(&status)?;
            json["cost"] = serde_json::to_value(&cost)?;
            output::json(&json)?
        }
        Output::Text => {
            println!("{}", output::boxes_table(std::slice::from_ref(info), false));
            println!("\nhost key: {}", if status.host_key_pinned { "pinned" } else { "not pinned (run `workstation pin`)" });
            match status.manifest_current {
                Some(true) => println!("manifest: matches {}", manifest.as_ref().map(|m| m.path.display().to_string()).unwrap_or_default()),
                Some(false) => println!("manifest: changed since the box's last bring-up; `workstation up` applies it"),
                None => {}
            }
            match &status.idle {
                Some(crate::idle::policy::Verdict::Keep { stop_at, reason } | crate::idle::policy::Verdict::Warn { stop_at, reason }) => {
                    let left = (*stop_at - chrono::Utc::now()).to_std().unwrap_or_default();
                    println!(
                        "idle: stops in {} ({reason}); `workstation keep --for 2h` holds it",
                        humantime::format_duration(std::time::Duration::from_secs(left.as_secs() / 60 * 60))
                    );
                }
                // A box in use reports activity only when reap needs it
                // (idle/report.rs): from here, past its stop time means only
                // that it has not reported since.
                Some(crate::idle::policy::Verdict::Stop { since, reason }) => println!(
                    "idle: by its last report, due to stop since {} ({reason}); the box stops itself when idle, and if in use reports before reap acts at {}",
                    since.format("%H:%M UTC"),
                    (*since + crate::idle::reap::GRACE).format("%H:%M UTC")
                ),
                None => {}
            }
            if let Some(by) = &info.stopped_by {
                println!("last stopped by: {by}");
            }
            if let Some(c) = &cost {
                println!("{}", crate::cost::report::status_line(c, crate::provider::usage::Month::of(chrono::Utc::now())));
            }
            if info.bring_up_unfinished {
                println!("stack: the last bring-up did not finish healthy; run `workstation up {}`", info.name);
            }
            match (&status.drift, &info.image_id) {
                (Some(d), _) => println!("image: older than its line's newest: {}", d.sentence(&info.name)),
                (None, Some(image)) => println!("image: {image}"),
                (None, None) => {}
            }
            match &info.data_volume {
                Some(v) => println!("data volume: {v} (kept by `upgrade` and by `destroy` unless --purge)"),
                None => println!("data volume: none (made before data volumes: its data is on the root)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Start a stopped box and bring its stack up.
///
/// Waits until SSH answers with the pinned host key, then runs `up` when a
/// manifest is at hand.
///
/// Examples:
///   workstation start
///   workstation start api-test
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct StartArgs {
    #[command(flatten)]
    target: BoxArg,
    #[command(flatten)]
    timeout: super::stack::HealthTimeout,
}

pub async fn start(global: &Global, args: StartArgs) -> Result<ExitCode> {
    let manifest = global.optional_manifest()?;
    let ctx = global.context(manifest.as_ref()).await?;
    let started =
        output::with_spinner(global.output, async |p| ctx.start_with_stack(&args.target.get(), manifest.as_ref(), args.timeout.value, p).await).await?;
    match global.output {
        Output::Json => output::json(&started)?,
        Output::Text => {
            println!("box {} ({}) started", started.info.name, started.info.id);
            if let Some(up) = &started.up {
                output::print_up(up);
            }
            if let Some(h) = &started.hostnames {
                output::print_pointed(h);
            }
        }
    }
    Ok(if started.healthy() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn stop(global: &Global, args: NameArg) -> Result<ExitCode> {
    let ctx = global.context(global.manifest_for_lookup().as_ref()).await?;
    let (info, moved) = output::with_spinner(global.output, async |p| ctx.stop(&args.target.get(), p).await).await?;
    report(global, "stopped (disk kept)", &info, moved.as_ref())
}

pub async fn destroy(global: &Global, args: DestroyArgs) -> Result<ExitCode> {
    let ctx = global.context(global.manifest_for_lookup().as_ref()).await?;
    let name = args.target.get();
    let data = if args.purge { DataOnDestroy::Purge } else { DataOnDestroy::Keep };
    let info = match ctx.find(&name).await {
        Ok(info) => info,
        // No box, but perhaps its kept data: --purge deletes that.
        Err(LifecycleError::UnknownBox { .. }) if args.purge => return purge_kept(global, &ctx, &name, args.yes).await,
        Err(e) => return Err(e.into()),
    };
    if !args.yes && !confirm(&format!("Destroy box {} ({})? {}", info.name, info.id, data_fate(&info, data)), &info.name)? {
        eprintln!("not destroyed");
        return Ok(ExitCode::FAILURE);
    }
    let (info, moved) = output::with_spinner(global.output, async |p| ctx.destroy(&name, data, p).await).await?;
    let code = report(global, "destroyed", &info, moved.as_ref())?;
    if let (DataOnDestroy::Keep, Some(volume), None) = (data, &info.data_volume, &info.preview) {
        eprintln!("data volume {volume} kept: `workstation create {name}` reattaches it; `workstation destroy {name} --purge` deletes it");
    }
    Ok(code)
}

fn data_fate(info: &BoxInfo, data: DataOnDestroy) -> &'static str {
    match (data, &info.data_volume, &info.preview) {
        (DataOnDestroy::Keep, Some(_), None) => "Its root is deleted; its data volume (home, src/, stores) is kept for the next `create` of this name.",
        (DataOnDestroy::Purge, Some(_), _) => "Its data volume is deleted too: home, src/ and store data are gone for good.",
        (_, Some(_), Some(_)) => "A preview's data volume goes with it: everything on it is deleted.",
        (_, None, _) => "It has no data volume (made before them): its disk and everything on it are deleted.",
    }
}

/// `destroy NAME --purge` after the box is gone: the name's kept volumes.
async fn purge_kept(global: &Global, ctx: &Context, name: &BoxName, yes: bool) -> Result<ExitCode> {
    let kept = ctx.kept_volumes(name).await?;
    if kept.is_empty() {
        bail!("no box named {name} and no kept data volume of it; `workstation list --volumes` shows what is kept");
    }
    let listed: Vec<String> = kept.iter().map(|v| format!("{} ({} GiB)", v.id, v.size_gib)).collect();
    if !yes && !confirm(&format!("Box {name} is gone; delete its kept data volume(s) {}?", listed.join(", ")), name.as_str())? {
        eprintln!("not deleted");
        return Ok(ExitCode::FAILURE);
    }
    let deleted = ctx.delete_kept(&kept).await?;
    match global.output {
        Output::Json => output::json(&deleted)?,
        Output::Text => {
            for v in &deleted {
                println!("data volume {} ({} GiB) of {name} deleted", v.id, v.size_gib);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The box, and where the hostnames that pointed at it went.
fn report(global: &Global, what: &str, info: &BoxInfo, moved: Option<&Pointed>) -> Result<ExitCode> {
    match global.output {
        Output::Json => output::json(info)?,
        Output::Text => println!("box {} ({}) {what}", info.name, info.id),
    }
    match moved {
        Some(Pointed::Pointed { names, address, label, .. }) => eprintln!("hostnames {} now point at {label} ({address})", names.join(", ")),
        Some(Pointed::Skipped { reason }) => eprintln!("note: hostnames {reason}; `workstation start` or `workstation share` points them again"),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks for the box name to be typed, as deleting a disk cannot be undone.
fn confirm(question: &str, name: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to destroy box {name} without confirmation: stdin is not a terminal; pass --yes");
    }
    eprint!("{question}\nType the box name to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == name)
}
