//! workstation's own known_hosts: the host keys boxes published about
//! themselves, pinned under an alias per box (`<instance-id>.workstation`).
//!
//! The file is in OpenSSH format so the generated SSH config can point
//! `UserKnownHostsFile` at it; russh connections check the same file.

use std::fs::File;
use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot update pinned host keys in {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a known_hosts line ({why}); remove the line or the file to re-pin")]
    Corrupt { path: PathBuf, line: usize, why: String },
    #[error("box published an unusable host key {key:?}: {why}")]
    BadKey { key: String, why: String },
    #[error(
        "the host key of box {alias} changed: pinned {pinned}, now {published}.\n\
         If the box was rebuilt on purpose, re-pin with `workstation pin {name} --replace`; \
         otherwise do not connect and tell your platform team"
    )]
    Changed { alias: String, name: String, pinned: String, published: String },
}

/// The alias a box's key is pinned under: the instance id, so a re-created
/// box of the same name never collides with the old one's key.
pub fn alias(box_id: &str) -> String {
    format!("{box_id}.workstation")
}

pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

pub fn parse_key(line: &str) -> Result<PublicKey, PinError> {
    PublicKey::from_openssh(line.trim()).map_err(|e| PinError::BadKey { key: line.into(), why: e.to_string() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    New,
    Unchanged,
    Replaced,
}

pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key pinned for `alias`, if any.
    pub fn get(&self, alias: &str) -> Result<Option<PublicKey>, PinError> {
        Ok(self.entries()?.into_iter().find(|(a, _)| a == alias).map(|(_, k)| k))
    }

    /// Pins `key` for `alias`. A different key already pinned is refused
    /// unless `replace` is set: a box's key never changes on its own.
    pub fn pin(&self, alias: &str, name: &str, key: &PublicKey, replace: bool) -> Result<Pinned, PinError> {
        let _lock = self.lock()?;
        let mut entries = self.entries()?;
        let outcome = match entries.iter_mut().find(|(a, _)| a == alias) {
            Some((_, old)) if old.key_data() == key.key_data() => return Ok(Pinned::Unchanged),
            Some((_, old)) if !replace => {
                return Err(PinError::Changed { alias: alias.into(), name: name.into(), pinned: fingerprint(old), published: fingerprint(key) })
            }
            Some((_, old)) => {
                *old = key.clone();
                Pinned::Replaced
            }
            None => {
                entries.push((alias.into(), key.clone()));
                Pinned::New
            }
        };
        self.write(&entries)?;
        Ok(outcome)
    }

    /// Forgets the key of a destroyed box.
    pub fn forget(&self, alias: &str) -> Result<(), PinError> {
        let _lock = self.lock()?;
        let mut entries = self.entries()?;
        let before = entries.len();
        entries.retain(|(a, _)| a != alias);
        if entries.len() != before {
            self.write(&entries)?;
        }
        Ok(())
    }

    fn entries(&self) -> Result<Vec<(String, PublicKey)>, PinError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(PinError::Io { path: self.path.clone(), source }),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let corrupt = |why: String| PinError::Corrupt { path: self.path.clone(), line: i + 1, why };
            let (alias, key) = line.split_once(' ').ok_or_else(|| corrupt("no key".into()))?;
            let key = PublicKey::from_openssh(key).map_err(|e| corrupt(e.to_string()))?;
            out.push((alias.to_string(), key));
        }
        Ok(out)
    }

    fn write(&self, entries: &[(String, PublicKey)]) -> Result<(), PinError> {
        let io = |source| PinError::Io { path: self.path.clone(), source };
        let mut text = String::from("# Host keys pinned by workstation; each box published its own at first boot.\n");
        for (alias, key) in entries {
            let mut key = key.clone();
            key.set_comment("");
            text.push_str(&format!("{alias} {}\n", key.to_openssh().map_err(|e| io(std::io::Error::other(e)))?));
        }
        workstation_hosts_protocol::atomic::write(&self.path, text.as_bytes(), 0o600).map_err(io)
    }

    fn lock(&self) -> Result<File, PinError> {
        let io = |source| PinError::Io { path: self.path.clone(), source };
        let dir = self.path.parent().expect("known_hosts has a parent");
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let f = File::options().create(true).truncate(false).write(true).open(lock_path).map_err(io)?;
        f.lock().map_err(io)?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBAgvl/rpGaHxmrVYPprzUW2kxRUn0W2dznbgGMMDOl4 root@b";

    #[test]
    fn pin_is_idempotent_and_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("known_hosts"));
        let (a, b) = (parse_key(A).unwrap(), parse_key(B).unwrap());
        assert_eq!(kh.pin("i-1.workstation", "dev", &a, false).unwrap(), Pinned::New);
        assert_eq!(kh.pin("i-1.workstation", "dev", &a, false).unwrap(), Pinned::Unchanged);
        let err = kh.pin("i-1.workstation", "dev", &b, false).unwrap_err().to_string();
        assert!(err.contains("changed") && err.contains("workstation pin dev --replace"), "{err}");
        assert_eq!(kh.get("i-1.workstation").unwrap().unwrap().key_data(), a.key_data());
        assert_eq!(kh.pin("i-1.workstation", "dev", &b, true).unwrap(), Pinned::Replaced);
        assert_eq!(kh.pin("i-2.workstation", "other", &a, false).unwrap(), Pinned::New);
        kh.forget("i-1.workstation").unwrap();
        assert!(kh.get("i-1.workstation").unwrap().is_none());
        let text = std::fs::read_to_string(kh.path()).unwrap();
        assert!(text.contains(&format!("i-2.workstation {A}\n")), "{text}");
    }
}
