//! The local provider's state: its directory of boxes, each box's record,
//! and the [`BoxInfo`] the record and the running box make.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::record::{io, lock, namespace, read_record, Record, Recorded};
use crate::provider::machine::{Machine, MACHINE_DIR};
use crate::provider::netns::BoxHost;
use crate::provider::{parse_time, tags, BoxInfo, BoxState, LocalError, LocalNetwork, ProviderError, Result};

pub struct LocalProvider {
    pub(super) root: PathBuf,
    /// What every HOME's boxes share: addresses, the boxes' roots.
    pub(super) machine: Machine,
    pub(super) network: LocalNetwork,
    /// How often each box runs its idle check (`local.idle_check_every`).
    pub(super) idle_check_every: std::time::Duration,
    /// This `workstation`, which the boxes' launchers run (they share this
    /// machine's filesystem); None when its path would need quoting.
    pub(super) bin: Option<String>,
}

impl LocalProvider {
    pub fn new(root: PathBuf, network: LocalNetwork, idle_check_every: std::time::Duration) -> Result<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(ProviderError::NeedsRoot);
        }
        let bin = std::env::current_exe().ok().map(|p| p.display().to_string());
        let bin = bin.filter(|b| b.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)));
        Ok(Self { root, machine: Machine::new(MACHINE_DIR.into()), network, idle_check_every, bin })
    }

    pub(super) fn box_dir(&self, owner: &str, name: &str) -> PathBuf {
        self.root.join(format!("{owner}--{name}"))
    }

    pub(super) fn host(&self, r: &Record) -> BoxHost {
        let suffix = r.id.trim_start_matches("lb-");
        let dir = self.box_dir(&r.owner, &r.name);
        BoxHost {
            ns: namespace(&r.id),
            veth: format!("wv{suffix}"),
            address: r.address,
            network: self.network.clone(),
            root: r.root.clone().unwrap_or_else(|| dir.join("root")),
            dir,
            hostname: r.name.clone(),
            env: self.bin.iter().map(|b| ("WORKSTATION_BIN".to_owned(), b.clone())).collect(),
            team: r.team.is_some(),
        }
    }

    /// The lock of box `owner`/`name`: launch, start, stop and destroy
    /// one at a time.
    pub(super) fn name_lock(&self, owner: &str, name: &str) -> Result<File> {
        lock(&self.root.join(format!("{owner}--{name}.lock")))
    }

    pub(super) fn records(&self) -> Result<Vec<Record>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ProviderError::Io { context: format!("cannot list {}", self.root.display()), source }),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("box.json");
            if path.exists() {
                out.push(read_record(&path)?);
            }
        }
        out.sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
        Ok(out)
    }

    pub(super) fn record(&self, id: &str) -> Result<Record> {
        self.records()?.into_iter().find(|r| r.id == id).ok_or_else(|| ProviderError::NotFound { id: id.into() })
    }

    pub(super) fn save(&self, r: &Record) -> Result<()> {
        let dir = self.box_dir(&r.owner, &r.name);
        let json = serde_json::to_vec_pretty(r).expect("record serialises");
        workstation_hosts_protocol::atomic::write(&dir.join("box.json"), &json, 0o600).map_err(io(&dir))
    }

    /// Changes the record under its lock, re-read first: the box's idle
    /// check (every minute, from inside the box) and the CLI both write it,
    /// and neither may lose the other's change.
    pub(super) fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let r = self.record(id)?;
        let dir = self.box_dir(&r.owner, &r.name);
        let _lock = lock(&dir.join("box.json.lock"))?;
        let mut r = self.record(id)?;
        change(&mut r);
        self.save(&r)?;
        Ok(r)
    }

    pub(super) fn info(&self, r: &Record) -> BoxInfo {
        let state = match r.state {
            Recorded::Running if self.host(r).is_up() => BoxState::Running,
            // Recorded running but down: the machine rebooted or sshd died.
            _ => BoxState::Stopped,
        };
        BoxInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
            state,
            address: Some(IpAddr::V4(r.address)),
            private_address: Some(IpAddr::V4(r.address)),
            host_key: r.host_key.clone(),
            manifest_hash: Some(r.manifest_hash.clone()),
            launched_at: Some(r.launched_at),
            instance_type: Some("netns".into()),
            last_active: r.last_active,
            keep_until: r.keep_until,
            stopped_by: r.stopped_by.clone(),
            // A namespace costs nothing: no ledger for `cost`.
            stopped_at: None,
            usage: Default::default(),
            // A namespace has no memory image to keep.
            hibernate: false,
            shareable: r.shareable,
            preview: r.preview.clone(),
            team: r.team.clone(),
            bring_up_unfinished: r.bring_up_unfinished,
            image_id: None,
            data_volume: r.volume.clone(),
        }
    }

    /// The box whose root directory is `root` (what its idle check is
    /// given), if it is one of ours.
    pub fn box_at(&self, root: &Path) -> Result<Option<String>> {
        Ok(self.records()?.into_iter().find(|r| self.host(r).root() == root).map(|r| r.id))
    }

    /// Records what the box's idle check reports about itself: the local
    /// counterpart of its EC2 tags `last-active` and `stopped-by`.
    pub fn record_tag(&self, id: &str, key: &str, value: &str) -> Result<()> {
        let change: Box<dyn FnOnce(&mut Record)> = match key {
            tags::LAST_ACTIVE => Box::new(|r| r.last_active = parse_time(Some(value))),
            tags::STOPPED_BY => Box::new(|r| r.stopped_by = Some(value.into())),
            other => return Err(LocalError::NoSuchTag { tag: other.into() }.into()),
        };
        self.update(id, change).map(drop)
    }
}
