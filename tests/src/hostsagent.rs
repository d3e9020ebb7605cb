//! The real `workstation-hosts` daemon, run inside a [`MountNs`] so that it
//! owns that namespace's /etc/hosts, with a config and socket of the test's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::mountns::MountNs;

pub struct HostsDaemon {
    child: Child,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub dir: PathBuf,
}

impl HostsDaemon {
    /// Starts the daemon in `ns` with its files in `dir` (0755, so a
    /// refused user can still reach the socket and be told why), allowing
    /// the user `daemon`, the names in `names` and `*.box.ws-test`.
    /// `extra` is appended to the config.
    pub fn start(ns: &MountNs, dir: &Path, socket: &Path, names: &[&str], extra: &str) -> HostsDaemon {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let config = dir.join("hosts-agent.toml");
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        std::fs::write(
            &config,
            format!(
                "allowed_users = [\"daemon\"]\nallowed_names = [{}]\nallowed_suffixes = [\".box.ws-test\"]\nsocket = {:?}\nstate_dir = {:?}\n{extra}\n",
                names.join(", "),
                socket.display().to_string(),
                dir.join("state").display().to_string()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let log = dir.join("agent.log");
        let child = spawn(ns, &config, socket, &log);
        HostsDaemon { child, socket: socket.to_owned(), config, log, dir: dir.to_owned() }
    }

    /// kill -9, then start again (crash recovery).
    pub fn crash_and_restart(&mut self, ns: &MountNs, between: impl FnOnce()) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        between();
        self.child = spawn(ns, &self.config, &self.socket, &self.log);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `workstation-hosts ARGS --socket S` as root.
    pub fn client(&self, args: &[&str]) -> Output {
        self.client_cmd(args).output().unwrap()
    }

    /// The same, as another user (`setpriv` switches uid and gid).
    pub fn client_as(&self, user: &str, args: &[&str]) -> Output {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={user}"))
            .arg(format!("--regid={}", gid_of(user)))
            .arg("--clear-groups")
            .arg(crate::hosts_binary())
            .args(args)
            .arg("--socket")
            .arg(&self.socket);
        c.output().unwrap()
    }

    fn client_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::hosts_binary());
        c.args(args).arg("--socket").arg(&self.socket);
        c
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.client(&["status", "--json"]);
        assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Starts the daemon and waits for its socket.
fn spawn(ns: &MountNs, config: &Path, socket: &Path, log: &Path) -> Child {
    let _ = std::fs::remove_file(socket);
    let child = ns
        .cmd(crate::hosts_binary())
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    crate::wait_until(
        Duration::from_secs(20),
        || socket.exists(),
        || format!("the agent did not listen on {}: {}", socket.display(), std::fs::read_to_string(log).unwrap_or_default()),
    );
    child
}

impl Drop for HostsDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user's primary group id (setpriv wants a group, and `nobody`'s is
/// `nogroup`).
fn gid_of(user: &str) -> String {
    let out = Command::new("id").args(["-g", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
