//! A personal intercept (`--header NAME=VALUE` or `--mirror`) on a box
//! whose service has a `front`: the box's service keeps running for
//! everyone; the box's proxy sends this laptop only the requests carrying
//! the header (or a copy of every request). Over one OpenSSH connection
//! with the pinned host key, as [`super::session`]:
//! 1. a control master whose remote command is `workstation box route`
//!    (boxside/route.rs) and whose local forwards are the outgoing ones;
//! 2. once the box says `ready` (the route claimed, branches made), a
//!    remote forward from a port the box's sshd picks on its loopback to
//!    the laptop's process (`ssh -O forward -R 127.0.0.1:0:...`), whose
//!    number goes to the box, which adds the route and reloads the proxy;
//! 3. the command runs here while a line a heartbeat renews the lease; end
//!    of input or the lease's end removes the route on the box.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::plan::Plan;
use super::session::{describe, heartbeat, printable, run_command, socket_dir, spawn_master, ssh_command, wait_or_kill, Ended, InterceptError};
use crate::boxside::branch::{valid_name, Branch, BranchSpec};
use crate::stack::front::{Match, Route};
use crate::stack::layout::sh;
use crate::stack::shell::BoxShell;

/// How long the box may take to claim the route and make the branches (a
/// branch by `pg_dump` of a large database takes a while).
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long adding the route (a proxy reload) may take.
const ROUTED_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Personal<'a> {
    pub ssh_config: &'a Path,
    pub ssh_options: &'a [String],
    pub alias: &'a str,
    pub onbox: &'a BoxShell,
    pub plan: &'a Plan,
    pub by: &'a str,
    pub matches: &'a Match,
    /// The laptop port the routed requests reach.
    pub local_port: u16,
    pub branches: &'a [BranchSpec],
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PersonalError {
    #[error("{} on {service} is already routed to {}'s laptop (since {}); choose another value", .route.matches.describe(), .route.by, .route.since.format("%Y-%m-%d %H:%M UTC"))]
    Taken { service: String, route: Route },
    #[error(transparent)]
    Intercept(#[from] InterceptError),
}

impl Personal<'_> {
    /// Runs `command` with the route in place. `started(branches)` is
    /// called once the route works, with the branches made, and returns
    /// the command's environment.
    pub async fn run(&self, command: &[String], started: impl FnOnce(&[Branch]) -> BTreeMap<String, String>) -> Result<Ended, PersonalError> {
        let fail = |detail: String| InterceptError::Hold { service: self.plan.service.clone(), name: self.onbox.name.clone(), detail };
        let socket_dir = socket_dir()?;
        let socket = socket_dir.path().join("c");
        let mut master = self.master(&socket)?;
        let mut stdout = BufReader::new(master.stdout.take().expect("piped"));
        let mut stdin = master.stdin.take().expect("piped");

        let mut branches = Vec::new();
        let ready = loop {
            match read_line(&mut stdout, READY_TIMEOUT).await.as_deref() {
                Some("ready") => break Ok::<(), PersonalError>(()),
                Some(line) if line.starts_with("branch ") => match serde_json::from_str::<Branch>(&line["branch ".len()..]) {
                    // The box says it: checked before it reaches this
                    // terminal or the command's environment.
                    Ok(b)
                        if self.branches.iter().any(|s| s.store == b.store && valid_name(s, &b.name))
                            && ["template", "dump", "copy", "kept"].contains(&b.how.as_str()) =>
                    {
                        eprintln!("  data branch of {}: {} ({} in {} ms)", b.store, b.name, b.how, b.ms);
                        branches.push(b);
                    }
                    _ => break Err(fail(printable(line)).into()),
                },
                Some(line) if line.starts_with("taken ") => {
                    break match serde_json::from_str::<Route>(&line["taken ".len()..]) {
                        Ok(route) if route.is_valid() => Err(PersonalError::Taken { service: self.plan.service.clone(), route }),
                        _ => Err(fail("the route is someone else's".into()).into()),
                    };
                }
                Some(line) => break Err(fail(printable(line)).into()),
                None => {
                    break Err(fail(format!(
                        "the SSH connection ended ({}; its message is above)",
                        describe(wait_or_kill(&mut master, Duration::from_secs(5)).await)
                    ))
                    .into())
                }
            }
        };
        if let Err(e) = ready {
            drop(stdin);
            wait_or_kill(&mut master, Duration::from_secs(15)).await;
            return Err(e);
        }
        let routed = async {
            let port = self.forward(&socket).await?;
            stdin.write_all(format!("port {port}\n").as_bytes()).await.map_err(|e| fail(format!("the connection ended: {e}")))?;
            match read_line(&mut stdout, ROUTED_TIMEOUT).await.as_deref() {
                Some("routed") => Ok(()),
                Some(line) => Err(fail(printable(line))),
                None => Err(fail(format!("no answer within {ROUTED_TIMEOUT:?}"))),
            }
        };
        if let Err(e) = routed.await {
            drop(stdin);
            wait_or_kill(&mut master, Duration::from_secs(15)).await;
            return Err(e.into());
        }
        // Nothing more comes on stdout; keep reading so the pipe never fills.
        tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
        let beat = tokio::spawn(heartbeat(stdin));
        let environment = started(&branches);
        let ended = run_command(&environment, command, &mut master).await;
        beat.abort();
        let _ = beat.await;
        wait_or_kill(&mut master, Duration::from_secs(15)).await;
        Ok(ended?)
    }

    fn ssh(&self) -> Command {
        ssh_command(self.ssh_config, self.ssh_options)
    }

    fn master(&self, socket: &Path) -> Result<Child, InterceptError> {
        let layout = &self.onbox.layout;
        let paths = crate::stack::front::FrontPaths::of(layout);
        let mut route = format!(
            "{} box route --dir {} --control {} --log {} --service {} --by {}",
            sh(&layout.bin),
            sh(&paths.dir),
            sh(&paths.control),
            sh(&layout.access_log()),
            sh(&self.plan.service),
            sh(self.by)
        );
        match self.matches {
            Match::Header { name, value } => route += &format!(" --header {}", sh(&format!("{name}={value}"))),
            Match::Mirror => route += " --mirror",
        }
        for b in self.branches {
            route += &format!(" --branch {}", sh(&b.to_string()));
        }
        if self.keep {
            route += " --keep";
        }
        spawn_master(self.ssh(), socket, self.alias, &self.plan.outgoing, &self.onbox.wrap(&route))
    }

    /// A remote forward from a free port of the box's loopback (sshd picks
    /// it) to the laptop's process; returns the port.
    async fn forward(&self, socket: &Path) -> Result<u16, InterceptError> {
        let mut ssh = self.ssh();
        ssh.arg("-S").arg(socket).args(["-O", "forward", "-R"]).arg(format!("127.0.0.1:0:127.0.0.1:{}", self.local_port));
        let out = ssh.arg(self.alias).stdin(Stdio::null()).output().await.map_err(|e| InterceptError::Spawn { what: "ssh -O forward".into(), source: e })?;
        let port = String::from_utf8_lossy(&out.stdout).trim().parse::<u16>().ok().filter(|p| *p > 0);
        match (out.status.success(), port) {
            (true, Some(port)) => Ok(port),
            _ => Err(InterceptError::Forward {
                ports: "(a free port on the box's loopback)".into(),
                status: format!("{}: {}", describe(out.status), String::from_utf8_lossy(&out.stderr).trim()),
            }),
        }
    }
}

async fn read_line(stdout: &mut BufReader<tokio::process::ChildStdout>, timeout: Duration) -> Option<String> {
    let mut line = String::new();
    match tokio::time::timeout(timeout, stdout.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => Some(line.trim_end().to_string()),
        _ => None,
    }
}
