//! Data volumes: the disk holding everything a box's engineer and stack
//! write (home, `src/`, store data, seed markers, logs), apart from the root
//! volume its image boots from. `upgrade` replaces the root and keeps it;
//! `destroy` keeps it unless told to purge, for the next `create` of that
//! name to reattach. Nothing in `reap` reaches these: it never deletes one.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The device a data volume is attached at; the image mounts it at the box
/// root (images/workstation.nix).
pub const DEVICE: &str = "/dev/sdf";

/// Written at the root of a mounted data volume by what mounts it (the
/// image's workstation-data unit; a local box's boot): `upgrade` replaces a
/// root only when the box shows its data is on the volume, not on the root
/// the replacement deletes.
pub const MARKER: &str = ".data-volume";

/// gp3's list price per GiB-month (us-east-1): what `list --volumes` shows.
pub const GP3_USD_PER_GIB_MONTH: f64 = 0.08;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataVolume {
    pub id: String,
    pub owner: String,
    /// The box name it was made for (a `create` of that name reattaches it).
    pub name: String,
    pub size_gib: u32,
    pub created_at: Option<DateTime<Utc>>,
    /// The box it is attached to; None: kept, with no box.
    pub attached_to: Option<String>,
    /// EC2 attaches a volume only to an instance in its Availability Zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
}

impl DataVolume {
    pub fn monthly_usd(&self) -> f64 {
        self.size_gib as f64 * GP3_USD_PER_GIB_MONTH
    }

    pub fn is_kept(&self) -> bool {
        self.attached_to.is_none()
    }
}

/// What `upgrade` found and did to the box's root.
#[derive(Debug, Clone, Serialize)]
pub struct RootReplaced {
    /// The image the box ran before (None: unknown, or a local box).
    pub from: Option<String>,
    pub to: Option<String>,
    /// False when the box already ran `to` (a re-run after an interrupted
    /// upgrade, or nothing newer): nothing was replaced this time.
    pub replaced: bool,
}

/// An image a box could run, newest first in lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageSummary {
    pub id: String,
    pub created_at: Option<DateTime<Utc>>,
}
