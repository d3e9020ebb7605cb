//! Ctrl-C (SIGINT) during a verb that changes boxes, stores or files: the
//! verb stops at its next await (its locks, temporary files and children
//! with kill-on-drop go with it, as their destructors say), and the
//! engineer is told the step it stopped in, what that leaves, and that
//! running the same command again finishes it. That promise is the one a
//! kill -9 already gets (tests/tests/interrupts.rs kills each verb anywhere
//! and runs it again); Ctrl-C only adds the words.
//!
//! Verbs that own Ctrl-C are left alone: `intercept` passes it to its
//! command, `ssh` to the remote shell, and the ones that run until stopped
//! (`sync` watching, `logs --follow`, `port-forward`, `code`) end with it as
//! usual.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use super::args::Command;
use super::env::EnvCommand;
use super::preview::PreviewCommand;

/// The exit code of a command ended by SIGINT, as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// The verb was interrupted: where, and what that left.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C){}: {left}", .step.as_ref().map(|s| format!(" while {s}")).unwrap_or_default())]
pub struct Interrupted {
    /// The last progress step it showed, if any.
    pub step: Option<String>,
    /// What the interrupted run leaves behind, in the engineer's words.
    pub left: &'static str,
    /// The command line that finishes it.
    pub again: String,
}

impl Interrupted {
    /// This run, interrupted now: at the last step it showed.
    fn now(left: &'static str) -> Interrupted {
        Interrupted { step: crate::progress::last_step(), left, again: command_line() }
    }
}

/// What an interrupted run of `command` leaves, when Ctrl-C is ours to
/// handle; None for the verbs that own it or change nothing.
pub fn left_by(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Create(_) => "the box may be launched but not ready; nothing was launched twice",
        Command::Start(_) => "the box may be starting; its services start when it is up",
        Command::Stop(_) => "the box may be stopping; its disk is kept",
        Command::Destroy(_) => "the box may be partly deleted; what is left is still tagged as yours",
        Command::Upgrade(_) => "the upgrade stopped between steps it records; your data volume is untouched",
        Command::Up(_) | Command::Restart(_) => "services may run the old configuration or be restarting; none is left stopped for good",
        Command::Seed(_) => "each store keeps the data it had: new data replaces it only once fully loaded",
        Command::Sync(args) if args.once => "some files on the box may be new and some old; nothing on this laptop changed",
        Command::Init(_) => "setup stopped part-way; every step already done is kept",
        Command::Preview(PreviewCommand::Up(_) | PreviewCommand::Down(_)) | Command::Env(EnvCommand::Up(_) | EnvCommand::Down(_)) => {
            "the box may be partly updated; its data is kept"
        }
        _ => return None,
    })
}

/// Runs `verb`; when Ctrl-C is ours (`left` says what an interrupted run
/// leaves), on Ctrl-C it drops the verb (at its next await) and fails with
/// [`Interrupted`].
pub async fn or_interrupted(left: Option<&'static str>, verb: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    let Some(left) = left else { return verb.await };
    let handled = std::sync::Arc::new(AtomicBool::new(false));
    // A verb that blocks this thread (a prompt reading the terminal, a
    // file lock) cannot be dropped at an await: after a moment, a worker
    // thread says so and ends the process, as SIGINT would have.
    let watchdog = tokio::spawn({
        let handled = handled.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tokio::time::sleep(BLOCKED_GRACE).await;
                if !handled.load(Ordering::SeqCst) {
                    eprintln!("error: {}", Interrupted::now(left));
                    std::process::exit(EXIT_INTERRUPTED.into());
                }
            }
        }
    });
    tokio::pin!(verb);
    let done = tokio::select! {
        // The handler first: it is installed when first polled, and the
        // verb may block this thread before its first await.
        biased;
        signal = tokio::signal::ctrl_c() => match signal {
            Ok(()) => {
                handled.store(true, Ordering::SeqCst);
                Err(Interrupted::now(left).into())
            }
            // No handler could be installed: the verb runs on, and SIGINT
            // ends the process as before (as kill -9 would).
            Err(_) => verb.await,
        },
        done = &mut verb => done,
    };
    watchdog.abort();
    done
}

/// How long a Ctrl-C'd verb blocking its thread is given to reach an
/// await before the process ends without it.
const BLOCKED_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// This process's command line as the engineer typed it, for "run it again".
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| crate::stack::layout::sh(&a)).collect();
    format!("workstation {}", args.join(" "))
}
