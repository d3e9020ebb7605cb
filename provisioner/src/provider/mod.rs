//! Where boxes come from. `aws` launches EC2 instances; `local` makes boxes
//! out of network namespaces on this machine. Everything above this module
//! (create, pinning, SSH) is the same for both.

pub mod aws;
pub mod local;
pub mod machine;
pub mod netns;
pub mod tags;

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::laptop::settings::ProviderKind;
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::LoadedManifest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoxState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl BoxState {
    pub fn as_str(self) -> &'static str {
        match self {
            BoxState::Pending => "pending",
            BoxState::Running => "running",
            BoxState::Stopping => "stopping",
            BoxState::Stopped => "stopped",
            BoxState::ShuttingDown => "shutting-down",
            BoxState::Terminated => "terminated",
        }
    }

    /// Counts as "this box exists" (for idempotent create and duplicates).
    pub fn is_live(self) -> bool {
        !matches!(self, BoxState::ShuttingDown | BoxState::Terminated)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BoxInfo {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub state: BoxState,
    /// The address the laptop connects to (per the user's address setting).
    pub address: Option<IpAddr>,
    /// Its address inside its network (an EC2 private address, which an
    /// instance keeps across stops): what a preview's DNS records name.
    pub private_address: Option<IpAddr>,
    /// The SSH host public key the box published about itself at first
    /// boot (OpenSSH format), if it has yet.
    pub host_key: Option<String>,
    pub manifest_hash: Option<String>,
    pub launched_at: Option<DateTime<Utc>>,
    pub instance_type: Option<String>,
    pub last_active: Option<DateTime<Utc>>,
    pub keep_until: Option<DateTime<Utc>>,
    pub stopped_by: Option<String>,
    /// Launched with hibernation enabled: stops hibernate it.
    pub hibernate: bool,
    /// The owner lets colleagues start it (`share --start`).
    pub shareable: bool,
    /// The last bring-up did not end healthy (interrupted, failed, or
    /// unhealthy): `workstation up` finishes it.
    pub bring_up_unfinished: bool,
    /// A pull request's preview box (`workstation preview`).
    pub preview: Option<Preview>,
}

/// What a preview box's tags say: which pull request, which commit it
/// runs, and when `reap` terminates it. Read from tags, so checked there:
/// a tag that does not parse is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Preview {
    pub number: u32,
    /// The full commit id the box's tree is at (None: unknown, so the next
    /// `preview up` uploads the whole tree).
    pub commit: Option<String>,
    /// None: no readable expiry, so reap never terminates it (it still
    /// stops it when idle).
    pub expires: Option<DateTime<Utc>>,
}

impl Preview {
    pub fn from_tags(number: Option<&str>, commit: Option<&str>, expires: Option<&str>) -> Option<Preview> {
        let number = number?.parse::<u32>().ok().filter(|n| *n > 0)?;
        Some(Preview { number, commit: commit.filter(|c| is_commit_id(c)).map(str::to_owned), expires: parse_time(expires) })
    }
}

/// A full SHA-1 or SHA-256 commit id, lowercase hex.
pub fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An RFC 3339 tag value; a malformed one counts as absent.
pub fn parse_time(value: Option<&str>) -> Option<DateTime<Utc>> {
    value.and_then(|v| DateTime::parse_from_rfc3339(v).ok()).map(|t| t.with_timezone(&Utc))
}

pub struct LaunchSpec<'a> {
    pub owner: &'a Owner,
    pub name: &'a BoxName,
    pub manifest: &'a LoadedManifest,
    /// The user's SSH public key (OpenSSH line).
    pub public_key: &'a str,
    /// Tags a preview box at launch (`workstation preview up`).
    pub preview: Option<&'a Preview>,
}

#[derive(Debug)]
pub struct Launched {
    pub info: BoxInfo,
    /// False when a box with this owner and name already existed.
    pub created: bool,
    /// Duplicates of this owner+name found after launch and terminated
    /// (concurrent creates against an API that did not deduplicate).
    pub terminated_duplicates: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{operation} failed: {message}")]
    Api { operation: &'static str, message: String },
    #[error(transparent)]
    Aws(#[from] aws::failure::AwsFailure),
    #[error("box {id} not found (it may have been destroyed; `workstation list` shows what exists)")]
    NotFound { id: String },
    #[error("no image {name} found; check box.image_id/image_name/image_tag in the manifest, or publish the image with `workstation image publish`")]
    NoImage { name: String },
    #[error("image {id} carries the image line's tag but is not a published image: {why}. Nothing was launched; publish the image with `workstation image publish`, or name it with box.image_id if you trust it")]
    UnpublishedImage { id: String, why: String },
    #[error("key pair {name} exists but holds {reason}: someone else imported it under your name, and a box launched with it would let them in. Nothing was launched; ask the platform team to delete it (`aws ec2 delete-key-pair --key-name {name}`), then create again")]
    KeyPairMismatch { name: String, reason: &'static str },
    #[error("the local provider needs root (it creates network namespaces); run with sudo, or use --provider aws")]
    NeedsRoot,
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Local(String),
    #[error("box.hibernate: {0}")]
    Hibernation(String),
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Why the box's sshd refused a key, when the provider can read its
    /// log (a local box can; an EC2 box's log is on the box).
    fn sshd_refusal(&self, _id: &str) -> Option<String> {
        None
    }

    /// Launches the box, or returns the live one with this owner and name.
    async fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched>;

    /// The live box with this owner and name, if any.
    async fn find(&self, owner: &Owner, name: &BoxName) -> Result<Option<BoxInfo>>;

    /// Live boxes, of one owner or of everyone.
    async fn list(&self, owner: Option<&Owner>) -> Result<Vec<BoxInfo>>;

    async fn describe(&self, id: &str) -> Result<BoxInfo>;

    async fn start(&self, id: &str) -> Result<()>;

    /// Stops the box; its disk (state directory) is kept. With
    /// `hibernate`, its memory too (EC2 hibernation; a box launched with
    /// it enabled).
    async fn stop(&self, id: &str, hibernate: bool) -> Result<()>;

    /// Deletes the box and its disk.
    async fn destroy(&self, id: &str) -> Result<()>;

    /// Records `workstation keep`: the idle policy keeps the box until then.
    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()>;

    /// Records whether the owner lets colleagues start the box.
    async fn set_shareable(&self, id: &str, shareable: bool) -> Result<()>;

    /// Records a preview box's commit and expiry (after an upload).
    async fn set_preview(&self, id: &str, preview: &Preview) -> Result<()>;

    /// Records that a bring-up started (None) or ended healthy with the
    /// manifest whose hash is given (the box now runs that manifest).
    async fn record_bring_up(&self, id: &str, finished: Option<&str>) -> Result<()>;
}
