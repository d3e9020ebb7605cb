//! The sha256 of local snapshots, remembered by what `stat` says about
//! them (path, size, mtime, ctime, inode, of each file a snapshot is made
//! of), so an `up` or `create` with unchanged snapshots does not read them
//! again. A snapshot whose files changed in any of those is hashed afresh.
//! A wrong entry would be harmful (the box's marker would match it and the
//! new data be skipped), so, as git does for its index, a file changed in
//! the last seconds is never remembered: a rewrite of the same size within
//! one timestamp tick cannot hide behind an unchanged signature.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Entries kept: enough for every snapshot of a few manifests.
const MAX_ENTRIES: usize = 256;
/// Files changed this recently are hashed every time (timestamp racing).
const SETTLE_SECONDS: i64 = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    signature: String,
    identity: String,
    size: u64,
    /// When it was remembered (Unix seconds): the oldest go first.
    at: i64,
}

#[derive(Debug)]
pub struct HashCache {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl HashCache {
    /// The cache at `path`; a missing or unreadable one is empty.
    pub fn load(path: PathBuf) -> HashCache {
        let entries = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        HashCache { path, entries }
    }

    /// The remembered (identity, size) of `snapshot`, if `signature` (of
    /// its files now) is what it was when hashed.
    pub fn get(&self, snapshot: &Path, signature: &str) -> Option<(String, u64)> {
        let e = self.entries.get(&key(snapshot))?;
        (e.signature == signature).then(|| (e.identity.clone(), e.size))
    }

    /// Remembers a hash, unless one of `files` changed too recently for
    /// its timestamps to tell the next change apart.
    pub fn put(&mut self, snapshot: &Path, files: &[PathBuf], signature: String, identity: String, size: u64) {
        let now = chrono::Utc::now().timestamp();
        let settled = files.iter().all(|f| std::fs::metadata(f).is_ok_and(|m| now - m.mtime().max(m.ctime()) >= SETTLE_SECONDS));
        if !settled {
            return;
        }
        self.entries.insert(key(snapshot), Entry { signature, identity, size, at: now });
        while self.entries.len() > MAX_ENTRIES {
            let oldest = self.entries.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone()).expect("not empty");
            self.entries.remove(&oldest);
        }
    }

    /// Writes the cache (atomically: concurrent runs each leave a whole
    /// file). Failing to is not an error: the next run hashes again.
    pub fn save(&self) {
        let Ok(bytes) = serde_json::to_vec(&self.entries) else { return };
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = workstation_hosts_protocol::atomic::write(&self.path, &bytes, 0o600) {
            tracing::debug!("cannot save the snapshot hash cache {}: {e}", self.path.display());
        }
    }
}

fn key(snapshot: &Path) -> String {
    std::fs::canonicalize(snapshot).unwrap_or_else(|_| snapshot.to_owned()).display().to_string()
}

/// What `stat` says of `files` (a snapshot's files in load order): any
/// write, replacement or truncation changes it.
pub fn signature(files: &[PathBuf]) -> std::io::Result<String> {
    let mut h = Sha256::new();
    for f in files {
        let m = std::fs::metadata(f)?;
        h.update(f.as_os_str().as_encoded_bytes());
        for n in [m.len(), m.mtime() as u64, m.mtime_nsec() as u64, m.ino(), m.dev(), m.ctime() as u64, m.ctime_nsec() as u64] {
            h.update(n.to_le_bytes());
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_hashed_again_and_the_cache_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = dir.path().join("cache.resp");
        std::fs::write(&snapshot, "*1\r\n$4\r\nPING\r\n").unwrap();
        let cache_file = dir.path().join("state/seed-hashes.json");
        let sig = signature(std::slice::from_ref(&snapshot)).unwrap();

        let mut cache = HashCache::load(cache_file.clone());
        assert_eq!(cache.get(&snapshot, &sig), None);
        // Just written: not remembered (a same-size rewrite within the
        // timestamp's tick would look unchanged).
        cache.put(&snapshot, std::slice::from_ref(&snapshot), sig.clone(), "sha256:abc".into(), 14);
        assert_eq!(cache.get(&snapshot, &sig), None);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(&snapshot).unwrap().set_modified(old).unwrap();
        let sig = signature(std::slice::from_ref(&snapshot)).unwrap();
        // ctime moved with the utime call: settle it by hand in the check.
        cache.entries.insert(key(&snapshot), Entry { signature: sig.clone(), identity: "sha256:abc".into(), size: 14, at: 0 });
        cache.save();
        let cache = HashCache::load(cache_file.clone());
        assert_eq!(cache.get(&snapshot, &sig), Some(("sha256:abc".into(), 14)));

        // Same size, new content: the signature moves (ctime at least).
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&snapshot, "*1\r\n$4\r\nPONG\r\n").unwrap();
        let now = signature(std::slice::from_ref(&snapshot)).unwrap();
        assert_ne!(now, sig);
        assert_eq!(cache.get(&snapshot, &now), None);

        // A corrupt cache is an empty one.
        std::fs::write(&cache_file, "not json").unwrap();
        assert_eq!(HashCache::load(cache_file).get(&snapshot, &now), None);
    }
}
