//! One SSH key per pull request. A preview box admits only the key it was
//! created with; if every preview shared one key, one pull request's run
//! could log in to every other preview as root. Each pull request's key is
//! derived from a secret seed held by CI (an environment secret released
//! only to approved runs) and the pull request's number, so every run of
//! pull request N gets N's key, and nothing else does: not another pull
//! request's run, not the box (which holds only the public half).
//!
//! HKDF-SHA256 (RFC 5869) turns the seed and the label `pr-N` into the 32
//! bytes of an Ed25519 private key.

use std::path::Path;

use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::{LineEnding, PrivateKey};

/// The variable CI passes the seed in (never an argument: argv is public
/// to every process on the machine).
pub const SEED_ENV: &str = "WORKSTATION_PREVIEW_KEY_SEED";
/// A seed shorter than this is refused: it could be guessed.
const MIN_SEED_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{SEED_ENV} is not set: CI's preview environment holds the seed as a secret (`openssl rand -base64 48`; docs/preview.md)")]
    NoSeed,
    #[error("{SEED_ENV} is {len} bytes; use at least {MIN_SEED_BYTES} random bytes (`openssl rand -base64 48`)")]
    ShortSeed { len: usize },
    #[error("{path} holds another key; a preview key never replaces one: pass --identity with a path of its own")]
    Occupied { path: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot encode the key: {0}")]
    Encode(String),
}

/// Pull request `number`'s key, from `seed`.
pub fn derive(seed: &str, number: u32) -> Result<PrivateKey, KeyError> {
    if seed.len() < MIN_SEED_BYTES {
        return Err(KeyError::ShortSeed { len: seed.len() });
    }
    let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"workstation preview ssh key v1"), seed.as_bytes());
    let mut secret = [0u8; 32];
    hkdf.expand(format!("pr-{number}").as_bytes(), &mut secret).expect("32 bytes is a valid HKDF-SHA256 length");
    let pair = Ed25519Keypair::from_seed(&secret);
    PrivateKey::new(KeypairData::Ed25519(pair), format!("workstation preview pr-{number}")).map_err(|e| KeyError::Encode(e.to_string()))
}

/// Writes `key` to `identity` (0600) and its public half to
/// `identity.pub`. Idempotent; a different key already there is left alone
/// and is an error.
pub fn install(identity: &Path, key: &PrivateKey) -> Result<(), KeyError> {
    let shown = || identity.display().to_string();
    let public = key.public_key().to_openssh().map_err(|e| KeyError::Encode(e.to_string()))?;
    if let Ok(existing) = russh::keys::load_secret_key(identity, None) {
        if existing.public_key() != key.public_key() {
            return Err(KeyError::Occupied { path: shown() });
        }
    } else if identity.exists() {
        return Err(KeyError::Occupied { path: shown() });
    }
    let private = key.to_openssh(LineEnding::LF).map_err(|e| KeyError::Encode(e.to_string()))?;
    if let Some(dir) = identity.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write { path: dir.display().to_string(), source })?;
    }
    let write = |path: &Path, bytes: &[u8], mode: u32| {
        workstation_hosts_protocol::atomic::write(path, bytes, mode).map_err(|source| KeyError::Write { path: path.display().to_string(), source })
    };
    write(identity, private.as_bytes(), 0o600)?;
    write(&crate::boxes::access::public_key_path(identity), format!("{public}\n").as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "0123456789abcdef0123456789abcdef-test-seed";

    #[test]
    fn each_pull_request_has_its_own_stable_key() {
        let seven = derive(SEED, 7).unwrap();
        assert_eq!(seven.public_key(), derive(SEED, 7).unwrap().public_key(), "every run of #7 gets #7's key");
        assert_ne!(seven.public_key(), derive(SEED, 5).unwrap().public_key());
        assert_ne!(seven.public_key(), derive(&format!("{SEED}x"), 7).unwrap().public_key(), "another seed, another key");
        assert!(matches!(derive("short", 7), Err(KeyError::ShortSeed { len: 5 })));
    }

    #[test]
    fn install_writes_a_private_file_once_and_never_replaces_another_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("ssh/id_pr7");
        let key = derive(SEED, 7).unwrap();
        install(&identity, &key).unwrap();
        install(&identity, &key).unwrap();
        assert_eq!(std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = russh::keys::load_secret_key(&identity, None).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let public = std::fs::read_to_string(dir.path().join("ssh/id_pr7.pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 ") && public.ends_with("workstation preview pr-7\n"), "{public}");
        let before = std::fs::read(&identity).unwrap();
        assert!(matches!(install(&identity, &derive(SEED, 5).unwrap()), Err(KeyError::Occupied { .. })));
        assert_eq!(std::fs::read(&identity).unwrap(), before, "the other key is left as it was");
    }
}
