//! This machine, as local boxes use it: which network namespaces and
//! addresses exist, processes, the commands (`ip`, ...) that change them,
//! and whether a box directory can be trusted by root's sshd.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use ipnet::Ipv4Net;

use super::{LocalError, ProviderError, Result};

/// The bridge's own address: the network's first host.
pub fn gateway(net: &Ipv4Net) -> Ipv4Addr {
    net.hosts().next().unwrap_or(net.network())
}

/// Refuses a box directory that someone else could change: root's sshd
/// takes the login key and its configuration from it. Like OpenSSH's own
/// check, every directory on the way must be writable only by its owner
/// (or sticky, as /tmp is: others cannot replace what they do not own),
/// and owned by root, this user or the user who ran sudo.
pub(super) fn trusted_path(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let sudo_user = std::env::var("SUDO_UID").ok().and_then(|u| u.parse::<u32>().ok());
    for d in dir.ancestors() {
        let meta = std::fs::metadata(d).map_err(io(format!("cannot read {}", d.display())))?;
        let mode = meta.mode();
        let shared = mode & 0o022 != 0 && mode & 0o1000 == 0;
        let owner_ok = meta.uid() == 0 || meta.uid() == me || Some(meta.uid()) == sudo_user;
        if shared || !owner_ok {
            return Err(LocalError::Untrusted { dir: dir.to_owned(), below: d.to_owned(), mode: mode & 0o7777, uid: meta.uid() }.into());
        }
    }
    Ok(())
}

/// sshd's last line about a refused key: bad permissions on the way to
/// the key file, a key not listed, a user not allowed.
pub(super) fn refusal_in(log: &str) -> Option<String> {
    const REASONS: [&str; 4] = ["Authentication refused", "bad ownership or modes", "not allowed because", "Could not open"];
    log.lines().rev().find(|l| REASONS.iter().any(|r| l.contains(r))).map(|l| l.trim().to_string())
}

/// Every IPv4 address held in a named network namespace on this machine,
/// whoever made it (other HOMEs' boxes, the test fleet): what the bridge
/// really has, as opposed to what one HOME's records say. `ip -all netns
/// exec` prints "netns: NAME" before each namespace's output.
pub fn addresses_in_use() -> Vec<(String, Ipv4Addr)> {
    let Ok(out) = Command::new("ip").args(["-all", "netns", "exec", "ip", "-4", "-o", "addr", "show"]).output() else {
        return Vec::new();
    };
    parse_netns_addresses(&String::from_utf8_lossy(&out.stdout))
}

pub(super) fn parse_netns_addresses(text: &str) -> Vec<(String, Ipv4Addr)> {
    let mut ns = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("netns: ") {
            ns = name.trim().to_owned();
            continue;
        }
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" {
                if let Some(a) = words.next().and_then(|a| a.split('/').next()?.parse().ok()) {
                    out.push((ns.clone(), a));
                }
            }
        }
    }
    out
}

pub fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

pub(super) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub(super) fn pid_alive(pid: i32) -> bool {
    // A zombie has exited (its files and ports are released); only its
    // exit status waits for a parent that may reap it late: a halt need
    // not wait for that (it did, a second per upgrade).
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false);
    // SAFETY: kill with signal 0 only checks that the process exists.
    !zombie && unsafe { libc::kill(pid, 0) == 0 }
}

/// Whether `pid` is a supervisord (a script: the kernel names the process
/// after it).
pub(super) fn is_supervisord(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "supervisord")
}

pub(super) fn signal_all(pids: &[i32], sig: i32) {
    for &p in pids {
        // SAFETY: plain kill(2); the pids come from `ip netns pids`.
        unsafe { libc::kill(p, sig) };
    }
}

pub(super) fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| LocalError::NotUtf8 { path: p.to_owned() }.into())
}

pub(super) fn io(context: String) -> impl FnOnce(std::io::Error) -> ProviderError {
    move |source| ProviderError::Io { context, source }
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(io(format!("cannot run {}", args[0])))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ProviderError::Command { command: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// Runs a creating command; another process winning the race is fine.
pub(super) fn run_ok_if_exists(args: &[&str]) -> Result<()> {
    match run(args) {
        Err(ProviderError::Command { stderr, .. }) if stderr.contains("File exists") => Ok(()),
        other => other,
    }
}

/// Runs a deleting command; the thing already being gone is fine.
pub(super) fn run_ok_if_missing(args: &[&str]) -> Result<()> {
    match run(args) {
        // `ip` says "Cannot find device" for a name it looks up first, and
        // "No such device" when the link vanished after (a veth goes with
        // its peer's namespace, while we delete it).
        Err(ProviderError::Command { stderr, .. }) if ["No such file", "Cannot find device", "No such device"].iter().any(|m| stderr.contains(m)) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_box_directory_others_could_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let sticky = base.path().join("tmp");
        std::fs::create_dir_all(sticky.join("home")).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(super::trusted_path(&sticky.join("home")).is_ok(), "a sticky directory like /tmp is fine");
        let open = base.path().join("open");
        std::fs::create_dir_all(open.join("home")).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = super::trusted_path(&open.join("home")).unwrap_err().to_string();
        assert!(err.contains(&open.display().to_string()) && err.contains("777"), "{err}");
    }

    #[test]
    fn addresses_are_read_per_namespace() {
        let text = "\nnetns: ws-abc\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                    2: eth0    inet 10.77.1.1/16 scope global eth0\\       valid_lft forever\n\nnetns: wt-1\n2: eth0    inet 10.77.1.2/16 scope global eth0\n";
        let found = super::parse_netns_addresses(text);
        assert_eq!(
            found,
            vec![
                ("ws-abc".into(), "127.0.0.1".parse().unwrap()),
                ("ws-abc".into(), "10.77.1.1".parse().unwrap()),
                ("wt-1".into(), "10.77.1.2".parse().unwrap())
            ]
        );
    }

    #[test]
    fn sshd_says_why_it_refused_a_key() {
        let log = "Server listening on 10.78.1.2 port 22.\n\
                   Authentication refused: bad ownership or modes for directory /tmp\n\
                   Connection closed by authenticating user root 10.78.0.1 port 40000 [preauth]\n";
        assert_eq!(super::refusal_in(log).as_deref(), Some("Authentication refused: bad ownership or modes for directory /tmp"));
        assert_eq!(super::refusal_in("Server listening on 10.78.1.2 port 22.\n"), None);
    }
}
