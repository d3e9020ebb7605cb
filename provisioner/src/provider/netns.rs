//! A box made of a Linux network namespace: its own IP on a bridge that owns
//! the whole local network (so no packet to those addresses leaves the
//! machine), its own UTS namespace (its own hostname) and its own sshd with
//! its own host key. The local provider and the test fleet both use it.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::host::{
    addresses_in_use, gateway, io, is_supervisord, link_exists, netns_exists, path_str, pid_alive, refusal_in, run, run_ok_if_exists, run_ok_if_missing,
    signal_all, trusted_path,
};
use super::{LocalError, ProviderError, Result};
use crate::provider::LocalNetwork;

/// sshd normally accepts within tens of milliseconds; a loaded CI machine
/// can take a few seconds.
const SSHD_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Processes get this long to exit on SIGTERM before SIGKILL.
const HALT_GRACE: Duration = Duration::from_secs(5);
/// Rounds of "list, stop" in a halt; more than one only when processes
/// start while the box stops.
const HALT_ROUNDS: usize = 5;

const SSHD: &str = "/usr/sbin/sshd";
/// Root-owned (0755) parent of each running local box's authorized keys.
const SSHD_KEYS_ROOT: &str = "/run/workstation-local";

#[derive(Debug, Clone)]
pub struct BoxHost {
    /// Network namespace name (`ip netns`).
    pub ns: String,
    /// Host side of the veth pair (at most 15 bytes).
    pub veth: String,
    pub address: Ipv4Addr,
    pub network: LocalNetwork,
    /// The box's disk: host key, sshd config, authorized_keys.
    pub dir: PathBuf,
    /// workstation's directory on the box (`/var/lib/workstation` on an
    /// image-built box): boxes on one machine share its filesystem, so each
    /// gets its own, handed to SSH sessions as `WORKSTATION_BOX_ROOT`.
    /// Store servers run as their own users and must reach it, so it is
    /// not below a (possibly private) HOME.
    pub root: PathBuf,
    pub hostname: String,
    /// More variables for every SSH session (sshd's SetEnv), such as
    /// `WORKSTATION_BIN`, the `workstation` the box's launchers run: a local
    /// box has no image, and runs the laptop's own. Names and values of
    /// letters, digits and `/:._-` only (sshd's quoting is its own).
    pub env: Vec<(String, String)>,
    /// A team box (`workstation env`): its sshd also admits keys pushed
    /// for a minute ([`BoxHost::pushed_keys_dir`]); no other box does.
    pub team: bool,
}

impl BoxHost {
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }

    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key.pub")
    }

    /// sshd's own log (`-E`): why it refused a key, when it did.
    pub fn sshd_log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// HOME of the box's sessions: a box starts with a home of its own, as
    /// a fresh box would, not the dotfiles of this machine's account (the
    /// box shares its users). Here root's .bashrc, which bash reads for
    /// every SSH command, ran `pyenv init` and cost 100 ms per command.
    /// It is on the box's data (its root), as /home is on an EC2 box's
    /// data volume: an upgrade keeps it.
    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// What an upgrade's new root volume does not have: the host key
    /// (the next boot makes a new one). Only while the box is down.
    pub fn forget_host_key(&self) -> Result<()> {
        for key in [self.host_key(), self.host_key_pub()] {
            match std::fs::remove_file(&key) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(format!("cannot remove {}", key.display()))(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The last reason sshd logged for refusing a login, if any.
    pub fn refusal(&self) -> Option<String> {
        let log = std::fs::read_to_string(self.sshd_log()).ok()?;
        refusal_in(&log)
    }

    /// The owner's key, as the box was created with it.
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    /// Where the running box's sshd reads that key: sshd's StrictModes
    /// refuses a key file below a directory others may write (a HOME or
    /// checkout under /tmp), so the copy it reads lives in a root-owned
    /// directory whatever the box's own directory is. Written at boot,
    /// removed at halt.
    fn sshd_keys_dir(&self) -> PathBuf {
        Path::new(SSHD_KEYS_ROOT).join(&self.ns)
    }

    pub fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// The keys pushed to this box for a minute (`Provider::push_key`), in
    /// the root-only directory beside the key sshd reads.
    pub fn pushed_keys_dir(&self) -> PathBuf {
        self.sshd_keys_dir().join("pushed")
    }

    /// sshd's AuthorizedKeysCommand: a script in the root-only directory
    /// that runs `box authorized-keys` of the `workstation` this box runs
    /// (an image's reads the instance metadata instead). sshd wants the
    /// command and its directories root's and unwritable by others, which
    /// a checkout's binary may not be; the script is. None for a box that
    /// is no team's, or without a binary: only the owner's key logs in.
    fn keys_script(&self) -> Option<String> {
        if !self.team {
            return None;
        }
        let bin = &self.env.iter().find(|(k, _)| k == "WORKSTATION_BIN")?.1;
        let log = crate::stack::layout::Layout::new(self.root.to_str()?, None).ok()?.access_log();
        let pushed = self.pushed_keys_dir();
        let sh = crate::stack::layout::sh;
        Some(format!("#!/bin/sh\nexec {} box authorized-keys --pushed {} --log {} \"$@\"\n", sh(bin), sh(pushed.to_str()?), sh(&log)))
    }

    fn keys_command(&self) -> PathBuf {
        self.sshd_keys_dir().join("authorized-keys-command")
    }

    /// Creates the bridge owning the network if it is missing. Safe to run
    /// concurrently from several processes.
    pub fn ensure_bridge(net: &LocalNetwork) -> Result<()> {
        let gateway = gateway(&net.network);
        if !link_exists(&net.bridge) {
            run_ok_if_exists(&["ip", "link", "add", &net.bridge, "type", "bridge"])?;
        }
        run(&["ip", "addr", "replace", &format!("{gateway}/{}", net.network.prefix_len()), "dev", &net.bridge])?;
        // A bridge whose address was never set takes the lowest of its
        // ports' (each box's random host-side veth): a new box could
        // change it, and every running box would then send to the old one
        // until its neighbour entry expired, its connections silent for
        // up to a minute (seen: a deploy hung 56 s while a second box
        // booted). A set address stays; this one is derived from the
        // gateway's, as the boxes' are from theirs.
        let [a, b, c, d] = gateway.octets();
        let mac = format!("02:76:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        if std::fs::read_to_string(format!("/sys/class/net/{}/address", net.bridge)).map(|m| m.trim() != mac).unwrap_or(true) {
            run(&["ip", "link", "set", &net.bridge, "address", &mac])?;
        }
        run(&["ip", "link", "set", &net.bridge, "up"])?;
        Ok(())
    }

    /// Powers the box on: namespace, veth on the bridge, address, sshd.
    /// First boot generates the host key. Returns once sshd accepts TCP
    /// connections. Idempotent: leftovers of a crashed boot are removed.
    pub fn boot(&self) -> Result<()> {
        if self.address == gateway(&self.network.network) || !self.network.network.contains(&self.address) {
            return Err(LocalError::NotABoxAddress { address: self.address, network: self.network.network, gateway: gateway(&self.network.network) }.into());
        }
        std::fs::create_dir_all(&self.dir).map_err(io(format!("cannot create {}", self.dir.display())))?;
        // Root's sshd trusts the key, config and host key found here.
        trusted_path(&self.dir)?;
        self.first_boot()?;
        std::fs::create_dir_all(&self.root).map_err(io(format!("cannot create {}", self.root.display())))?;
        // A box made when home was beside the host key: its home moves to
        // its data once (same filesystem here; else it starts anew).
        let legacy = self.dir.join("home");
        if legacy.is_dir() && !self.home().exists() {
            if let Err(e) = std::fs::rename(&legacy, self.home()) {
                tracing::warn!("box {}: its home stays in {} ({e}); it starts with an empty one, copy what you need", self.hostname, legacy.display());
            }
        }
        crate::ssh::create_private_dir(&self.home()).map_err(io(format!("cannot create {}", self.home().display())))?;
        self.write_sshd_config()?;
        // This boot's log only: an old refusal must not explain a new one.
        std::fs::write(self.sshd_log(), b"").map_err(io(format!("cannot write {}", self.sshd_log().display())))?;
        Self::ensure_bridge(&self.network)?;
        self.halt()?;
        // Another HOME's box (or any namespace) at this address would answer
        // in this box's place, with another host key.
        if let Some(ns) = addresses_in_use().into_iter().find_map(|(ns, a)| (a == self.address && self.network.network.contains(&a)).then_some(ns)) {
            return Err(LocalError::AddressHeld { address: self.address, name: self.hostname.clone(), namespace: ns }.into());
        }
        self.install_authorized_keys()?;

        run(&["ip", "netns", "add", &self.ns])?;
        // A MAC derived from the address: a box re-created at a reused
        // address answers with the MAC the laptop's neighbour cache already
        // holds, instead of being unreachable until that entry expires.
        let [a, b, c, d] = self.address.octets();
        let mac = format!("02:77:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
        run(&["ip", "link", "add", &self.veth, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &self.ns])?;
        run(&["ip", "link", "set", &self.veth, "master", &self.network.bridge, "up"])?;
        let cidr = format!("{}/{}", self.address, self.network.network.prefix_len());
        run(&["ip", "-n", &self.ns, "addr", "add", &cidr, "dev", "eth0"])?;
        run(&["ip", "-n", &self.ns, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", &self.ns, "link", "set", "eth0", "up"])?;

        // sshd daemonises; the UTS namespace gives the box its own hostname
        // and is inherited by every session sshd starts.
        let config = self.dir.join("sshd_config");
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            "hostname \"$1\" && mkdir -p /run/sshd && exec \"$2\" -f \"$3\" -E \"$4\"",
            "sh",
            &self.hostname,
            SSHD,
            path_str(&config)?,
            path_str(&self.sshd_log())?,
        ])?;
        self.wait_accepting(SSHD_READY_TIMEOUT)
    }

    /// Starts `sh -c script args...` inside the box, detached (its own
    /// session, stdio on /dev/null): a program that runs as long as the
    /// box, as a unit started at boot would, and that `halt` stops with
    /// every other process in the namespace.
    pub fn spawn(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
        self.command(script, args, env).spawn().map(drop).map_err(io(format!("cannot start a program in box {}", self.hostname)))
    }

    /// Runs `sh -c script args...` inside the box, as `spawn` does, and
    /// waits for it (a daemon that forks once it is ready).
    pub fn run_in(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
        let status = self.command(script, args, env).status().map_err(io(format!("cannot run a program in box {}", self.hostname)))?;
        match status.success() {
            true => Ok(()),
            false => Err(ProviderError::Command { command: format!("{script} {}", args.join(" ")), stderr: format!("exited with {status}") }),
        }
    }

    /// `sh -c script args...` in the namespace, with exactly `env` (and a
    /// PATH), in a session of its own.
    fn command(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "sh", "-c", script, "sh"]).args(args);
        cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into())).envs(env.iter().copied());
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        // SAFETY: setsid is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd
    }

    /// Powers the box off: every process in the namespace is stopped, the
    /// namespace and veth removed. The directory (disk) stays.
    pub fn halt(&self) -> Result<()> {
        if netns_exists(&self.ns) {
            // Not this process: a box's idle check stops its own box.
            let me = std::process::id() as i32;
            // A process can start while the listed ones stop (supervisord
            // starting a program as the box halts): list again until the
            // namespace is empty, or a process would outlive its box.
            for _ in 0..HALT_ROUNDS {
                let pids: Vec<i32> = self.pids().into_iter().filter(|p| *p != me).collect();
                if pids.is_empty() {
                    break;
                }
                signal_all(&pids, libc::SIGTERM);
                let deadline = Instant::now() + HALT_GRACE;
                let mut alive = pids;
                while !alive.is_empty() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                    alive.retain(|p| pid_alive(*p));
                    // supervisord notices that its programs are gone on
                    // its next one-second tick (Python retries the poll a
                    // signal interrupts): once they are, it has nothing
                    // left to stop or write, and waiting for it was most
                    // of an upgrade's time.
                    if !alive.is_empty() && alive.iter().all(|p| is_supervisord(*p)) {
                        signal_all(&alive, libc::SIGKILL);
                    }
                }
                signal_all(&alive, libc::SIGKILL);
            }
            run_ok_if_missing(&["ip", "netns", "del", &self.ns])?;
        }
        if link_exists(&self.veth) {
            run_ok_if_missing(&["ip", "link", "del", &self.veth])?;
        }
        match std::fs::remove_dir_all(self.sshd_keys_dir()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("cannot remove {}", self.sshd_keys_dir().display()))(e)),
            _ => Ok(()),
        }
    }

    /// The namespace exists and its sshd is alive.
    pub fn is_up(&self) -> bool {
        netns_exists(&self.ns) && std::fs::read_to_string(self.dir.join("sshd.pid")).ok().and_then(|p| p.trim().parse().ok()).is_some_and(pid_alive)
    }

    fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    fn first_boot(&self) -> Result<()> {
        if self.host_key().exists() && self.host_key_pub().exists() {
            return Ok(());
        }
        let _ = std::fs::remove_file(self.host_key());
        let _ = std::fs::remove_file(self.host_key_pub());
        let comment = format!("root@{}", self.hostname);
        run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f", path_str(&self.host_key())?])
    }

    fn install_authorized_keys(&self) -> Result<()> {
        let keys = std::fs::read(self.authorized_keys()).map_err(io(format!("cannot read {}", self.authorized_keys().display())))?;
        let dir = self.sshd_keys_dir();
        let err = |what: &str| io(format!("cannot {what} {}", dir.display()));
        std::fs::DirBuilder::new().mode(0o755).recursive(true).create(SSHD_KEYS_ROOT).map_err(err("create"))?;
        crate::ssh::create_private_dir(&dir).map_err(err("create"))?;
        if let Some(script) = self.keys_script() {
            workstation_hosts_protocol::atomic::write(&self.keys_command(), script.as_bytes(), 0o700).map_err(err("write"))?;
        }
        workstation_hosts_protocol::atomic::write(&dir.join("authorized_keys"), &keys, 0o600).map_err(err("write"))
    }

    fn write_sshd_config(&self) -> Result<()> {
        let dir = &self.dir;
        let q = |p: &Path| format!("\"{}\"", p.display());
        let text = format!(
            "# Written by workstation for box {hostname}; rewritten at every boot.\n\
             ListenAddress {addr}:22\n\
             HostKey {key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {auth}\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             UsePAM no\n\
             PrintMotd no\n\
             AcceptEnv LANG LC_*\n\
             GatewayPorts clientspecified\n\
             SetEnv WORKSTATION_BOX_ROOT={root} HOME={home}{env}\n\
             Subsystem sftp internal-sftp\n{keys}",
            hostname = self.hostname,
            addr = self.address,
            key = q(&self.host_key()),
            pid = q(&dir.join("sshd.pid")),
            auth = q(&self.sshd_keys_dir().join("authorized_keys")),
            root = self.root().display(),
            home = self.home().display(),
            env = self.env.iter().map(|(k, v)| format!(" {k}={v}")).collect::<String>(),
            keys = match self.keys_script() {
                // Unquoted: sshd wants it to start with /; it has no spaces.
                Some(_) => format!("AuthorizedKeysCommand {} %u %f\nAuthorizedKeysCommandUser root\n", self.keys_command().display()),
                None => String::new(),
            },
        );
        std::fs::write(dir.join("sshd_config"), text).map_err(io(format!("cannot write {}/sshd_config", dir.display())))
    }

    fn wait_accepting(&self, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from((self.address, 22));
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalError::SshdNotReady { name: self.hostname.clone(), address: addr, waited: timeout, namespace: self.ns.clone() }.into());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}
