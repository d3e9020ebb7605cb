//! Local data volumes: a directory in the machine directory that is the
//! root of the box it is attached to (home, `src/`, stores, markers,
//! logs), recorded in `volumes/<id>.json` beside the boxes. A box's record
//! names its volume; one no record names is kept.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::record::{io, Record};
use super::store::LocalProvider;
use crate::provider::{DataVolume, LocalError, ProviderError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct VolumeRecord {
    pub(super) id: String,
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) size_gib: u32,
    pub(super) created_at: DateTime<Utc>,
}

impl LocalProvider {
    fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    fn volume_file(&self, id: &str) -> PathBuf {
        self.volumes_dir().join(format!("{id}.json"))
    }

    /// A new volume for `owner`/`name`, recorded before its directory is
    /// made: an interrupted create leaves a record `destroy --purge` finds.
    pub(super) fn new_volume(&self, owner: &str, name: &str, size_gib: u32) -> Result<VolumeRecord> {
        let now = Utc::now();
        let digest = Sha256::digest(format!("{owner}/{name}/{}/{}", now.timestamp_nanos_opt().unwrap_or_default(), std::process::id()));
        let v = VolumeRecord { id: format!("lv-{}", &hex::encode(digest)[..10]), owner: owner.into(), name: name.into(), size_gib, created_at: now };
        let dir = self.volumes_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let json = serde_json::to_vec_pretty(&v).expect("volume record serialises");
        workstation_hosts_protocol::atomic::write(&self.volume_file(&v.id), &json, 0o600).map_err(io(&dir))?;
        Ok(v)
    }

    pub(super) fn volume_records(&self) -> Result<Vec<VolumeRecord>> {
        let dir = self.volumes_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut out = Vec::new();
        for path in entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")) {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let corrupt = |detail: String| ProviderError::from(LocalError::CorruptRecord { path: path.clone(), detail });
            let v: VolumeRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            // The id names a directory removed as root: only our own form,
            // and the record's own file name.
            if !is_volume_id(&v.id) || path.file_stem().and_then(|s| s.to_str()) != Some(v.id.as_str()) {
                return Err(corrupt(format!("volume id {:?} is not lv-<10 hex digits> matching its file name", v.id)));
            }
            out.push(v);
        }
        out.sort_by(|a, b| (&a.owner, &a.name, a.created_at).cmp(&(&b.owner, &b.name, b.created_at)));
        Ok(out)
    }

    pub(super) fn data_volume(&self, v: &VolumeRecord, boxes: &[Record]) -> DataVolume {
        DataVolume {
            id: v.id.clone(),
            owner: v.owner.clone(),
            name: v.name.clone(),
            size_gib: v.size_gib,
            created_at: Some(v.created_at),
            attached_to: boxes.iter().find(|r| r.volume.as_deref() == Some(v.id.as_str())).map(|r| r.id.clone()),
            availability_zone: None,
        }
    }

    /// Removes volume `id`: its directory (as root), then its record.
    pub(super) fn remove_volume(&self, id: &str) -> Result<()> {
        let root = self.machine.volume_root(id);
        match std::fs::remove_dir_all(&root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&root)(e)),
            _ => {}
        }
        let file = self.volume_file(id);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&file)(e)),
            _ => Ok(()),
        }
    }
}

/// `lv-` and 10 lowercase hex digits, as [`LocalProvider::new_volume`] makes.
fn is_volume_id(id: &str) -> bool {
    id.strip_prefix("lv-").is_some_and(|hex| hex.len() == 10 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_our_volume_ids_name_directories() {
        assert!(super::is_volume_id("lv-0123456789"));
        for bad in ["lv-../../etc", "lv-012345678", "lv-0123456789a", "lv-ABCDEF0123", "../lv-0123456789", ""] {
            assert!(!super::is_volume_id(bad), "{bad}");
        }
    }
}
