//! The OpenSSH side of pinning: a generated config file with one `Host`
//! block per box, and one `Include` line in `~/.ssh/config` pointing at it,
//! so plain `ssh`, `scp`, `rsync` and VS Code Remote-SSH use the pinned keys.

use std::path::{Path, PathBuf};

use crate::ssh::known_hosts::alias;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct SshConfigError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// One box as OpenSSH should see it.
pub struct HostEntry {
    pub name: String,
    pub id: String,
    pub address: String,
    pub user: String,
    /// A team box's `TEAM/ENV` (its alias is `ws-TEAM.ENV`, and its proxy
    /// pushes your key before connecting); None for your own boxes.
    pub env: Option<String>,
}

/// The `Host` alias for a box: short to type, prefixed so it never shadows
/// a real host name.
pub fn host_alias(name: &str) -> String {
    format!("ws-{name}")
}

/// The `Host` alias for team box `TEAM/ENV`: `ws-TEAM.ENV`, which no box
/// name can be (a name has no '.').
pub fn team_alias(env: &str) -> String {
    host_alias(&env.replace('/', "."))
}

/// One `Host` block per box. The connection goes through
/// `<proxy...> proxy NAME --host %h --port %p` (`workstation proxy`): it starts a
/// stopped box, waits for SSH, connects to the box's current address and
/// hands the connected socket to ssh (`ProxyUseFdpass`), so nothing relays
/// the bytes afterwards. `HostName` is only what the box's address was
/// when this file was written. Through Session Manager (`fdpass` false)
/// the proxy runs the session itself and relays the bytes.
pub fn render(entries: &[HostEntry], identity: &Path, known_hosts: &Path, proxy: &[String], fdpass: bool) -> String {
    let mut out = String::from("# Written by `workstation ssh-config`; regenerated on create, start and destroy. Edits are lost.\n");
    // ssh runs ProxyCommand with the shell, after expanding %-tokens.
    let proxy: Vec<String> = proxy.iter().map(|w| shell_word(&w.replace('%', "%%"))).collect();
    for e in entries {
        let (host, target) = match &e.env {
            Some(env) => (team_alias(env), format!("--env {env}")),
            None => (host_alias(&e.name), e.name.clone()),
        };
        out.push_str(&format!(
            "\nHost {host}\n    HostName {addr}\n    User {user}\n    IdentityFile {id}\n    IdentitiesOnly yes\n    \
             HostKeyAlias {alias}\n    UserKnownHostsFile {kh}\n    StrictHostKeyChecking yes\n    CheckHostIP no\n    \
             ProxyCommand {proxy} proxy {target} --host %h --port %p\n{fdpass}",
            fdpass = if fdpass { "    ProxyUseFdpass yes\n" } else { "" },
            proxy = proxy.join(" "),
            target = target,
            host = host,
            addr = e.address,
            user = e.user,
            id = quote(identity),
            alias = alias(&e.id),
            kh = quote(known_hosts),
        ));
    }
    out
}

/// A word for `sh`, single-quoted unless it is plain.
fn shell_word(w: &str) -> String {
    if !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b)) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

fn quote(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// The line added to `~/.ssh/config`.
pub fn include_line(generated: &Path) -> String {
    format!("Include {}", quote(generated))
}

/// Writes the generated file atomically.
pub fn write_generated(path: &Path, text: &str) -> Result<(), SshConfigError> {
    atomic_write(path, text.as_bytes(), 0o600)
}

/// Adds the `Include` line to the user's SSH config unless it is there.
/// Returns whether the file changed.
///
/// The line goes at the top: an `Include` after a `Host` block would only
/// apply inside that block. Every other byte of the file is kept, and a
/// symlinked config (dotfile managers) is updated where it points.
pub fn ensure_include(user_config: &Path, generated: &Path) -> Result<bool, SshConfigError> {
    let target = std::fs::canonicalize(user_config).unwrap_or_else(|_| user_config.to_owned());
    let err = |source| SshConfigError { path: target.clone(), source };
    let existing = match std::fs::read(&target) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(e)),
    };
    let line = include_line(generated);
    if includes(&String::from_utf8_lossy(&existing), &line) {
        return Ok(false);
    }
    let mode = std::fs::metadata(&target).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777).unwrap_or(0o600);
    let mut text = format!("# Added by workstation: SSH access to your boxes with pinned host keys.\n{line}\n\n").into_bytes();
    text.extend_from_slice(&existing);
    if let Some(dir) = target.parent() {
        super::create_private_dir(dir).map_err(err)?;
    }
    atomic_write(&target, &text, mode)?;
    Ok(true)
}

/// Whether the user's SSH config (where it points, if a symlink) has the
/// `Include` line for `generated`: what `ensure_include` would leave alone.
pub fn has_include(user_config: &Path, generated: &Path) -> bool {
    std::fs::read_to_string(user_config).is_ok_and(|text| includes(&text, &include_line(generated)))
}

fn includes(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}

fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SshConfigError> {
    workstation_hosts_protocol::atomic::write(path, bytes, mode).map_err(|source| SshConfigError { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_is_prepended_once_and_keeps_every_other_byte() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        let original = b"Host *\r\n\tForwardAgent no\nHost work\n  User me"; // CRLF, tabs, no final newline
        std::fs::write(&cfg, original).unwrap();
        let generated = dir.path().join("ws config");
        assert!(ensure_include(&cfg, &generated).unwrap());
        assert!(!ensure_include(&cfg, &generated).unwrap());
        let after = std::fs::read(&cfg).unwrap();
        let text = String::from_utf8_lossy(&after);
        assert!(text.starts_with("# Added by workstation"), "{text}");
        assert!(text.contains(&format!("Include \"{}\"\n", generated.display())));
        assert!(after.ends_with(original));
    }

    #[test]
    fn symlinked_config_is_updated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles-ssh-config");
        std::fs::write(&real, "Host a\n").unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        ensure_include(&link, Path::new("/x")).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("Include \"/x\""));
    }

    #[test]
    fn render_pins_through_alias() {
        let text = render(
            &[HostEntry { name: "dev".into(), id: "i-1".into(), address: "10.0.0.5".into(), user: "alice".into(), env: None }],
            Path::new("/h/.ssh/id_ed25519"),
            Path::new("/h/kh"),
            &["/opt/my tools/workstation".into(), "--provider".into(), "aws".into(), "--profile".into(), "it's%".into()],
            true,
        );
        for want in [
            "Host ws-dev\n",
            "HostName 10.0.0.5",
            "HostKeyAlias i-1.workstation",
            "UserKnownHostsFile \"/h/kh\"",
            "StrictHostKeyChecking yes",
            "ProxyCommand '/opt/my tools/workstation' --provider aws --profile 'it'\\''s%%' proxy dev --host %h --port %p\n",
            "ProxyUseFdpass yes\n",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }
    #[test]
    fn through_session_manager_the_proxy_relays_and_keys_stay_pinned() {
        let entry = HostEntry { name: "dev".into(), id: "i-1".into(), address: "10.0.0.5".into(), user: "alice".into(), env: None };
        let text = render(&[entry], Path::new("/k"), Path::new("/kh"), &["workstation".into()], false);
        assert!(text.contains("ProxyCommand workstation proxy dev --host %h --port %p\n"), "{text}");
        assert!(!text.contains("ProxyUseFdpass"), "{text}");
        assert!(text.contains("StrictHostKeyChecking yes") && text.contains("HostKeyAlias i-1.workstation"), "{text}");
    }
}
