//! One rsync run over the pinned OpenSSH config: a whole tree or just the
//! directories a batch touched, and what it reports it sent.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// Above this many changed paths a batch is synced as a whole tree.
pub const FULL_SYNC_ABOVE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// `ssh`: what ssh itself said (rsync's own lines only say it failed).
    #[error("rsync could not reach the box (exit {code}): {ssh}")]
    Unreachable { code: i32, ssh: String },
    #[error("cannot use {} for the shared SSH connection's socket: {why}; remove it (or set XDG_RUNTIME_DIR to a private directory)", .dir.display())]
    ControlDir { dir: std::path::PathBuf, why: String },
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
    /// so an edit does not pay for a handshake.
    pub control_path: PathBuf,
}

/// The longest socket path OpenSSH can bind: `sun_path` holds 104 bytes
/// on macOS (108 on Linux) with the terminating NUL.
const SOCKET_PATH_MAX: usize = 103;
/// OpenSSH binds the control socket at `<ControlPath>.<16 random
/// characters>` and renames it into place (mux.c), so the path must leave
/// room for that suffix too.
const BIND_SUFFIX: usize = 17;

/// Where the shared SSH connection's socket goes: `<dir>/<16 hex>`, the
/// name a hash of the SSH config and host, in a private directory short
/// enough for OpenSSH to bind there whatever HOME is: the runtime directory
/// when it is short enough, else `/tmp/workstation-<uid>` (not `$TMPDIR`,
/// which is long on macOS), made 0700 and checked to be this user's own.
pub fn control_path(ssh_config: &Path, host: &str) -> Result<PathBuf, SyncError> {
    let digest = Sha256::digest(format!("{}\0{host}", ssh_config.display()));
    let name = hex::encode(&digest[..8]);
    let fits = |d: &Path| d.as_os_str().len() + 1 + name.len() + BIND_SUFFIX <= SOCKET_PATH_MAX;
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_absolute() && fits(d));
    let dir = match runtime {
        Some(d) => d,
        None => {
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            let dir = PathBuf::from(format!("/tmp/workstation-{uid}"));
            private_dir(&dir, uid)?;
            dir
        }
    };
    Ok(dir.join(name))
}

/// `dir`, created 0700 if missing, and refused unless it is a directory
/// (not a symlink) owned by `uid` that nobody else can enter: anyone who
/// could would reach the box through the shared connection.
fn private_dir(dir: &Path, uid: u32) -> Result<(), SyncError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let refuse = |why: String| SyncError::ControlDir { dir: dir.to_owned(), why };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(refuse(format!("cannot create it ({e})"))),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| refuse(format!("cannot read it ({e})")))?;
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(refuse(format!("it belongs to uid {}, not you (uid {uid})", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| refuse(format!("cannot make it private ({e})")))?;
    }
    Ok(())
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
        format!(
            "ssh -F {} -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -o ControlMaster=auto -o ControlPersist=60 -o ControlPath={}",
            quote(&self.ssh_config),
            quote(&self.control_path)
        )
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
            // siblings: --delete stays inside it. One receiver at a time,
            // under a lock on that directory: an interrupted sync's
            // receiver finishes (or ends, its sender gone) before the next
            // writes beside its temporary files.
            .arg(format!(
                "--rsync-path=mkdir -p {r} && flock -w 120 {r} rsync",
                r = shlex::try_quote(&self.remote).map(|c| c.into_owned()).unwrap_or_default()
            ));
        // The sender ends with workstation (it runs in the blocking thread
        // that waits for it): a killed sync's rsync does not run on.
        crate::child::ends_with_us(&mut cmd);
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
            Some(code @ (255 | 12 | 10 | 35)) => return Err(SyncError::Unreachable { code, ssh: ssh_said(&stderr) }),
            code => return Err(SyncError::Rsync { code: code.unwrap_or(-1), stderr }),
        }
        Ok(Sent { changed: parse_itemized(&String::from_utf8_lossy(&out.stdout)) })
    }
}

/// What ssh said when rsync's transport failed: its own lines, without
/// rsync's ("rsync: connection unexpectedly closed", "rsync error: ...
/// (code 255)"), which only say that ssh failed.
fn ssh_said(stderr: &str) -> String {
    let own: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("rsync")).collect();
    match own.is_empty() {
        true => stderr.lines().last().unwrap_or("ssh exited without a message").trim().to_owned(),
        false => own.join("; "),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

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
    fn the_control_socket_fits_whatever_the_home() {
        let long = PathBuf::from(format!("/home/{}/.local/state/workstation/ssh_config", "x".repeat(120)));
        let path = control_path(&long, "ws-a-rather-long-box-name").unwrap();
        assert!(path.as_os_str().len() + 17 <= 103, "{}", path.display());
        assert_ne!(path, control_path(&long, "ws-other").unwrap(), "one socket per box");
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path.parent().unwrap()).unwrap();
        assert_eq!(meta.mode() & 0o077, 0, "private");
    }
}
