//! The local provider's secrets: a 0600 TOML file on the laptop (by
//! reference: `"ssm:/workstation/shared/stripe" = "sk_test_..."`), then a
//! command (`pass show ...`, `op read ...`) that gets the reference in
//! `WORKSTATION_SECRET` and prints the value. Values go to the box over
//! SSH stdin as a [`Handover`] (boxside/held.rs keeps it in memory), never
//! into an argument or an environment the box's other processes could read.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::manifest::name::Owner;
use crate::manifest::{Manifest, SecretRef};
use serde::{Deserialize, Serialize};

/// Values by reference as the manifest writes it; for each reference the
/// laptop could not resolve, why (never a value).
#[derive(Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub values: BTreeMap<String, String>,
    pub missing: BTreeMap<String, String>,
}

/// References only: a `{:?}` anywhere must not print a value.
impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").field("values", &self.values.keys().collect::<Vec<_>>()).field("missing", &self.missing).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaptopSecretsError {
    #[error("{} holds secrets, so only you may read it: it is mode {mode:o}; run `chmod 600 {}`", .path.display(), .path.display())]
    Mode { path: PathBuf, mode: u32 },
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a table of \"reference\" = \"value\" ({message}); fix or remove it", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct LaptopSecrets {
    /// `[secrets] file` (default `~/.config/workstation/secrets.toml`).
    pub file: PathBuf,
    /// `[secrets] command`, run with `sh -c` for a reference the file lacks.
    pub command: Option<String>,
}

impl LaptopSecrets {
    /// Every reference of the manifest's services, resolved for `owner`:
    /// the values by reference as written, and why each other one is
    /// missing. A missing one is not an error here: its program will not
    /// start, saying why, and the rest of the stack comes up.
    pub fn handover(&self, manifest: &Manifest, owner: &Owner) -> Result<Handover, LaptopSecretsError> {
        let file = self.read()?;
        let mut out = Handover::default();
        for reference in manifest.services.values().flat_map(|s| s.secrets.values()) {
            let concrete = reference.for_owner(owner.as_str());
            let found = match file.get(&concrete.to_string()) {
                Some(v) => Ok(v.clone()),
                None => self.run_command(&concrete),
            };
            match found {
                Ok(v) => drop(out.values.insert(reference.to_string(), v)),
                Err(why) => drop(out.missing.insert(reference.to_string(), why)),
            }
        }
        Ok(out)
    }

    fn run_command(&self, reference: &SecretRef) -> Result<String, String> {
        let file = self.file.display();
        let Some(command) = &self.command else {
            return Err(format!("{reference} is not in {file} (`workstation secrets set`, or add it there) and no [secrets] command is set"));
        };
        let out = Command::new("sh")
            .args(["-c", command])
            .env("WORKSTATION_SECRET", reference.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("[secrets] command could not run: {e}"))?;
        if !out.status.success() {
            // Its stderr says why (not found, locked); never its stdout.
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.lines().next().unwrap_or_default();
            return Err(format!("{reference} is not in {file}, and [secrets] command failed ({}): {said}", out.status));
        }
        let mut value = String::from_utf8(out.stdout).map_err(|_| format!("[secrets] command printed a value for {reference} that is not UTF-8"))?;
        // `pass show` and `op read` end the value with a newline.
        if value.ends_with('\n') {
            value.pop();
        }
        if value.is_empty() {
            return Err(format!("{reference} is not in {file}, and [secrets] command printed nothing for it"));
        }
        Ok(value)
    }

    /// The file's values; none when it does not exist. A file others may
    /// read is refused rather than used.
    fn read(&self) -> Result<BTreeMap<String, String>, LaptopSecretsError> {
        let path = &self.file;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => return Err(LaptopSecretsError::Read { path: path.clone(), source }),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(LaptopSecretsError::Mode { path: path.clone(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(|source| LaptopSecretsError::Read { path: path.clone(), source })?;
        // toml's message quotes the offending line, which may hold a value.
        toml::from_str(&text).map_err(|e| LaptopSecretsError::Parse { path: path.clone(), message: format!("at byte {:?}", e.span().map(|s| s.start)) })
    }

    fn write(&self, values: &BTreeMap<String, String>) -> Result<(), LaptopSecretsError> {
        let text =
            format!("# Secrets for local boxes, by reference (`workstation secrets`); keep this file 0600.\n{}", toml::to_string(values).expect("strings"));
        let err = |source| LaptopSecretsError::Write { path: self.file.clone(), source };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        workstation_hosts_protocol::atomic::write(&self.file, text.as_bytes(), 0o600).map_err(err)
    }

    pub fn set(&self, reference: &SecretRef, value: &str) -> Result<(), LaptopSecretsError> {
        let mut values = self.read()?;
        values.insert(reference.to_string(), value.to_owned());
        self.write(&values)
    }

    /// The names of `owner`'s own values (the last part of each path).
    pub fn names(&self, owner: &Owner) -> Result<Vec<String>, LaptopSecretsError> {
        let prefix = format!("ssm:{}/", crate::manifest::secret::own_path(owner.as_str()));
        Ok(self.read()?.into_keys().filter_map(|k| k.strip_prefix(&prefix).map(String::from)).collect())
    }

    /// Whether there was one to remove.
    pub fn remove(&self, reference: &SecretRef) -> Result<bool, LaptopSecretsError> {
        let mut values = self.read()?;
        let had = values.remove(&reference.to_string()).is_some();
        if had {
            self.write(&values)?;
        }
        Ok(had)
    }

    pub fn path(&self) -> &Path {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(secrets: &str) -> Manifest {
        Manifest::parse(&format!("[box]\ninstance_type = \"t3.small\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n[services.api]\ncommand = \"true\"\nsecrets = {{ {secrets} }}\n")).unwrap()
    }

    #[test]
    fn the_file_then_the_command_and_each_miss_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = LaptopSecrets { file: dir.path().join("secrets.toml"), command: None };
        let alice: Owner = "alice".parse().unwrap();
        store.set(&SecretRef::own("alice", "github"), "ghp_1").unwrap();
        assert_eq!(std::fs::metadata(&store.file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(store.names(&alice).unwrap(), ["github"]);
        let m = manifest("GH = \"ssm:/workstation/{owner}/github\", STRIPE = \"ssm:/workstation/shared/stripe\"");
        let h = store.handover(&m, &alice).unwrap();
        assert_eq!(h.values["ssm:/workstation/{owner}/github"], "ghp_1");
        assert!(h.missing["ssm:/workstation/shared/stripe"].contains("no [secrets] command"), "{h:?}");

        let with_command =
            LaptopSecrets { command: Some("test \"$WORKSTATION_SECRET\" = ssm:/workstation/shared/stripe && echo sk_test_9".into()), ..store.clone() };
        let h = with_command.handover(&m, &alice).unwrap();
        assert_eq!(h.values["ssm:/workstation/shared/stripe"], "sk_test_9");
        let failing = LaptopSecrets { command: Some("echo 'not found' >&2; exit 3".into()), ..store.clone() };
        assert!(failing.handover(&m, &alice).unwrap().missing["ssm:/workstation/shared/stripe"].contains("not found"));

        assert!(store.remove(&SecretRef::own("alice", "github")).unwrap());
        assert!(!store.remove(&SecretRef::own("alice", "github")).unwrap());
        std::fs::set_permissions(&store.file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(store.handover(&m, &alice), Err(LaptopSecretsError::Mode { .. })));
    }
}
