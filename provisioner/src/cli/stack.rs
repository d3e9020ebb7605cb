//! up, seed, services, restart, logs, render: the stack on a box.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::box_arg::{BoxArg, BoxFlag};
use super::context::Global;
use super::output::{self, Output};
use crate::stack::layout::{Layout, StoreRunner, DEFAULT_ROOT};
use crate::stack::seed::SeedOutcome;
use crate::stack::services;
use crate::stack::supervisor;

/// Bring the box's stack up: services running and healthy, stores seeded.
///
/// Renders and uploads supervisord's configuration, starts supervisord (or
/// applies changes: only changed programs restart), seeds stores not yet
/// seeded, then waits for health checks and prints a summary. `create` and
/// `start` do this already; run it after changing workstation.toml, or to
/// finish a half-made box. Exits 1 if something is not healthy.
///
/// Examples:
///   workstation up
///   workstation up api-test --health-timeout 5m
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct UpArgs {
    #[command(flatten)]
    target: BoxArg,
    #[command(flatten)]
    timeout: HealthTimeout,
}

#[derive(Debug, Clone, Copy, Args)]
pub struct HealthTimeout {
    /// How long to wait for services to become healthy.
    #[arg(long = "health-timeout", value_name = "DURATION", default_value = "2m", value_parser = super::duration::parse)]
    pub value: Duration,
}

/// Load stores from their snapshots (all stores, or STORE).
///
/// A store already holding its snapshot is left alone; --reset loads it
/// again, replacing local changes. A failed or interrupted load leaves the
/// store as it was (redis and postgres swap the new data in at the end).
///
/// Examples:
///   workstation seed                 every store not yet seeded
///   workstation seed main --reset    reload one store
///   workstation seed cache --box api-test
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SeedArgs {
    /// Store name from the manifest (default: every store).
    store: Option<String>,
    /// Reload even if the snapshot is already loaded.
    #[arg(long)]
    reset: bool,
    #[command(flatten)]
    target: BoxFlag,
}

/// State, pid, uptime, unexpected exits and health of every program
/// (services and stores), or of PROGRAM.
///
/// Examples:
///   workstation services
///   workstation services api --box api-test -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServicesArgs {
    /// One service or store of the manifest (default: all of them).
    #[arg(value_name = "PROGRAM")]
    program: Option<String>,
    #[command(flatten)]
    target: BoxFlag,
}

/// Restart a service or store under supervisord.
///
/// Examples:
///   workstation restart api
///   workstation restart app --box api-test
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RestartArgs {
    /// The service or store to restart, as named in the manifest.
    #[arg(value_name = "PROGRAM")]
    program: String,
    #[command(flatten)]
    target: BoxFlag,
}

/// Show a program's log (stdout and stderr); -f follows it.
///
/// Examples:
///   workstation logs api -f
///   workstation logs main -n 500 --box api-test
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct LogsArgs {
    /// The service or store whose log to show, as named in the manifest.
    #[arg(value_name = "PROGRAM")]
    program: String,
    /// Keep printing new lines until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// Lines of history to show.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: u32,
    #[command(flatten)]
    target: BoxFlag,
}

#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// supervisord.conf and the program launchers, from the manifest.
    ///
    /// The Nix image calls this at build time, so the box and `workstation
    /// up` run the same configuration.
    ///
    /// Examples:
    ///   workstation render supervisord
    ///   workstation render supervisord --out /tmp/rendered
    #[command(verbatim_doc_comment)]
    Supervisord(RenderArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The box's workstation directory.
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: String,
    /// PATH for the programs (default: supervisord's own).
    #[arg(long = "path", value_name = "PATH")]
    program_path: Option<String>,
    /// Write the files into DIR instead of printing them.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Who runs the data stores: supervisord with the services, or systemd
    /// (the image's nixpkgs modules; they are then left out here).
    #[arg(long, value_enum, default_value_t = StoreRunner::Supervisord)]
    stores: StoreRunner,
}

pub async fn up(global: &Global, args: UpArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let (ctx, info) = global.wake(Some(&manifest), &args.target.get()).await?;
    let report = output::with_spinner(global.output, async |p| ctx.up(&info, &manifest, args.timeout.value, p).await).await?;
    match global.output {
        Output::Json => output::json(&report)?,
        Output::Text => output::print_up(&report),
    }
    Ok(if report.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn seed(global: &Global, args: SeedArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    if let Some(store) = &args.store {
        manifest.manifest.check_store(store)?;
    }
    let (ctx, info) = global.wake(Some(&manifest), &args.target.get()).await?;
    let reports = output::with_spinner(global.output, async |p| {
        p.inspect(|p| p.set_message("seeding"));
        ctx.seed(&info, &manifest, args.store.as_deref(), args.reset).await
    })
    .await?;
    match global.output {
        Output::Json => output::json(&reports)?,
        Output::Text => {
            println!("{}", output::seeds_table(&reports));
            for e in reports.iter().filter_map(|r| r.error.as_ref()) {
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if reports.iter().any(|r| r.outcome == SeedOutcome::Failed) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub async fn services(global: &Global, args: ServicesArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let m = &manifest.manifest;
    if let Some(p) = &args.program {
        m.check_program(p)?;
    }
    let (ctx, info) = global.wake(Some(&manifest), &args.target.get()).await?;
    let programs = ctx.on_box(&info, async |shell| Ok::<_, anyhow::Error>(services::status(shell, m, args.program.as_deref()).await?)).await?;
    match global.output {
        Output::Json => output::json(&programs)?,
        Output::Text => println!("{}", output::programs_table(&programs)),
    }
    Ok(if programs.iter().all(services::ProgramStatus::is_up) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn restart(global: &Global, args: RestartArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    manifest.manifest.check_program(&args.program)?;
    let (ctx, info) = global.wake(Some(&manifest), &args.target.get()).await?;
    let out = ctx
        .on_box(&info, async |shell| {
            // A local box's values again, so a rotated one takes effect;
            // under the bring-up lock, so one holder takes them.
            shell.locked(async |_| ctx.hand_over_secrets(shell, &manifest.manifest).await).await?;
            Ok::<_, anyhow::Error>(services::restart(shell, &manifest.manifest, &args.program).await?)
        })
        .await?;
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "program": args.program, "restarted": true }))?,
        Output::Text => print!("{out}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(global: &Global, args: LogsArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    manifest.manifest.check_program(&args.program)?;
    let (ctx, info) = global.wake(Some(&manifest), &args.target.get()).await?;
    let status = ctx
        .on_box(&info, async |shell| Ok::<_, anyhow::Error>(services::logs(shell, &manifest.manifest, &args.program, args.lines, args.follow).await?))
        .await?;
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(255)))
}

pub async fn render(global: &Global, command: RenderCommand) -> Result<ExitCode> {
    let RenderCommand::Supervisord(args) = command;
    let manifest = global.load_manifest()?;
    let layout = Layout::new(&args.root, args.program_path)?.with_stores(args.stores);
    let rendered = supervisor::render(&manifest.manifest, &layout, &Default::default());
    match args.out {
        None => print!("{}", rendered.to_text()),
        Some(dir) => {
            rendered.write_to(&dir)?;
            eprintln!("wrote {} files to {} (configuration {})", rendered.files.len(), dir.display(), rendered.hash());
        }
    }
    Ok(ExitCode::SUCCESS)
}
