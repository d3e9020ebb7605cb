//! `[sync]`: where `workstation sync` mirrors the checkout on the box.

use serde::{Deserialize, Serialize};

/// `workstation sync`: the laptop's checkout mirrored onto the box.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// Where on the box, relative to the box root (default: `src/<name of
    /// the checkout directory>`).
    pub path: Option<String>,
    /// rsync patterns never synced, besides `.git/` and what `.gitignore`
    /// files ignore.
    #[serde(default)]
    pub exclude: Vec<String>,
}
