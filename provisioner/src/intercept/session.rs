//! The laptop's side of an intercept, over one OpenSSH connection (the
//! generated config: the pinned host key; OpenSSH's own forwarding, so the
//! intercept is as fast as `ssh -R`):
//! 1. a control master whose remote command is the box's hold script
//!    ([`super::hold`]) and whose local forwards are the outgoing ones;
//! 2. once the script says `held` (the service is stopped, so its ports
//!    are free), the incoming remote forwards are added to that connection
//!    (`ssh -O forward -R`), bound on all the box's addresses so a
//!    colleague sharing the box reaches the laptop too;
//! 3. the command runs here with the service's environment, while a line a
//!    [`super::hold::HEARTBEAT`] renews the lease;
//! 4. when the command ends (or Ctrl-C), end of input tells the box to end
//!    the hold; if the connection drops, the command is stopped and the
//!    box ends the hold by itself once the lease runs out.
//!
//! The master runs in its own process group, so Ctrl-C reaches the command
//! and not the connection; if this process is killed, the master's input
//! closes and the box restores the service at once.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::hold::{self, Answer};
use super::plan::{Outgoing, Plan};
use crate::manifest::Manifest;
use crate::poll::{self, Backoff};
use crate::stack::holds::Holder;
use crate::stack::layout::sh;
use crate::stack::services;
use crate::stack::shell::{BoxShell, ShellError};

/// How long the box may take to stop the service and answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a command gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// Asking whether it is: every 200 ms (a status costs a round trip).
const RESTORE_POLL: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(200));
/// How long the service may take to be up again after the hold ends.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum InterceptError {
    #[error("{service} is already intercepted{}; wait until that intercept ends", held_text(.holder))]
    HeldBy { service: String, holder: Option<Holder> },
    #[error("could not take {service} on box {name}: {detail}")]
    Hold { service: String, name: String, detail: String },
    #[error("could not forward box port(s) {ports} to this laptop (ssh -O forward exited {status}); is something else listening on them on the box? (ports below 1024 need the box's SSH user to be root)")]
    Forward { ports: String, status: String },
    #[error("cannot run {what}: {source}")]
    Spawn { what: String, source: std::io::Error },
}

fn held_text(holder: &Option<Holder>) -> String {
    holder.as_ref().map_or(String::new(), |h| {
        let ports: Vec<String> = h.ports.iter().map(u16::to_string).collect();
        format!(" by {} since {} (ports {})", h.by, h.since.format("%Y-%m-%d %H:%M UTC"), ports.join(", "))
    })
}

/// How an intercept ended.
#[derive(Debug)]
pub enum Ended {
    /// The command exited (its status).
    Command(ExitStatus),
    /// The SSH connection ended under the command, which was stopped.
    ConnectionLost,
}

/// What an intercept needs of the box and the laptop.
pub struct Intercept<'a> {
    /// The generated OpenSSH config and the box's alias in it.
    pub ssh_config: &'a Path,
    /// [`crate::boxes::Context::openssh_options`].
    pub ssh_options: &'a [String],
    pub alias: &'a str,
    /// A session on the box (its layout, how it runs commands as root).
    pub onbox: &'a BoxShell,
    pub manifest: &'a Manifest,
    pub plan: &'a Plan,
    /// Who holds the service (checked by [`crate::stack::holds::valid_holder`]).
    pub by: &'a str,
}

impl Intercept<'_> {
    /// Runs `command` intercepting the service; returns how it ended (the
    /// box then starts the service again: [`wait_restored`]).
    pub async fn run(&self, command: &[String]) -> Result<Ended, InterceptError> {
        let service = &self.plan.service;
        let socket_dir = socket_dir()?;
        let socket = socket_dir.path().join("c");
        let mut master = self.master(&socket)?;
        let mut stdout = BufReader::new(master.stdout.take().expect("piped"));
        let mut line = String::new();
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, stdout.read_line(&mut line)).await;
        let ipv6 = match hold::parse_answer(&line) {
            Some(Answer::Held { ipv6 }) => ipv6,
            other => {
                drop(master.stdin.take());
                let status = wait_or_kill(&mut master, Duration::from_secs(10)).await;
                return Err(match other {
                    Some(Answer::HeldBy(holder)) => InterceptError::HeldBy { service: service.clone(), holder },
                    _ => InterceptError::Hold {
                        service: service.clone(),
                        name: self.onbox.name.clone(),
                        detail: match (answer, line.trim()) {
                            (Err(_), _) => format!("no answer within {ANSWER_TIMEOUT:?}"),
                            (_, "") => format!("the SSH connection ended ({}; its message is above)", describe(status)),
                            (_, said) => printable(said),
                        },
                    },
                });
            }
        };
        // Nothing more comes on stdout; keep reading so the pipe never fills.
        tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
        let stdin = master.stdin.take().expect("piped");
        let heartbeat = tokio::spawn(heartbeat(stdin));

        if let Err(e) = self.forward_incoming(&socket, ipv6).await {
            heartbeat.abort();
            wait_or_kill(&mut master, Duration::from_secs(15)).await;
            return Err(e);
        }

        let ended = run_command(&self.plan.environment, command, &mut master).await;
        heartbeat.abort();
        let _ = heartbeat.await;
        let ended = match ended {
            Ok(ended) => ended,
            Err(e) => {
                wait_or_kill(&mut master, Duration::from_secs(15)).await;
                return Err(e);
            }
        };
        wait_or_kill(&mut master, Duration::from_secs(15)).await;
        Ok(ended)
    }

    fn ssh(&self) -> Command {
        ssh_command(self.ssh_config, self.ssh_options)
    }

    fn master(&self, socket: &Path) -> Result<Child, InterceptError> {
        let layout = &self.onbox.layout;
        let service = &self.plan.service;
        let ports: Vec<u16> = self.plan.incoming.iter().map(|i| i.box_port).collect();
        let store = self.manifest.stores.get(service);
        let script =
            hold::script(layout, service, self.by, &ports, &self.onbox.control("stop", service, store), &self.onbox.control("start", service, store), true);
        let remote = self.onbox.wrap(&format!("bash -c {}", sh(&script)));
        spawn_master(self.ssh(), socket, self.alias, &self.plan.outgoing, &remote)
    }

    /// The remote forwards, on every IPv4 address and, when the box has
    /// IPv6, every IPv6 one: held by sshd (root) on both, the ports cannot
    /// be bound by any other process on the box while the intercept lasts.
    async fn forward_incoming(&self, socket: &Path, ipv6: bool) -> Result<(), InterceptError> {
        let mut ssh = self.ssh();
        ssh.arg("-S").arg(socket).args(["-O", "forward"]);
        for i in &self.plan.incoming {
            ssh.arg("-R").arg(format!("0.0.0.0:{}:127.0.0.1:{}", i.box_port, i.local_port));
            if ipv6 {
                ssh.arg("-R").arg(format!("[::]:{}:127.0.0.1:{}", i.box_port, i.local_port));
            }
        }
        let out = ssh.arg(self.alias).stdin(Stdio::null()).output().await.map_err(|e| InterceptError::Spawn { what: "ssh -O forward".into(), source: e })?;
        if out.status.success() {
            return Ok(());
        }
        let ports: Vec<String> = self.plan.incoming.iter().map(|i| i.box_port.to_string()).collect();
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(InterceptError::Forward {
            ports: ports.join(", "),
            status: format!("{}{}", describe(out.status), if said.is_empty() { String::new() } else { format!(": {said}") }),
        })
    }
}

/// `ssh` with the generated config (the pinned host key; the box was woken
/// and the config written just now) and the context's options.
pub(super) fn ssh_command(config: &Path, options: &[String]) -> Command {
    let mut ssh = Command::new("ssh");
    ssh.arg("-F").arg(config).args(options);
    ssh
}

/// A private directory for the control master's socket.
pub(super) fn socket_dir() -> Result<tempfile::TempDir, InterceptError> {
    tempfile::Builder::new().prefix("ws-ic-").tempdir().map_err(|e| InterceptError::Spawn { what: "a temporary directory".into(), source: e })
}

/// The intercept's control master at `socket`: `remote` (the box's side,
/// talking over stdin and stdout) as its command, `outgoing` as its local
/// forwards, keepalives at the heartbeat's pace, in a process group of its
/// own (Ctrl-C reaches the command, not the connection).
pub(super) fn spawn_master(mut ssh: Command, socket: &Path, alias: &str, outgoing: &[Outgoing], remote: &str) -> Result<Child, InterceptError> {
    ssh.args(["-T", "-M", "-S"]).arg(socket);
    let alive = hold::HEARTBEAT.as_secs().to_string();
    ssh.args(["-o", "ControlPersist=no", "-o", "ExitOnForwardFailure=yes", "-o", &format!("ServerAliveInterval={alive}"), "-o", "ServerAliveCountMax=4"]);
    for o in outgoing {
        ssh.arg("-L").arg(format!("127.0.0.1:{}:127.0.0.1:{}", o.local_port, o.box_port));
    }
    ssh.arg(alias).arg("--").arg(remote);
    ssh.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).process_group(0);
    ssh.spawn().map_err(|e| InterceptError::Spawn { what: "ssh (the OpenSSH client; install openssh-client)".into(), source: e })
}

/// Runs the command with `environment` until it exits or the connection
/// (`master`) ends.
pub(super) async fn run_command(
    environment: &std::collections::BTreeMap<String, String>,
    command: &[String],
    master: &mut Child,
) -> Result<Ended, InterceptError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Ctrl-C goes to the command (the terminal's process group) and
    // ends it; here it only must not end workstation first.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| InterceptError::Spawn { what: "a signal handler".into(), source: e })?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| InterceptError::Spawn { what: "a signal handler".into(), source: e })?;
    let (program, args) = command.split_first().expect("clap requires a command");
    // It ends with workstation, even a killed one: otherwise it would keep
    // the laptop's port and the next intercept could not bind it. Started
    // from a tokio worker thread, which lives as long as the process.
    let mut child = std::process::Command::new(program);
    child.args(args).envs(environment);
    crate::child::ends_with_us(&mut child);
    let mut child = Command::from(child).spawn().map_err(|e| InterceptError::Spawn { what: program.clone(), source: e })?;
    let exited = |status: std::io::Result<ExitStatus>| status.map(Ended::Command).map_err(|e| InterceptError::Spawn { what: program.clone(), source: e });
    loop {
        tokio::select! {
            status = child.wait() => return exited(status),
            _ = master.wait() => {
                stop(&mut child).await;
                return Ok(Ended::ConnectionLost);
            }
            // Ctrl-C at the terminal reached the command too, which
            // decides (a debugger keeps running); sent to us alone
            // (kill -INT), it is passed on.
            _ = interrupt.recv() => {
                if !terminal_sent_it() {
                    signal_child(&child, libc::SIGINT);
                }
            }
            _ = terminate.recv() => return Ok(Ended::Command(stop(&mut child).await)),
        }
    }
}

/// Renews the lease until aborted; dropping `stdin` then is the box's
/// signal to end the hold.
pub(super) async fn heartbeat(mut stdin: tokio::process::ChildStdin) {
    loop {
        if stdin.write_all(b"\n").await.is_err() {
            return;
        }
        tokio::time::sleep(hold::HEARTBEAT).await;
    }
}

/// Whether this process is in its terminal's foreground process group
/// (so a Ctrl-C there went to the command as well).
fn terminal_sent_it() -> bool {
    // SAFETY: both calls only read the process's and the terminal's state.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

fn signal_child(child: &Child, signal: i32) {
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(pid as i32, signal) };
    }
}

/// SIGTERM, then SIGKILL after [`TERM_GRACE`].
async fn stop(child: &mut Child) -> ExitStatus {
    signal_child(child, libc::SIGTERM);
    wait_or_kill(child, TERM_GRACE).await
}

/// Waits until supervisord runs `service` again on the box and it passes
/// its check (the box starts it once the forwards are gone), on a new
/// session (the first one may have idled through the whole intercept).
pub async fn wait_restored(onbox: &BoxShell, manifest: &Manifest, service: &str) -> Result<bool, ShellError> {
    let up = poll::until(RESTORE_TIMEOUT, RESTORE_POLL, async || {
        Ok::<_, ShellError>(services::status(onbox, manifest, Some(service)).await?.iter().all(services::ProgramStatus::is_up).then_some(()))
    })
    .await?;
    Ok(up.is_some())
}

pub(super) async fn wait_or_kill(child: &mut Child, grace: Duration) -> ExitStatus {
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => status,
        _ => {
            let _ = child.kill().await;
            child.wait().await.unwrap_or_default()
        }
    }
}

/// What the box said, fit for this terminal: at most 2000 characters, with
/// control characters (escape sequences) shown escaped, not obeyed.
pub(super) fn printable(said: &str) -> String {
    said.chars().take(2000).flat_map(|c| if c.is_control() { c.escape_debug().collect::<Vec<_>>() } else { vec![c] }).collect()
}

pub(super) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => "ended".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_the_box_says_cannot_drive_the_terminal() {
        assert_eq!(super::printable("error: \u{1b}]0;pwned\u{7} no"), "error: \\u{1b}]0;pwned\\u{7} no");
        assert_eq!(super::printable(&"x".repeat(3000)).len(), 2000);
    }
}
