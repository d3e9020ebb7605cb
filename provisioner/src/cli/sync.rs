//! sync: mirror this checkout onto the box and keep it mirrored.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

use super::box_arg::BoxArg;
use super::context::Global;
use super::output::Output;
use crate::sync::session::{self, Sync};
use crate::sync::Report;

/// Mirror this checkout onto the box, then keep it mirrored (work locally,
/// run remotely).
///
/// rsync over the pinned SSH config; .gitignore and sync.exclude are
/// honoured; deletes and renames propagate inside the synced directory
/// only. A changed lockfile runs the service's `install` on the box; files
/// matching `restart_on` restart their services. A dropped connection is
/// retried with backoff and then fully re-synced.
///
/// Examples:
///   workstation sync                   mirror and keep mirroring
///   workstation sync --once           one pass, then exit
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SyncArgs {
    #[command(flatten)]
    target: BoxArg,
    /// One full sync, then exit (an unreachable box fails at once, with what
    /// ssh said, instead of being retried).
    #[arg(long)]
    pub(super) once: bool,
    /// The checkout (default: the manifest's directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

struct Lines(Output);

impl Report for Lines {
    fn line(&self, text: &str) {
        match self.0 {
            Output::Text => eprintln!("{text}"),
            Output::Json => eprintln!("{}", serde_json::json!({ "event": text })),
        }
    }
}

pub async fn sync(global: &Global, args: SyncArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let dir = match args.dir {
        Some(d) => d,
        None => manifest.path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")),
    };
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("the checkout {} does not exist", dir.display()))?;
    let (ctx, info) = global.wake(Some(&manifest), &args.target.get()).await?;
    let _lock = session::lock(&ctx.paths().state_dir, &dir)?;
    let sync = Sync::prepare(&ctx, &info, &manifest, dir).await?;
    let report = Lines(global.output);
    let started = std::time::Instant::now();
    let n = sync.initial(args.once, &report).await?;
    match global.output {
        Output::Json if args.once => super::output::json(&serde_json::json!({ "box": info.name, "remote": sync.target.remote, "changed": n }))?,
        _ => report.line(&format!("synced {n} path(s) to {}:{} in {:.1}s", info.name, sync.target.remote, started.elapsed().as_secs_f64())),
    }
    if !args.once {
        sync.watch(&report).await?;
    }
    Ok(ExitCode::SUCCESS)
}
