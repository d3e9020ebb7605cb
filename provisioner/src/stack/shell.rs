//! The box's shell, as the laptop drives it: shell commands over the
//! pinned SSH session, as root (through `sudo -n` when the SSH user is
//! not), with the box's [`Layout`]. A `BoxShell` owns its session; `close`
//! ends it, and `locked` runs work under the box's bring-up lock.

use tokio::io::AsyncRead;

use crate::manifest::Store;
use crate::ssh::remote::{Held, RemoteError, Session};
use crate::stack::layout::{sh, BadRoot, Layout, StoreRunner, DEFAULT_ROOT};
use crate::stack::stores;

/// How much of a failed command's stderr an error quotes.
const STDERR_TAIL: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error("{what} failed on box {name} (exit {status}){}", stderr_suffix(.stderr))]
    Failed { name: String, what: String, status: u32, stderr: String },
    #[error("box {name} gave an unexpected answer to the layout probe: {output:?}")]
    Probe { name: String, output: String },
    #[error(transparent)]
    Root(#[from] BadRoot),
    #[error("{service} is intercepted by {by} (it runs on their laptop until that intercept ends); on the box it would find its ports taken")]
    Intercepted { service: String, by: String },
}

fn stderr_suffix(stderr: &str) -> String {
    match tail(stderr.trim(), STDERR_TAIL) {
        "" => String::new(),
        end => format!(":\n{end}"),
    }
}

/// The last `max` bytes of `text` (fewer, to start on a character): what a
/// report quotes of a command's long output.
pub fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    &text[start..]
}

impl From<RemoteError> for ShellError {
    fn from(e: RemoteError) -> Self {
        ShellError::Remote(Box::new(e))
    }
}

/// Written by the image (images/workstation.nix, from images/lib.nix).
pub const PROGRAM_PATH_FILE: &str = "/etc/workstation/program-path";
/// Written by the image: "systemd" when nixpkgs' modules run the stores.
pub const STORES_FILE: &str = "/etc/workstation/stores";

pub struct BoxShell {
    pub session: Session,
    pub layout: Layout,
    pub name: String,
    sudo: bool,
}

impl BoxShell {
    /// Asks the box for its root, its user and the `PATH` programs get:
    /// an image-built box states it in [`PROGRAM_PATH_FILE`] (the PATH its
    /// build-time configuration was rendered with, so `up` renders the
    /// same); elsewhere the session's, plus Debian's versioned PostgreSQL
    /// directory, which is not on it. On failure the session is closed.
    pub async fn probe(session: Session, name: &str) -> Result<BoxShell, ShellError> {
        match Self::ask_layout(&session, name).await {
            Ok((layout, sudo)) => Ok(BoxShell { session, layout, name: name.into(), sudo }),
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    async fn ask_layout(session: &Session, name: &str) -> Result<(Layout, bool), ShellError> {
        let script = format!(
            "printf 'uid=%s\\n' \"$(id -u)\"; printf 'root=%s\\n' \"${{WORKSTATION_BOX_ROOT:-{DEFAULT_ROOT}}}\"; \
             if [ -r {PROGRAM_PATH_FILE} ]; then printf 'path=%s\\n' \"$(cat {PROGRAM_PATH_FILE})\"; else \
             pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1); printf 'path=%s\\n' \"${{pg:+$pg:}}$PATH\"; fi; \
             printf 'stores=%s\\n' \"$(cat {STORES_FILE} 2>/dev/null)\"; printf 'bin=%s\\n' \"${{WORKSTATION_BIN:-workstation}}\""
        );
        let out = session.output(&script).await?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(str::to_string);
        let (Some(uid), Some(root), Some(path)) = (field("uid"), field("root"), field("path")) else {
            return Err(ShellError::Probe { name: name.into(), output: text });
        };
        let stores = match field("stores").as_deref() {
            Some("systemd") => StoreRunner::Systemd,
            _ => StoreRunner::Supervisord,
        };
        // The box's own workstation: on PATH on an image-built box; a local
        // box's sshd names the laptop's (they share a filesystem).
        let bin = field("bin").filter(|b| b == "workstation" || b.starts_with('/')).unwrap_or_else(|| "workstation".into());
        Ok((Layout::new(&root, Some(path))?.with_stores(stores).with_bin(&bin), uid != "0"))
    }

    /// `command` as it runs on the box: with the box's PATH, as root.
    pub fn wrap(&self, command: &str) -> String {
        let path = self.layout.path.as_deref().map(|p| format!("PATH={}; export PATH; ", sh(p))).unwrap_or_default();
        let script = format!("{path}{command}");
        if self.sudo {
            format!("sudo -n sh -c {}", sh(&script))
        } else {
            script
        }
    }

    /// Runs `command`; fails with its stderr unless it exits 0. `what` names
    /// the step in errors.
    pub async fn run(&self, what: &str, command: &str) -> Result<String, ShellError> {
        let out = self.session.output(&self.wrap(command)).await?;
        if out.status != 0 {
            return Err(self.failed(what, out.status, &out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// Runs `command`; returns its stdout whatever its exit status.
    pub async fn output(&self, command: &str) -> Result<String, ShellError> {
        Ok(String::from_utf8_lossy(&self.session.output(&self.wrap(command)).await?.stdout).to_string())
    }

    /// Runs `command` and reports only whether it exited 0.
    pub async fn check(&self, command: &str) -> Result<bool, ShellError> {
        Ok(self.session.output(&self.wrap(command)).await?.status == 0)
    }

    /// Runs `command` with `input` streamed to its stdin; returns stdout.
    pub async fn run_input(&self, what: &str, command: &str, input: impl AsyncRead + Unpin) -> Result<String, ShellError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = self.session.exec_input(&self.wrap(command), input, &mut stdout, &mut stderr).await?;
        if status != 0 {
            return Err(self.failed(what, status, &stderr));
        }
        Ok(String::from_utf8_lossy(&stdout).to_string())
    }

    /// Ends the SSH session.
    pub async fn close(self) {
        self.session.close().await;
    }

    /// Runs `work` holding the box's bring-up lock, released after it
    /// whatever the outcome. `work` gets the lock as proof for functions
    /// that must only run under it.
    pub async fn locked<T, E: From<ShellError>>(&self, work: impl AsyncFnOnce(&Held) -> Result<T, E>) -> Result<T, E> {
        let held = self.lock().await?;
        let result = work(&held).await;
        held.release().await;
        result
    }

    /// Takes the box's bring-up lock (`flock` on `<root>/run/lock`), so
    /// concurrent `create`, `up` and `seed` runs take turns instead of
    /// racing to start supervisord or loading one staging area twice. The
    /// lock goes with the SSH session if this process dies.
    async fn lock(&self) -> Result<Held, ShellError> {
        let run = sh(&self.layout.run_dir());
        let command = self.wrap(&format!("mkdir -p {run} && exec flock {run}/lock sh -c 'echo locked; exec cat >/dev/null'"));
        self.session.hold(&command).await?.ok_or_else(|| ShellError::Failed {
            name: self.name.clone(),
            what: format!("taking the bring-up lock {}/lock (flock)", self.layout.run_dir()),
            status: 255,
            stderr: String::new(),
        })
    }

    /// `supervisorctl` against this box's supervisord.
    pub fn supervisorctl(&self, args: &str) -> String {
        format!("supervisorctl -c {} {args}", sh(&self.layout.conf()))
    }

    /// `verb` (start, stop, restart) for a program: supervisorctl, or
    /// systemctl for a store that systemd runs.
    pub fn control(&self, verb: &str, program: &str, store: Option<&Store>) -> String {
        match store.map(|s| (s, stores::runner(s, &self.layout))) {
            Some((store, Some(StoreRunner::Systemd))) => format!("systemctl {verb} {}", sh(&stores::system_unit(program, store.kind))),
            _ => self.supervisorctl(&format!("{verb} {}", sh(program))),
        }
    }

    /// The last `lines` lines of a program's output, following with `-f`.
    pub fn log_command(&self, program: &str, store: Option<&Store>, lines: u32, follow: bool) -> String {
        match store.map(|s| (s, stores::runner(s, &self.layout))) {
            Some((store, Some(StoreRunner::Systemd))) => {
                format!("journalctl --no-pager -n {lines} {} -u {}", if follow { "-f" } else { "" }, sh(&stores::system_unit(program, store.kind)))
            }
            _ => format!("tail -n {lines} {} {}", if follow { "-F" } else { "" }, sh(&self.layout.log(program))),
        }
    }

    fn failed(&self, what: &str, status: u32, stderr: &[u8]) -> ShellError {
        ShellError::Failed { name: self.name.clone(), what: what.into(), status, stderr: String::from_utf8_lossy(stderr).to_string() }
    }
}
