//! `workstation sync`: mirror the laptop's checkout onto the box with rsync
//! over workstation's own SSH config (pinned host key, StrictHostKeyChecking),
//! then run the installs and restarts the changed files call for.
//!
//! A change batch names the directories it touched; rsync then copies just
//! those, one level deep (`--files-from --dirs --delete`), so an edit costs
//! one small transfer, not a walk of the tree. New or renamed directories,
//! very large batches (a branch switch) and reconnections get a full sync.
//! `--delete` only ever applies below the synced directory on the box.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::Manifest;

/// Above this many changed paths a batch is synced as a whole tree.
pub const FULL_SYNC_ABOVE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("rsync could not reach the box (exit {code}): {stderr}")]
    Unreachable { code: i32, stderr: String },
    #[error("rsync failed (exit {code}): {stderr}")]
    Rsync { code: i32, stderr: String },
    #[error("cannot run rsync: {0}; install it (apt install rsync / brew install rsync)")]
    Spawn(std::io::Error),
}

/// Where the checkout goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub local: PathBuf,
    /// OpenSSH config with the pinned key (`workstation ssh-config`'s file).
    pub ssh_config: PathBuf,
    /// The box's Host alias in that config (`ws-NAME`).
    pub host: String,
    /// Absolute directory on the box.
    pub remote: String,
    pub exclude: Vec<String>,
    /// OpenSSH ControlPath: one SSH connection shared by every rsync run,
    /// so an edit does not pay for a handshake (None: socket path too long).
    pub control_path: Option<PathBuf>,
}

/// Where the shared SSH connection's socket goes: a private directory whose
/// path leaves room for `%C` (40 characters) within a socket path's limit
/// (about 100 bytes): the runtime directory, the state directory, or a
/// 0700 directory of ours in the temp directory.
pub fn control_path(state_dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let fits = |d: &Path| d.as_os_str().len() + 45 < 100;
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    if let Some(d) = [runtime, Some(state_dir.to_owned())].into_iter().flatten().find(|d| fits(d)) {
        return Some(d.join("ws-%C"));
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let private = std::env::temp_dir().join(format!("workstation-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&private);
    // Someone else's directory there could watch or hijack the socket.
    let ours = std::fs::symlink_metadata(&private).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0);
    (ours && fits(&private)).then(|| private.join("ws-%C"))
}

/// What one rsync run sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Paths created, updated or deleted, relative to the checkout.
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    Full,
    /// Directories (relative, "" for the top) whose direct contents changed.
    Dirs(BTreeSet<String>),
}

impl Batch {
    /// The batch for a set of changed absolute paths.
    pub fn of(local: &Path, paths: &BTreeSet<PathBuf>) -> Batch {
        if paths.len() > FULL_SYNC_ABOVE {
            return Batch::Full;
        }
        let mut dirs = BTreeSet::new();
        for p in paths {
            let Ok(rel) = p.strip_prefix(local) else { continue };
            if rel.as_os_str().is_empty() {
                continue;
            }
            // A directory that appeared (created, renamed in) brings its
            // contents: only a full pass copies those.
            if p.is_dir() {
                return Batch::Full;
            }
            let parent = rel.parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
            dirs.insert(parent);
        }
        Batch::Dirs(dirs)
    }
}

impl Target {
    fn ssh(&self) -> String {
        let quote = |p: &Path| shlex::try_quote(&p.to_string_lossy()).map(|c| c.into_owned()).unwrap_or_default();
        // ServerAlive: a dead connection (laptop asleep) fails in seconds
        // instead of hanging; the loop reconnects.
        let mut ssh = format!("ssh -F {} -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2", quote(&self.ssh_config));
        if let Some(cp) = &self.control_path {
            ssh.push_str(&format!(" -o ControlMaster=auto -o ControlPersist=60 -o ControlPath={}", quote(cp)));
        }
        ssh
    }

    /// Runs rsync for `batch`; returns what changed on the box.
    pub fn push(&self, batch: &Batch) -> Result<Sent, SyncError> {
        let mut cmd = Command::new("rsync");
        cmd.current_dir(&self.local)
            // -@-1: compare mtimes to the nanosecond, so two edits of the
            // same size within one second are not taken for "unchanged".
            .args(["-a", "-@-1", "--delete", "--itemize-changes", "--filter=:- .gitignore", "--exclude=/.git/"])
            .args(self.exclude.iter().map(|e| format!("--exclude={e}")))
            .arg("-e")
            .arg(self.ssh())
            // Creates the synced directory itself, never its parents'
            // siblings: --delete stays inside it.
            .arg(format!("--rsync-path=mkdir -p {} && rsync", shlex::try_quote(&self.remote).map(|c| c.into_owned()).unwrap_or_default()));
        let list = match batch {
            Batch::Full => None,
            Batch::Dirs(dirs) => {
                cmd.args(["--dirs", "--files-from=-"]);
                Some(dirs.iter().map(|d| if d.is_empty() { "./\n".to_owned() } else { format!("{d}/\n") }).collect::<String>())
            }
        };
        // stderr goes to a file, not a pipe: the SSH master that rsync's ssh
        // leaves behind (ControlPersist) inherits it and would hold a pipe
        // open, so reading it to the end would wait for the master to exit.
        let mut errors = tempfile::tempfile().map_err(SyncError::Spawn)?;
        cmd.arg("./")
            .arg(format!("{}:{}/", self.host, self.remote))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(errors.try_clone().map_err(SyncError::Spawn)?);
        let mut child = cmd.spawn().map_err(SyncError::Spawn)?;
        let mut stdin = child.stdin.take().expect("piped");
        if let Some(list) = list {
            // A directory deleted meanwhile makes rsync complain (exit 23);
            // its parent is in the list too, which deletes it on the box.
            let _ = stdin.write_all(list.as_bytes());
        }
        drop(stdin);
        let out = child.wait_with_output().map_err(SyncError::Spawn)?;
        let mut stderr = String::new();
        use std::io::{Read, Seek};
        let _ = errors.rewind().and_then(|_| errors.read_to_string(&mut stderr));
        let stderr = stderr.trim().to_owned();
        match out.status.code() {
            Some(0) | Some(24) => {} // 24: files vanished while sending: the next batch has them
            Some(23) if matches!(batch, Batch::Dirs(_)) => {}
            Some(code @ (255 | 12 | 10 | 35)) => return Err(SyncError::Unreachable { code, stderr }),
            code => return Err(SyncError::Rsync { code: code.unwrap_or(-1), stderr }),
        }
        Ok(Sent { changed: parse_itemized(&String::from_utf8_lossy(&out.stdout)) })
    }
}

/// Paths from `rsync --itemize-changes` output ("*deleting   x",
/// ">f.st...... x", "cd+++++++++ dir/"), attribute-only changes skipped.
pub fn parse_itemized(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            if let Some(p) = l.strip_prefix("*deleting") {
                return Some(p.trim_start().to_owned());
            }
            let (code, path) = l.split_at_checked(12)?;
            // '<': sent to the box (a push); '>': received; 'c': created
            // (a symlink, a device); a new directory alone is not a change.
            let changed = code.starts_with(['<', '>']) || code.starts_with('c') && !code.starts_with("cd");
            (changed && path != "./").then(|| path.to_owned())
        })
        .collect()
}

/// What the box should do after a batch: installs (command and the
/// services it restarts) and restarts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub installs: BTreeMap<String, Vec<String>>,
    pub restarts: BTreeSet<String>,
}

/// Per service, which changed files call for an install or a restart.
pub struct Rules {
    rules: Vec<ServiceRule>,
}

struct ServiceRule {
    service: String,
    /// The install command and the globs that call for it.
    install: Option<(String, GlobSet)>,
    restart_on: GlobSet,
}

impl Rules {
    /// Globs were checked by manifest validation.
    pub fn new(manifest: &Manifest) -> Rules {
        let set = |globs: &[String]| {
            let mut b = GlobSetBuilder::new();
            for g in globs {
                if let Ok(g) = Glob::new(g) {
                    b.add(g);
                }
            }
            b.build().unwrap_or_else(|_| GlobSet::empty())
        };
        let rules = manifest
            .services
            .iter()
            .map(|(name, s)| ServiceRule { service: name.clone(), install: s.install.clone().map(|i| (i, set(&s.install_on))), restart_on: set(&s.restart_on) })
            .collect();
        Rules { rules }
    }

    pub fn actions(&self, changed: &[String]) -> Actions {
        let mut out = Actions::default();
        for rule in &self.rules {
            if let Some((command, on)) = &rule.install {
                if changed.iter().any(|c| on.is_match(c)) {
                    out.installs.entry(command.clone()).or_default().push(rule.service.clone());
                    continue;
                }
            }
            if changed.iter().any(|c| rule.restart_on.is_match(c)) {
                out.restarts.insert(rule.service.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itemized_output_names_changes_not_attribute_updates() {
        let out = "*deleting   src/old.js\n<f.st...... src/app.js\n<f+++++++++ package-lock.json\n.d..t...... src/\ncd+++++++++ lib/\n.f...p..... mode-only\n";
        assert_eq!(parse_itemized(out), vec!["src/old.js", "src/app.js", "package-lock.json"]);
    }

    #[test]
    fn batches_name_parent_directories_or_go_full() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let paths: BTreeSet<PathBuf> = [dir.path().join("a.txt"), dir.path().join("x/y/gone.txt")].into();
        assert_eq!(Batch::of(dir.path(), &paths), Batch::Dirs(["".to_owned(), "x/y".to_owned()].into()));
        assert_eq!(Batch::of(dir.path(), &[dir.path().join("sub")].into()), Batch::Full, "a new directory brings contents");
        let many: BTreeSet<PathBuf> = (0..=FULL_SYNC_ABOVE).map(|i| dir.path().join(format!("f{i}"))).collect();
        assert_eq!(Batch::of(dir.path(), &many), Batch::Full);
    }

    #[test]
    fn a_lockfile_change_installs_once_and_restarts_only_its_services() {
        let m: Manifest = toml::from_str(
            "[box]\ninstance_type = \"t3.micro\"\ndisk_gib = 8\nimage_id = \"ami-1\"\n\
             [services.web]\ncommand = \"node web.js\"\ninstall = \"npm ci\"\ninstall_on = [\"package-lock.json\"]\nrestart_on = [\"web/**\"]\n\
             [services.worker]\ncommand = \"node worker.js\"\ninstall = \"npm ci\"\ninstall_on = [\"package-lock.json\"]\n\
             [services.api]\ncommand = \"python api.py\"\nrestart_on = [\"api/**\"]\n",
        )
        .unwrap();
        let rules = Rules::new(&m);
        let a = rules.actions(&["package-lock.json".into(), "api/x.py".into()]);
        assert_eq!(a.installs, [("npm ci".to_owned(), vec!["web".to_owned(), "worker".to_owned()])].into());
        assert_eq!(a.restarts, ["api".to_owned()].into());
        assert_eq!(rules.actions(&["web/index.js".into()]).restarts, ["web".to_owned()].into());
        assert_eq!(rules.actions(&["README.md".into()]), Actions::default());
    }
}

/// The running sync: the watch loop, reconnection, and what the box does
/// after each batch.
pub mod session {
    use std::collections::BTreeSet;
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use notify::{RecursiveMode, Watcher};
    use sha2::{Digest, Sha256};

    use super::{Actions, Batch, Rules, Sent, SyncError, Target};
    use crate::config::LoadedManifest;
    use crate::layout::sh;
    use crate::lifecycle::{Context, LifecycleError};
    use crate::onbox::OnBox;
    use crate::provider::BoxInfo;

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

    /// One line per event, for the CLI to print.
    pub trait Report {
        fn line(&self, text: &str);
    }

    /// Holds the per-checkout lock for the life of the sync.
    pub struct Lock(#[allow(dead_code)] File);

    /// One sync per checkout: a second one would race the first's deletes.
    pub fn lock(state_dir: &Path, local: &Path) -> Result<Lock, SessionError> {
        let hash = hex::encode(&Sha256::digest(local.to_string_lossy().as_bytes())[..8]);
        std::fs::create_dir_all(state_dir).map_err(|source| SessionError::Io { context: format!("creating {}", state_dir.display()), source })?;
        let path = state_dir.join(format!("sync-{hash}.lock"));
        let mut f = File::options().create(true).truncate(false).read(true).write(true).open(&path).map_err(|source| SessionError::Io { context: format!("opening {}", path.display()), source })?;
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
            let session = ctx.connect(info).await?;
            let root = OnBox::probe(&session, &info.name).await.map_err(LifecycleError::from)?.layout.root().to_owned();
            session.close().await;
            let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkout".into());
            let rel = manifest.manifest.sync.path.clone().unwrap_or_else(|| format!("src/{name}"));
            let target = Target {
                local,
                ssh_config,
                host: crate::ssh_config::host_alias(&info.name),
                remote: format!("{root}/{rel}"),
                exclude: manifest.manifest.sync.exclude.clone(),
                control_path: super::control_path(&ctx.paths.state_dir),
            };
            Ok(Sync { ctx, info, rules: Rules::new(&manifest.manifest), target, marked: Default::default() })
        }

        /// Pushes a batch, retrying with backoff while the box is
        /// unreachable; after a reconnection everything is re-synced.
        async fn push(&self, batch: Batch, report: &dyn Report) -> Result<Sent, SessionError> {
            let mut batch = batch;
            let mut wait = Duration::from_secs(1);
            loop {
                let target = self.target.clone();
                let b = batch.clone();
                match tokio::task::spawn_blocking(move || target.push(&b)).await.expect("rsync thread") {
                    Err(SyncError::Unreachable { stderr, .. }) => {
                        report.line(&format!("box unreachable ({}); retrying in {}s", stderr.lines().last().unwrap_or(""), wait.as_secs()));
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
            let session = self.ctx.connect(self.info).await?;
            let onbox = OnBox::probe(&session, &self.info.name).await.map_err(LifecycleError::from)?;
            let marker = format!("{}/sync-activity", onbox.layout.run_dir());
            let _ = onbox.check(&format!("mkdir -p {} && touch {}", sh(&onbox.layout.run_dir()), sh(&marker))).await;
            let mut restart: BTreeSet<String> = actions.restarts.clone();
            for (command, services) in &actions.installs {
                report.line(&format!("running `{command}` on the box (for {})", services.join(", ")));
                let out = session.output(&onbox.wrap(&format!("cd {} && sh -c {} 2>&1", sh(&self.target.remote), sh(command)))).await.map_err(LifecycleError::from)?;
                let text = String::from_utf8_lossy(&out.stdout);
                if out.status == 0 {
                    restart.extend(services.iter().cloned());
                } else {
                    let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
                    report.line(&format!("`{command}` failed (exit {}); not restarting {}:\n{}", out.status, services.join(", "), tail.join("\n")));
                }
            }
            if !restart.is_empty() {
                let names: Vec<String> = restart.iter().map(|s| sh(s)).collect();
                match onbox.run("restarting services", &onbox.supervisorctl(&format!("restart {}", names.join(" ")))).await {
                    Ok(_) => report.line(&format!("restarted {}", restart.iter().cloned().collect::<Vec<_>>().join(", "))),
                    Err(e) => report.line(&format!("restart failed: {e}")),
                }
            }
            session.close().await;
            Ok(())
        }

        async fn round(&self, batch: Batch, report: &dyn Report) -> Result<usize, SessionError> {
            tracing::debug!("sync batch {batch:?}");
            let sent = self.push(batch, report).await?;
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

        /// The first full pass: how many paths changed on the box.
        pub async fn initial(&self, report: &dyn Report) -> Result<usize, SessionError> {
            self.round(Batch::Full, report).await
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
                let n = self.round(batch, report).await?;
                if n > 0 {
                    report.line(&format!("synced {n} change(s)"));
                }
            }
            Ok(())
        }
    }
}
