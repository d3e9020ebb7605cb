//! One rsync run over the pinned OpenSSH config: a whole tree or just the
//! directories a batch touched, and what it reports it sent.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{SyncError, FULL_SYNC_ABOVE};

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
