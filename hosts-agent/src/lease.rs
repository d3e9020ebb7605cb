//! Waiting out writers of a file we just replaced, with Linux file leases
//! (fcntl(2), "Leases").
//!
//! An appender that opened the hosts file just before our rename writes
//! into the old inode a moment later, and that line would be lost. A read
//! lease tells exactly when that can still happen: taking one fails with
//! EAGAIN while any process holds the file open for writing, and while we
//! hold it, a process opening the file for writing blocks until we let go
//! (F_GETLEASE then reports the break). So after the rename we take a read
//! lease on the old file; once we hold it with no break pending, no writer
//! has it open or is opening it, and what it holds now is final.
//!
//! Leases need the file's owner or CAP_LEASE (the agent runs as root) and
//! a filesystem that has them; where they fail otherwise, [`quiesce`] says
//! so and the caller falls back to a fixed wait.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long to wait for writers of the old file to close it: an appender
/// takes microseconds; an editor that keeps it open is not waited for
/// longer (its later writes are not ours to carry).
const WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(1);

#[derive(Debug, PartialEq, Eq)]
pub enum Quiet {
    /// No writer has the file open or is opening it: `check`'s answer is final.
    Yes,
    /// A writer kept it open past the wait.
    TimedOut,
    /// Leases are not available here (errno).
    Unsupported(i32),
}

/// Runs `check` on `old` once no process has it open for writing, and
/// again whenever a writer was opening it meanwhile. Returns the last
/// answer of `check` (None if it never ran) and how it ended.
pub fn quiesce<T>(old: &File, mut check: impl FnMut() -> T) -> (Option<T>, Quiet) {
    ignore_lease_breaks();
    let fd = old.as_raw_fd();
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    loop {
        // SAFETY: fcntl on a descriptor we own, with integer arguments.
        let taken = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
        if taken == 0 {
            last = Some(check());
            // SAFETY: as above.
            let pending = unsafe { libc::fcntl(fd, libc::F_GETLEASE) } != libc::F_RDLCK;
            // SAFETY: as above.
            unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
            if !pending {
                return (last, Quiet::Yes);
            }
        } else {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno != libc::EAGAIN {
                return (last, Quiet::Unsupported(errno));
            }
        }
        if Instant::now() >= deadline {
            return (last, Quiet::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}

/// A broken lease is signalled with SIGIO, whose default action ends the
/// process: we ask instead (F_GETLEASE), so the signal is ignored.
fn ignore_lease_breaks() {
    static ONCE: Once = Once::new();
    // SAFETY: setting a signal's disposition to SIG_IGN, once.
    ONCE.call_once(|| unsafe {
        libc::signal(libc::SIGIO, libc::SIG_IGN);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_nobody_writes_is_quiet_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "a\n").unwrap();
        let f = File::open(&path).unwrap();
        let (answer, quiet) = quiesce(&f, || std::fs::read(&path).unwrap());
        // Leases need the file's owner or CAP_LEASE and a filesystem that
        // has them: without, the test cannot run here, and says so.
        assert_eq!(quiet, Quiet::Yes, "no lease on a file of our own in {} (needs a filesystem with leases)", dir.path().display());
        assert_eq!(answer.unwrap(), b"a\n");
    }

    #[test]
    fn a_writer_holding_it_open_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "a\n").unwrap();
        let f = File::open(&path).unwrap();
        let mut writer = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.write_all(b"late\n").unwrap();
        });
        let (answer, quiet) = quiesce(&f, || std::fs::read(&path).unwrap());
        closer.join().unwrap();
        // Leases need the file's owner or CAP_LEASE and a filesystem that
        // has them: without, the test cannot run here, and says so.
        assert_eq!(quiet, Quiet::Yes, "no lease on a file of our own in {} (needs a filesystem with leases)", dir.path().display());
        assert_eq!(answer.unwrap(), b"a\nlate\n", "the check ran after the writer closed");
    }
}
