//! What a provider says about a box, and what it is asked to launch.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::manifest::name::{BoxName, EnvName, Owner, TeamName};
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
    /// When it was last stopped, while it is stopped (EC2's
    /// StateTransitionReason).
    pub stopped_at: Option<DateTime<Utc>>,
    /// Its hours by month, as its tag tells (`cost`).
    pub usage: super::usage::Usage,
    /// Launched with hibernation enabled: stops hibernate it.
    pub hibernate: bool,
    /// The owner lets colleagues start it (`share --start`).
    pub shareable: bool,
    /// The last bring-up did not end healthy (interrupted, failed, or
    /// unhealthy): `workstation up` finishes it.
    pub bring_up_unfinished: bool,
    /// A pull request's preview box (`workstation preview`).
    pub preview: Option<Preview>,
    /// A team's shared box (`workstation env`).
    pub team: Option<TeamEnv>,
    /// The image its root runs (None: unknown, or a local box).
    pub image_id: Option<String>,
    /// Its data volume (None: a box made before data volumes, whose data
    /// is on its root).
    pub data_volume: Option<String>,
}

#[cfg(test)]
impl BoxInfo {
    /// A box of owner `o` named dev, in `state`, with nothing else known:
    /// for unit tests of what is decided about boxes.
    pub fn example(id: &str, state: BoxState) -> BoxInfo {
        BoxInfo {
            id: id.into(),
            name: "dev".into(),
            owner: "o".into(),
            state,
            address: None,
            private_address: None,
            host_key: None,
            manifest_hash: None,
            launched_at: None,
            instance_type: None,
            last_active: None,
            keep_until: None,
            stopped_by: None,
            stopped_at: None,
            usage: Default::default(),
            hibernate: false,
            shareable: false,
            bring_up_unfinished: false,
            preview: None,
            team: None,
            image_id: None,
            data_volume: None,
        }
    }
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

/// What a team box's tags say: whose team, which environment, which
/// commit it runs. Read from tags, so checked there: a team or name that
/// is not a label makes the box no team's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TeamEnv {
    pub team: String,
    pub env: String,
    /// The full commit id its tree is at (None: unknown, so the next
    /// `env up` uploads the whole tree).
    pub commit: Option<String>,
}

impl TeamEnv {
    pub fn from_tags(team: Option<&str>, env: Option<&str>, commit: Option<&str>) -> Option<TeamEnv> {
        let team = team?.parse::<TeamName>().ok()?;
        let env = env?.parse::<EnvName>().ok()?;
        Some(TeamEnv { team: team.to_string(), env: env.to_string(), commit: commit.filter(|c| is_commit_id(c)).map(str::to_owned) })
    }

    /// `payments/staging`, as engineers name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.team, self.env)
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
    /// Tags a team box at launch (`workstation env up`).
    pub team: Option<&'a TeamEnv>,
    /// A kept data volume of this name to reattach; None: a new one
    /// (`box.data_gib`).
    pub data: Option<&'a crate::provider::DataVolume>,
    /// This launch's nonce (laptop/launches.rs), for the ClientToken;
    /// `launch_ready` sets it.
    pub attempt: Option<&'a str>,
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
