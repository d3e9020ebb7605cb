//! What `box.json` records, and the file helpers every part uses.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::provider::{LocalError, Preview, ProviderError, Result, TeamEnv};

/// What `box.json` records. `state` is what the user asked for; the box is
/// only reported running if its namespace and sshd really are up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) id: String,
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) address: Ipv4Addr,
    pub(super) state: Recorded,
    pub(super) launched_at: DateTime<Utc>,
    pub(super) manifest_hash: String,
    pub(super) host_key: Option<String>,
    #[serde(default)]
    pub(super) last_active: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(super) keep_until: Option<DateTime<Utc>>,
    /// Why the box's idle check stopped it (the EC2 tag's counterpart).
    #[serde(default)]
    pub(super) stopped_by: Option<String>,
    /// The manifest the box was created from: its idle check reads the
    /// policy and the service ports there (an image has it baked in).
    #[serde(default)]
    pub(super) manifest: Option<PathBuf>,
    /// The `workstation:shareable` tag's counterpart.
    #[serde(default)]
    pub(super) shareable: bool,
    /// The preview tags' counterpart.
    #[serde(default)]
    pub(super) preview: Option<Preview>,
    /// The team tags' counterpart (`workstation env`).
    #[serde(default)]
    pub(super) team: Option<TeamEnv>,
    /// The `workstation:bring-up` tag's counterpart.
    #[serde(default)]
    pub(super) bring_up_unfinished: bool,
    /// The box's root, outside HOME (None: a box made before roots moved
    /// there, whose root is `root/` in its directory).
    #[serde(default)]
    pub(super) root: Option<PathBuf>,
    /// Its data volume, whose directory is the root (None: a box made
    /// before data volumes, whose root is its own).
    #[serde(default)]
    pub(super) volume: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Recorded {
    Running,
    Stopped,
}

/// The network namespace of box `id` (`lb-<hex>` → `ws-<hex>`), which also
/// names its root in the machine directory.
pub(super) fn namespace(id: &str) -> String {
    format!("ws-{}", id.trim_start_matches("lb-"))
}

pub(super) fn read_record(path: &Path) -> Result<Record> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| LocalError::CorruptRecord { path: path.to_owned(), detail: e.to_string() }.into())
}

/// An exclusive lock held until the returned file is dropped.
pub(super) fn lock(path: &Path) -> Result<File> {
    let f = File::options().create(true).truncate(false).write(true).open(path).map_err(io(path))?;
    f.lock().map_err(io(path))?;
    Ok(f)
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProviderError + '_ {
    move |source| ProviderError::Io { context: format!("{}", path.display()), source }
}
