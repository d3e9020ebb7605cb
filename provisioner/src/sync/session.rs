//! The running sync: the watch loop, reconnection, and what the box does
//! after each batch.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use super::{Actions, Batch, Report, Rules, Sent, SyncError, Target};
use crate::boxes::{Context, LifecycleError};
use crate::manifest::LoadedManifest;
use crate::provider::BoxInfo;
use crate::stack::layout::sh;

/// Quiet time that ends a batch of file events, and the longest a
/// batch waits (a branch switch writes for a while).
const DEBOUNCE: Duration = Duration::from_millis(30);
const MAX_BATCH_WAIT: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const MARK_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("another `workstation sync` (pid {pid}) is already syncing {dir}; stop it first (one sync per checkout)")]
    Busy { dir: String, pid: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("watching {dir} for changes: {source}")]
    Watch { dir: String, source: notify::Error },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// Holds the per-checkout lock for the life of the sync.
pub struct Lock(#[allow(dead_code)] File);

/// One sync per checkout: a second one would race the first's deletes.
pub fn lock(state_dir: &Path, local: &Path) -> Result<Lock, SessionError> {
    let hash = hex::encode(&Sha256::digest(local.to_string_lossy().as_bytes())[..8]);
    std::fs::create_dir_all(state_dir).map_err(|source| SessionError::Io { context: format!("creating {}", state_dir.display()), source })?;
    let path = state_dir.join(format!("sync-{hash}.lock"));
    let mut f = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| SessionError::Io { context: format!("opening {}", path.display()), source })?;
    if f.try_lock().is_err() {
        let pid = std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned();
        return Err(SessionError::Busy { dir: local.display().to_string(), pid });
    }
    use std::io::{Seek, Write};
    let _ = f.set_len(0).and_then(|_| f.rewind()).and_then(|_| write!(f, "{}", std::process::id()));
    Ok(Lock(f))
}

pub struct Sync<'a> {
    pub ctx: &'a Context,
    pub info: &'a BoxInfo,
    pub target: Target,
    rules: Rules,
    /// When sync activity was last marked on the box.
    marked: std::sync::Mutex<Option<std::time::Instant>>,
}

impl<'a> Sync<'a> {
    /// Resolves where the checkout goes on the box (asks the box for
    /// its root) and writes the SSH config rsync uses.
    pub async fn prepare(ctx: &'a Context, info: &'a BoxInfo, manifest: &'a LoadedManifest, local: PathBuf) -> Result<Sync<'a>, SessionError> {
        let ssh_config = ctx.write_ssh_config(false).await?;
        let root = ctx.on_box(info, async |shell| Ok::<_, LifecycleError>(shell.layout.root().to_owned())).await?;
        let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkout".into());
        let rel = manifest.manifest.sync.path.clone().unwrap_or_else(|| format!("src/{name}"));
        let host = crate::ssh::ssh_config::host_alias(&info.name);
        let control_path = super::control_path(&ssh_config, &host)?;
        let target = Target { local, ssh_config, host, remote: format!("{root}/{rel}"), exclude: manifest.manifest.sync.exclude.clone(), control_path };
        Ok(Sync { ctx, info, rules: Rules::new(&manifest.manifest), target, marked: Default::default() })
    }

    /// Pushes a batch; while the box is unreachable, retries with backoff
    /// (after a reconnection everything is re-synced), or with `once` fails
    /// with what ssh said.
    async fn push(&self, batch: Batch, once: bool, report: &dyn Report) -> Result<Sent, SessionError> {
        let mut batch = batch;
        let mut wait = Duration::from_secs(1);
        loop {
            let target = self.target.clone();
            let b = batch.clone();
            match tokio::task::spawn_blocking(move || target.push(&b)).await.expect("rsync thread") {
                Err(e @ SyncError::Unreachable { .. }) if once => return Err(e.into()),
                Err(SyncError::Unreachable { ssh, .. }) => {
                    report.line(&format!("box unreachable ({ssh}); retrying in {}s", wait.as_secs()));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                    batch = Batch::Full; // what changed meanwhile is unknown
                }
                other => return Ok(other?),
            }
        }
    }

    /// Marks sync activity on the box, runs installs, restarts.
    async fn apply(&self, actions: &Actions, report: &dyn Report) -> Result<(), SessionError> {
        self.ctx
            .on_box(self.info, async |shell| {
                let marker = format!("{}/sync-activity", shell.layout.run_dir());
                let _ = shell.check(&format!("mkdir -p {} && touch {}", sh(&shell.layout.run_dir()), sh(&marker))).await;
                super::apply(shell, &self.target.remote, actions, report).await.map(drop).map_err(SessionError::from)
            })
            .await
    }

    async fn round(&self, batch: Batch, once: bool, report: &dyn Report) -> Result<usize, SessionError> {
        tracing::debug!("sync batch {batch:?}");
        let sent = self.push(batch, once, report).await?;
        tracing::debug!("changed on the box: {:?}", sent.changed);
        if !sent.changed.is_empty() {
            let actions = self.rules.actions(&sent.changed);
            // The idle check looks once a minute: marking every 30 s is
            // enough, and an edit does not wait for an SSH session.
            let mark = self.marked.lock().unwrap_or_else(|p| p.into_inner()).is_none_or(|t| t.elapsed() >= MARK_EVERY);
            if mark || actions != Actions::default() {
                match self.apply(&actions, report).await {
                    Ok(()) => *self.marked.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now()),
                    Err(e) => report.line(&format!("after sync: {e}")),
                }
            }
        }
        Ok(sent.changed.len())
    }

    /// The first full pass: how many paths changed on the box. With
    /// `once`, an unreachable box is an error instead of a retry.
    pub async fn initial(&self, once: bool, report: &dyn Report) -> Result<usize, SessionError> {
        self.round(Batch::Full, once, report).await
    }

    /// Watches the checkout and pushes each batch of changes, until the
    /// process is interrupted.
    pub async fn watch(&self, report: &dyn Report) -> Result<(), SessionError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let git = self.target.local.join(".git");
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Access events change nothing; a directory's own metadata
            // changing (its mtime, as files come and go) is covered by
            // the events of the files themselves.
            if matches!(event.kind, notify::EventKind::Access(_) | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))) {
                return;
            }
            for path in event.paths.into_iter().filter(|p| !p.starts_with(&git)) {
                let _ = tx.send(path);
            }
        })
        .map_err(|source| SessionError::Watch { dir: self.target.local.display().to_string(), source })?;
        watcher
            .watch(&self.target.local, RecursiveMode::Recursive)
            .map_err(|source| SessionError::Watch { dir: self.target.local.display().to_string(), source })?;
        report.line(&format!("watching {} -> {}:{}", self.target.local.display(), self.info.name, self.target.remote));
        while let Some(first) = rx.recv().await {
            let mut paths: BTreeSet<PathBuf> = [first].into();
            let started = tokio::time::Instant::now();
            while started.elapsed() < MAX_BATCH_WAIT {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(p)) => {
                        paths.insert(p);
                    }
                    _ => break,
                }
            }
            tracing::debug!("events: {paths:?}");
            let batch = Batch::of(&self.target.local, &paths);
            let n = self.round(batch, false, report).await?;
            if n > 0 {
                report.line(&format!("synced {n} change(s)"));
            }
        }
        Ok(())
    }
}
