//! The keys pushed to a local box for a minute: what EC2 Instance Connect's
//! SendSSHPublicKey does for an instance, in a root-only directory beside
//! the key the box's sshd reads. The box's `box authorized-keys` reads it.

use std::path::Path;

use chrono::{DateTime, Utc};

/// How long a pushed key admits (EC2 Instance Connect's documented 60 s).
pub const PUSHED_KEY_LIFE: std::time::Duration = std::time::Duration::from_secs(60);

/// The unexpired keys in `<dir>/<user>` (a local box's pushed keys).
pub fn read(dir: &Path, user: &str, now: DateTime<Utc>) -> String {
    if crate::manifest::name::check_label("user", user).is_err() && user != "root" {
        return String::new();
    }
    let text = std::fs::read_to_string(dir.join(user)).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(expires, _)| expires.parse::<i64>().is_ok_and(|e| e > now.timestamp()))
        .map(|(_, key)| format!("{key}\n"))
        .collect()
}

/// Adds `key` to `<dir>/<user>` for [`PUSHED_KEY_LIFE`], dropping expired
/// lines (the local provider's SendSSHPublicKey).
pub fn push(dir: &Path, user: &str, key: &str, now: DateTime<Utc>) -> std::io::Result<()> {
    let line = key.lines().next().unwrap_or_default().trim();
    let expires = now.timestamp() + PUSHED_KEY_LIFE.as_secs() as i64;
    let mut text: String = std::fs::read_to_string(dir.join(user))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_once(' ').is_some_and(|(e, _)| e.parse::<i64>().is_ok_and(|e| e > now.timestamp())))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{expires} {line}\n"));
    crate::ssh::create_private_dir(dir)?;
    workstation_hosts_protocol::atomic::write(&dir.join(user), text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAuwP5WA8pJXfo6aWPiahpWb/ld1QyoNLyQ1z50Qo6OX";

    #[test]
    fn pushed_keys_expire_after_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        push(dir.path(), "root", &format!("{KEY} alice@workstation"), t0).unwrap();
        assert!(read(dir.path(), "root", t0).contains("alice@workstation"));
        assert!(read(dir.path(), "root", t0 + chrono::Duration::seconds(61)).is_empty());
        assert!(read(dir.path(), "../etc", t0).is_empty(), "a user is a name, never a path");
        // A later push drops what expired.
        push(dir.path(), "root", &format!("{KEY} bob@workstation"), t0 + chrono::Duration::seconds(90)).unwrap();
        let left = std::fs::read_to_string(dir.path().join("root")).unwrap();
        assert!(!left.contains("alice") && left.contains("bob"), "{left}");
    }
}
