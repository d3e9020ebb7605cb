//! Writing the hosts file without ever losing or mangling it.
//!
//! Under a lock (so two agents, or the agent and a one-shot recovery, never
//! interleave): read the file, splice our block, write a temp file in the
//! same directory with the old mode, owner and extended attributes (the
//! SELinux label), fsync it, check the file still holds what we read
//! (compare-and-swap: someone else's edit is re-read and kept, never
//! overwritten), rename over it and fsync the directory. A reader, or a
//! kill -9 at any moment, sees the old file or the new one.
//!
//! Where rename is impossible because the file is a bind mount (EBUSY, as in
//! containers), the new bytes go over the old in one write that never
//! shrinks the file (a shorter block is padded with spaces on its BEGIN
//! line), or in one truncate that cuts a trailing block off; so no reader
//! ever sees an empty or half-old file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use workstation_hosts_protocol::WriteMode;

use crate::block::{self, BlockError, Entry};
use crate::lease;

/// Rounds of read, check, swap before giving up on a file that keeps
/// changing under us.
const MAX_ATTEMPTS: u32 = 50;
/// Without file leases: how long after a rename a write to the replaced
/// file is still awaited. It narrows a race that a rename cannot close (an
/// appender holding the old file open) to a scheduler delay longer than
/// this; 20 ms lost a line once in a few loaded suite runs. With leases
/// (the usual case, [`lease`]) the agent knows when the last writer of the
/// old file is done instead.
const LATE_GRACE: std::time::Duration = std::time::Duration::from_millis(60);

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Block { path: String, source: BlockError },
    #[error("{path} kept changing while we wrote it ({attempts} attempts); nothing was written, retry")]
    Contended { path: String, attempts: u32 },
}

type Result<T, E = HostsError> = std::result::Result<T, E>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> HostsError {
    let context = context.into();
    move |source| HostsError::Io { context, source }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub mode: WriteMode,
    /// Reads of the file it took (more than 1: someone else wrote meanwhile).
    pub attempts: u32,
    /// Where a concurrent rewrite of the old file was saved, in the rare
    /// case someone rewrote it in place just as we replaced it.
    pub conflict_copy: Option<PathBuf>,
}

pub struct HostsFile {
    path: PathBuf,
}

/// What happened to the file we replaced after our last check.
enum Late {
    Nothing,
    /// Bytes appended to the old file: they belong in the new one.
    Appended(Vec<u8>),
    /// The old file was rewritten: saved aside, reported.
    Rewritten(PathBuf),
}

impl HostsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HostsFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    fn sibling(&self, what: &str) -> PathBuf {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "hosts".into());
        self.dir().join(format!(".{name}.workstation-hosts.{what}"))
    }

    /// The entries our block holds now.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let bytes = fs::read(&self.path).map_err(io_err(format!("reading {}", self.display())))?;
        block::entries(&bytes).map_err(|source| HostsError::Block { path: self.display(), source })
    }

    /// Makes our block hold exactly `entries` (none: no block at all).
    pub fn write(&self, entries: &[Entry]) -> Result<Written> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.sibling("lock"))
            .map_err(io_err(format!("opening the lock file beside {}", self.display())))?;
        lock.lock().map_err(io_err(format!("locking {}", self.display())))?;
        self.remove_stale_temps();

        let mut carried: Vec<u8> = Vec::new();
        let mut conflict_copy = None;
        for attempt in 1..=MAX_ATTEMPTS {
            let (file, current) = self.open_current()?;
            let base = with_carried(&current, &carried);
            let new = block::splice(&base, entries).map_err(|source| HostsError::Block { path: self.display(), source })?;
            if new == current {
                let mode = if attempt == 1 { WriteMode::Unchanged } else { WriteMode::Renamed };
                return Ok(Written { mode, attempts: attempt, conflict_copy });
            }
            match self.replace(file.as_ref(), &current, &new, entries)? {
                None => continue, // changed under us: re-read and re-apply
                Some((mode, late)) => match late {
                    Late::Nothing => return Ok(Written { mode, attempts: attempt, conflict_copy }),
                    Late::Appended(bytes) => carried = bytes,
                    Late::Rewritten(copy) => {
                        conflict_copy = Some(copy);
                        return Ok(Written { mode, attempts: attempt, conflict_copy });
                    }
                },
            }
        }
        Err(HostsError::Contended { path: self.display(), attempts: MAX_ATTEMPTS })
    }

    /// The file (None if it does not exist yet) and its bytes.
    fn open_current(&self) -> Result<(Option<File>, Vec<u8>)> {
        match File::open(&self.path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(io_err(format!("reading {}", self.display())))?;
                Ok((Some(f), bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((None, Vec::new())),
            Err(e) => Err(io_err(format!("opening {}", self.display()))(e)),
        }
    }

    /// Swaps `new` in for `current`; None when the file changed meanwhile
    /// in a way that needs a fresh splice.
    fn replace(&self, file: Option<&File>, current: &[u8], new: &[u8], entries: &[Entry]) -> Result<Option<(WriteMode, Late)>> {
        let tmp = self.sibling(&format!("tmp.{}", std::process::id()));
        let staged = self.stage(file, &tmp, new);
        let result = match staged {
            Ok(()) => match self.catch_up(file, current, new, &tmp)? {
                None => Ok(None),
                Some(seen) => match fs::rename(&tmp, &self.path) {
                    Ok(()) => {
                        File::open(self.dir()).and_then(|d| d.sync_all()).map_err(io_err(format!("syncing the directory of {}", self.display())))?;
                        let late = match file {
                            Some(f) => self.late(f, &seen, seen.len() != current.len())?,
                            None => Late::Nothing,
                        };
                        Ok(Some((WriteMode::Renamed, late)))
                    }
                    Err(e) if rename_impossible(&e) => {
                        let _ = fs::remove_file(&tmp);
                        self.in_place(current, entries)
                    }
                    Err(e) => Err(io_err(format!("renaming {} over {}", tmp.display(), self.display()))(e)),
                },
            },
            // Could not reproduce the file's metadata on a new inode
            // (labels we may not set): keep the inode, write in place.
            Err(_) if file.is_some() => {
                let _ = fs::remove_file(&tmp);
                self.in_place(current, entries)
            }
            Err(e) => Err(e),
        };
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Compare-and-swap check before the rename: the bytes `tmp` now
    /// mirrors, or None when the file changed in a way that needs a fresh
    /// splice. Lines other tools appended meanwhile (the common concurrent
    /// edit) are appended to `tmp` too, so a steady appender cannot starve
    /// us.
    fn catch_up(&self, file: Option<&File>, current: &[u8], new: &[u8], tmp: &Path) -> Result<Option<Vec<u8>>> {
        let Some(file) = file else { return Ok((!self.path.exists()).then(Vec::new)) };
        let mut seen = current.to_vec();
        for _ in 0..MAX_ATTEMPTS {
            if self.replaced(file)? {
                return Ok(None);
            }
            let now = read_all_at(file).map_err(io_err(format!("re-reading {}", self.display())))?;
            if now == seen {
                return Ok(Some(seen));
            }
            // Only appends can be carried over; and our file must end in a
            // line break, or their first line would join our last.
            if !now.starts_with(&seen) || !new.ends_with(b"\n") {
                return Ok(None);
            }
            let ctx = || format!("appending concurrent lines to {}", tmp.display());
            let mut t = OpenOptions::new().append(true).open(tmp).map_err(io_err(ctx()))?;
            io::Write::write_all(&mut t, &now[seen.len()..]).map_err(io_err(ctx()))?;
            t.sync_all().map_err(io_err(ctx()))?;
            seen = now;
        }
        Ok(None)
    }

    /// True when the path no longer names the file we opened.
    fn replaced(&self, file: &File) -> Result<bool> {
        let ours = file.metadata().map_err(io_err(format!("checking {}", self.display())))?;
        Ok(!matches!(fs::metadata(&self.path), Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev()))
    }

    /// Writes `new` to `tmp` with the metadata of the current file.
    fn stage(&self, file: Option<&File>, tmp: &Path, new: &[u8]) -> Result<()> {
        let _ = fs::remove_file(tmp);
        let meta = file.map(File::metadata).transpose().map_err(io_err(format!("reading the metadata of {}", self.display())))?;
        let mode = meta.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
        let ctx = || format!("writing {}", tmp.display());
        let mut t = OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp).map_err(io_err(ctx()))?;
        io::Write::write_all(&mut t, new).map_err(io_err(ctx()))?;
        if let Some(meta) = &meta {
            std::os::unix::fs::fchown(&t, Some(meta.uid()), Some(meta.gid())).map_err(io_err(ctx()))?;
            copy_xattrs(&self.path, tmp).map_err(io_err(format!("copying extended attributes (SELinux label) of {}", self.display())))?;
        }
        // After chown, and whatever the umask was.
        t.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(ctx()))?;
        t.sync_all().map_err(io_err(ctx()))
    }

    /// What reached the replaced file after our last check. An append that
    /// opened the path just before the rename lands in the old file a
    /// moment later: the last look is taken once no process has the old
    /// file open for writing ([`lease::quiesce`]). Where leases are not
    /// available it waits [`LATE_GRACE`] if someone was appending during
    /// this write (`appending`), which narrows the race without closing it.
    fn late(&self, old: &File, seen: &[u8], appending: bool) -> Result<Late> {
        let read = || read_all_at(old);
        let now = match lease::quiesce(old, read) {
            (Some(now), lease::Quiet::Yes | lease::Quiet::TimedOut) => now,
            (_, quiet) => {
                tracing::debug!("no lease on the replaced {} ({quiet:?}): a fixed wait", self.display());
                if appending {
                    std::thread::sleep(LATE_GRACE);
                }
                read()
            }
        };
        let now = now.map_err(io_err(format!("re-reading the replaced {}", self.display())))?;
        if now == seen {
            return Ok(Late::Nothing);
        }
        if let Some(tail) = now.strip_prefix(seen) {
            return Ok(Late::Appended(tail.to_vec()));
        }
        let copy = self.dir().join(format!(
            "{}.workstation-hosts.conflict.{}",
            self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        ));
        fs::write(&copy, &now).map_err(io_err(format!("saving a concurrent edit to {}", copy.display())))?;
        tracing::warn!("{} was rewritten in place while we replaced it; that version is saved as {}", self.display(), copy.display());
        Ok(Late::Rewritten(copy))
    }

    /// The bind-mount fallback: same inode, one write, never a shrink
    /// (see [`block::splice_padded`]) except by a lone truncate that cuts a
    /// trailing block off; so a reader or a kill sees the old file or the
    /// new one.
    fn in_place(&self, current: &[u8], entries: &[Entry]) -> Result<Option<(WriteMode, Late)>> {
        let ctx = || format!("writing {} in place", self.display());
        let block_err = |source| HostsError::Block { path: self.display(), source };
        let f = OpenOptions::new().read(true).write(true).open(&self.path).map_err(io_err(ctx()))?;
        if read_all_at(&f).map_err(io_err(ctx()))? != current {
            return Ok(None);
        }
        let new = block::splice(current, entries).map_err(block_err)?;
        if new.len() < current.len() && current.starts_with(&new) {
            f.set_len(new.len() as u64).map_err(io_err(ctx()))?;
        } else {
            let new = if new.len() < current.len() { block::splice_padded(current, entries, current.len()).map_err(block_err)? } else { new };
            f.write_all_at(&new, 0).map_err(io_err(ctx()))?;
        }
        f.sync_all().map_err(io_err(ctx()))?;
        Ok(Some((WriteMode::InPlace, Late::Nothing)))
    }

    /// Temp files of writers killed mid-write (we hold the lock, so no
    /// live writer owns one).
    fn remove_stale_temps(&self) {
        let prefix = self.sibling("tmp.");
        let Some(prefix) = prefix.file_name().map(|p| p.to_string_lossy().into_owned()) else { return };
        let Ok(dir) = fs::read_dir(self.dir()) else { return };
        for entry in dir.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// EBUSY: the target is a mount point (a bind-mounted /etc/hosts). EXDEV
/// cannot happen for a sibling temp file but means the same: keep the inode.
fn rename_impossible(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(e.raw_os_error().map(Errno::from_raw), Some(Errno::EBUSY | Errno::EXDEV))
}

fn read_all_at(f: &File) -> io::Result<Vec<u8>> {
    let len = f.metadata()?.len() as usize;
    let mut buf = vec![0; len];
    let mut at = 0;
    while at < len {
        let n = f.read_at(&mut buf[at..], at as u64)?;
        if n == 0 {
            buf.truncate(at);
            break;
        }
        at += n;
    }
    // It may have grown since the stat.
    let mut more = [0u8; 4096];
    loop {
        let n = f.read_at(&mut more, buf.len() as u64)?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&more[..n]);
    }
}

/// `current` with lines that late writers appended to a replaced file.
fn with_carried(current: &[u8], carried: &[u8]) -> Vec<u8> {
    let mut out = current.to_vec();
    if !carried.is_empty() && !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(carried);
    out
}

fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    let names = match xattr::list(from) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) => return Ok(()), // none to copy
        Err(e) => return Err(e),
    };
    for name in names {
        if let Some(value) = xattr::get(from, &name)? {
            xattr::set(to, &name, &value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addr: &str, names: &[&str]) -> Vec<Entry> {
        vec![Entry { address: addr.parse().unwrap(), names: names.iter().map(|s| s.to_string()).collect() }]
    }

    #[test]
    fn write_keeps_mode_and_outside_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let original = b"127.0.0.1 localhost\r\n# theirs\r\n10.0.0.1\tx y";
        fs::write(&path, original).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let hosts = HostsFile::new(&path);
        let w = hosts.write(&entry("10.79.0.2", &["api.dev"])).unwrap();
        assert_eq!(w.mode, WriteMode::Renamed);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        assert_eq!(hosts.entries().unwrap(), entry("10.79.0.2", &["api.dev"]));
        assert_eq!(hosts.write(&entry("10.79.0.2", &["api.dev"])).unwrap().mode, WriteMode::Unchanged);
        hosts.write(&[]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), original);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 2, "only the file and its lock: {leftovers:?}");
    }

    #[test]
    fn a_missing_file_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = HostsFile::new(dir.path().join("hosts"));
        hosts.write(&entry("::1", &["a.dev"])).unwrap();
        assert_eq!(hosts.entries().unwrap(), entry("::1", &["a.dev"]));
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        fs::write(&path, b"").unwrap();
        let stale = dir.path().join(".hosts.workstation-hosts.tmp.99999");
        fs::write(&stale, b"half").unwrap();
        HostsFile::new(&path).write(&entry("10.0.0.1", &["a.dev"])).unwrap();
        assert!(!stale.exists());
    }
}
