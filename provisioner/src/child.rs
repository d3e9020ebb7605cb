//! Children that end with workstation: a command the CLI started (an
//! intercept's laptop server, a sync's rsync) must not outlive a kill -9 of
//! it, or it keeps a port or writes beside the next run's.

use std::process::Command;

/// Linux's parent-death signal: SIGTERM to the child when the thread that
/// started it ends. Start it from a thread that lives as long as it should
/// (a tokio worker, or the blocking thread that waits for it). Only the
/// child itself: what it starts in turn gets the signal only if the child
/// passes it on. Elsewhere (macOS) there is no such signal; the child
/// outlives a kill -9.
pub fn ends_with_us(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls
        // (prctl, getppid, _exit) run, as pre_exec requires.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Killed before the prctl: the parent is gone already.
                // (Not raise(SIGTERM): the child still has workstation's
                // SIGTERM handler until it execs.)
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
