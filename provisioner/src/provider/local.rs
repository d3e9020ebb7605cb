//! The local provider: each box is a [`BoxHost`] (network namespace + sshd)
//! on this machine, with a state directory that is its disk:
//! `~/.local/state/workstation/local/<owner>--<name>/`.
//!
//! `box.json` there plays the part EC2 tags play for the aws provider; the
//! box's first boot writes its host key into it, as the aws image publishes
//! its key in a tag.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::host::path_str;
use super::machine::{Machine, MACHINE_DIR};
use super::netns::BoxHost;
use super::{BoxInfo, BoxState, LaunchSpec, Launched, LocalError, Provider, ProviderError, Result};
use crate::manifest::name::{BoxName, Owner};
use crate::provider::{LocalNetwork, ProviderKind};

pub struct LocalProvider {
    root: PathBuf,
    /// What every HOME's boxes share: addresses, the boxes' roots.
    machine: Machine,
    network: LocalNetwork,
    /// How often each box runs its idle check (`local.idle_check_every`).
    idle_check_every: std::time::Duration,
}

/// What `box.json` records. `state` is what the user asked for; the box is
/// only reported running if its namespace and sshd really are up.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    owner: String,
    name: String,
    address: Ipv4Addr,
    state: Recorded,
    launched_at: DateTime<Utc>,
    manifest_hash: String,
    host_key: Option<String>,
    #[serde(default)]
    last_active: Option<DateTime<Utc>>,
    #[serde(default)]
    keep_until: Option<DateTime<Utc>>,
    /// Why the box's idle check stopped it (the EC2 tag's counterpart).
    #[serde(default)]
    stopped_by: Option<String>,
    /// The manifest the box was created from: its idle check reads the
    /// policy and the service ports there (an image has it baked in).
    #[serde(default)]
    manifest: Option<PathBuf>,
    /// The `workstation:shareable` tag's counterpart.
    #[serde(default)]
    shareable: bool,
    /// The preview tags' counterpart.
    #[serde(default)]
    preview: Option<super::Preview>,
    /// The `workstation:bring-up` tag's counterpart.
    #[serde(default)]
    bring_up_unfinished: bool,
    /// The box's root, outside HOME (None: a box made before roots moved
    /// there, whose root is `root/` in its directory).
    #[serde(default)]
    root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Recorded {
    Running,
    Stopped,
}

impl LocalProvider {
    pub fn new(root: PathBuf, network: LocalNetwork, idle_check_every: std::time::Duration) -> Result<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(ProviderError::NeedsRoot);
        }
        Ok(Self { root, machine: Machine::new(MACHINE_DIR.into()), network, idle_check_every })
    }

    fn box_dir(&self, owner: &str, name: &str) -> PathBuf {
        self.root.join(format!("{owner}--{name}"))
    }

    fn host(&self, r: &Record) -> BoxHost {
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
        }
    }

    /// The lock of box `owner`/`name`: launch, start, stop and destroy
    /// one at a time.
    fn name_lock(&self, owner: &str, name: &str) -> Result<File> {
        lock(&self.root.join(format!("{owner}--{name}.lock")))
    }

    fn records(&self) -> Result<Vec<Record>> {
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

    fn record(&self, id: &str) -> Result<Record> {
        self.records()?.into_iter().find(|r| r.id == id).ok_or_else(|| ProviderError::NotFound { id: id.into() })
    }

    fn save(&self, r: &Record) -> Result<()> {
        let dir = self.box_dir(&r.owner, &r.name);
        let json = serde_json::to_vec_pretty(r).expect("record serialises");
        workstation_hosts_protocol::atomic::write(&dir.join("box.json"), &json, 0o600).map_err(io(&dir))
    }

    /// Changes the record under its lock, re-read first: the box's idle
    /// check (every minute, from inside the box) and the CLI both write it,
    /// and neither may lose the other's change.
    fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let r = self.record(id)?;
        let dir = self.box_dir(&r.owner, &r.name);
        let _lock = lock(&dir.join("box.json.lock"))?;
        let mut r = self.record(id)?;
        change(&mut r);
        self.save(&r)?;
        Ok(r)
    }

    fn info(&self, r: &Record) -> BoxInfo {
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
            // A namespace has no memory image to keep.
            hibernate: false,
            shareable: r.shareable,
            preview: r.preview.clone(),
            bring_up_unfinished: r.bring_up_unfinished,
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
            super::tags::LAST_ACTIVE => Box::new(|r| r.last_active = super::parse_time(Some(value))),
            super::tags::STOPPED_BY => Box::new(|r| r.stopped_by = Some(value.into())),
            other => return Err(LocalError::NoSuchTag { tag: other.into() }.into()),
        };
        self.update(id, change).map(drop)
    }

    async fn boot(&self, r: Record) -> Result<Record> {
        // A box made before the machine-wide leases has none: claimed here,
        // so no other HOME is given its address while it is stopped.
        {
            let lock = self.machine.lock()?;
            self.machine.claim(&lock, r.address, &self.box_dir(&r.owner, &r.name).join("box.json"))?;
        }
        let host = self.host(&r);
        let host = tokio::task::spawn_blocking(move || host.boot().map(|_| host)).await.expect("boot task panicked")?;
        // First boot: the box publishes its own host key.
        let published = match &r.host_key {
            Some(_) => None,
            None => Some(std::fs::read_to_string(host.host_key_pub()).map_err(io(&host.dir))?),
        };
        let r = self.update(&r.id, |r| {
            if let Some(key) = published {
                r.host_key = Some(key.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
            }
            r.state = Recorded::Running;
            // As EC2's LaunchTime: the last start, from which a box counts
            // as active (a woken box is not stopped by its idle check at once).
            r.launched_at = Utc::now();
        })?;
        // The idle check first: a box that runs must be able to stop itself,
        // whatever becomes of its stack.
        self.start_idle_check(&host, &r)?;
        if let Err(e) = start_stack(&host) {
            tracing::warn!("box {}: supervisord did not start at boot ({e}); `workstation up {}` starts it", r.name, r.name);
        }
        Ok(r)
    }

    /// The box's own idle check, every `idle_check_every`, inside the box:
    /// what the image's systemd timer is on EC2. It outlives the CLI that
    /// booted the box and goes away with the box (`halt` stops everything
    /// in its namespace). Its last run's output is in `idle-check.log`.
    fn start_idle_check(&self, host: &BoxHost, r: &Record) -> Result<()> {
        let Some(manifest) = &r.manifest else {
            return Ok(());
        };
        let exe = std::env::current_exe().map_err(io(&host.dir))?;
        let every = self.idle_check_every.as_secs().max(1).to_string();
        let log = host.dir.join("idle-check.log");
        let mut env: Vec<(&str, String)> = vec![("WORKSTATION_MANIFEST", manifest.display().to_string())];
        // The check finds this box's record as this CLI does.
        for var in ["HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"] {
            if let Some(v) = std::env::var_os(var) {
                env.push((var, v.to_string_lossy().into_owned()));
            }
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        host.spawn(
            r#"while sleep "$1"; do "$2" box idle-check --root "$3" >"$4" 2>&1; done"#,
            &[&every, path_str(&exe)?, path_str(&host.root())?, path_str(&log)?],
            &env,
        )
    }

    async fn halt(&self, r: &Record) -> Result<()> {
        let host = self.host(r);
        tokio::task::spawn_blocking(move || host.halt()).await.expect("halt task panicked")
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn sshd_refusal(&self, id: &str) -> Option<String> {
        self.host(&self.record(id).ok()?).refusal()
    }

    async fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        // One box per owner+name, even with concurrent creates: the first
        // takes the lock and makes it, the others find it.
        let dir = self.box_dir(spec.owner.as_str(), spec.name.as_str());
        let _name_lock = self.name_lock(spec.owner.as_str(), spec.name.as_str())?;
        if let Some(info) = self.find(spec.owner, spec.name).await? {
            return Ok(Launched { info, created: false, terminated_duplicates: vec![] });
        }
        let record = {
            let alloc_lock = self.machine.lock()?;
            let mine: Vec<Ipv4Addr> = self.records()?.iter().map(|r| r.address).collect();
            let address = self.machine.allocate(&alloc_lock, &self.network, &mine, &dir.join("box.json"))?;
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            std::fs::write(dir.join("authorized_keys"), format!("{}\n", spec.public_key.trim())).map_err(io(&dir))?;
            let now = Utc::now();
            let digest = Sha256::digest(format!("{}/{}/{}/{}", spec.owner, spec.name, now.timestamp_nanos_opt().unwrap_or_default(), std::process::id()));
            let id = format!("lb-{}", &hex::encode(digest)[..10]);
            let record = Record {
                root: Some(self.machine.box_root(&namespace(&id))),
                id,
                owner: spec.owner.to_string(),
                name: spec.name.to_string(),
                address,
                state: Recorded::Stopped,
                launched_at: now,
                manifest_hash: spec.manifest.hash.clone(),
                host_key: None,
                last_active: None,
                keep_until: None,
                stopped_by: None,
                shareable: false,
                bring_up_unfinished: false,
                preview: spec.preview.cloned(),
                manifest: Some(std::fs::canonicalize(&spec.manifest.path).unwrap_or_else(|_| spec.manifest.path.clone())),
            };
            self.save(&record)?;
            record
        };
        let record = self.boot(record).await?;
        Ok(Launched { info: self.info(&record), created: true, terminated_duplicates: vec![] })
    }

    async fn find(&self, owner: &Owner, name: &BoxName) -> Result<Option<BoxInfo>> {
        let path = self.box_dir(owner.as_str(), name.as_str()).join("box.json");
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(self.info(&read_record(&path)?)))
    }

    async fn list(&self, owner: Option<&Owner>) -> Result<Vec<BoxInfo>> {
        Ok(self.records()?.iter().filter(|r| owner.is_none_or(|o| o.as_str() == r.owner)).map(|r| self.info(r)).collect())
    }

    async fn describe(&self, id: &str) -> Result<BoxInfo> {
        Ok(self.info(&self.record(id)?))
    }

    async fn start(&self, id: &str) -> Result<()> {
        let r = self.record(id)?;
        // Concurrent starts (two wakes on connect) boot it once: a second
        // boot would halt the first one's sshd and sessions.
        let _lock = self.name_lock(&r.owner, &r.name)?;
        let r = self.record(id)?;
        if self.info(&r).state != BoxState::Running {
            tracing::info!("booting local box {id}");
            self.boot(r).await?;
        }
        Ok(())
    }

    async fn stop(&self, id: &str, _hibernate: bool) -> Result<()> {
        let r = self.record(id)?;
        // Not while a start boots it: the halt would remove the new
        // namespace and strand what runs in it.
        let _lock = self.name_lock(&r.owner, &r.name)?;
        self.halt(&r).await?;
        self.update(id, |r| r.state = Recorded::Stopped).map(drop)
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        let r = self.record(id)?;
        let _lock = self.name_lock(&r.owner, &r.name)?;
        self.halt(&r).await?;
        let dir = self.box_dir(&r.owner, &r.name);
        // box.json is in a directory the user can write: only this box's
        // own root in the machine directory is removed (as root).
        if let Some(root) = r.root.as_ref().filter(|root| **root == self.machine.box_root(&namespace(&r.id))) {
            match std::fs::remove_dir_all(root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(root)(e)),
                _ => {}
            }
        }
        self.machine.release(r.address, &dir.join("box.json"));
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()> {
        self.update(id, |r| r.keep_until = Some(until)).map(drop)
    }

    async fn set_shareable(&self, id: &str, shareable: bool) -> Result<()> {
        self.update(id, |r| r.shareable = shareable).map(drop)
    }

    async fn record_bring_up(&self, id: &str, finished: Option<&str>) -> Result<()> {
        self.update(id, |r| {
            r.bring_up_unfinished = finished.is_none();
            if let Some(hash) = finished {
                r.manifest_hash = hash.to_owned();
            }
        })
        .map(drop)
    }

    async fn set_preview(&self, id: &str, preview: &super::Preview) -> Result<()> {
        self.update(id, |r| r.preview = Some(preview.clone())).map(drop)
    }
}

/// The network namespace of box `id` (`lb-<hex>` → `ws-<hex>`), which also
/// names its root in the machine directory.
fn namespace(id: &str) -> String {
    format!("ws-{}", id.trim_start_matches("lb-"))
}

fn read_record(path: &Path) -> Result<Record> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| LocalError::CorruptRecord { path: path.to_owned(), detail: e.to_string() }.into())
}

/// The box's stack, as the image's systemd unit starts it at boot:
/// supervisord with the configuration `up` last installed, if any, in the
/// box's hostname and with the environment its SSH sessions have. Waited
/// for (0.3-0.5 s: supervisord daemonises once its socket listens), so
/// the verb that woke the box finds the stack starting, not missing.
fn start_stack(host: &BoxHost) -> Result<()> {
    let layout = crate::stack::layout::Layout::new(path_str(&host.root())?, None).map_err(LocalError::from)?;
    if !Path::new(&layout.conf()).exists() {
        return Ok(());
    }
    let root = path_str(&host.root())?.to_owned();
    let home = path_str(&host.home())?.to_owned();
    host.run_in(
        r#"exec unshare --uts -- sh -c 'hostname "$1" && exec supervisord -c "$2"' sh "$1" "$2""#,
        &[&host.hostname, &layout.conf()],
        &[("HOME", &home), ("WORKSTATION_BOX_ROOT", &root), ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")],
    )
}

/// An exclusive lock held until the returned file is dropped.
fn lock(path: &Path) -> Result<File> {
    let f = File::options().create(true).truncate(false).write(true).open(path).map_err(io(path))?;
    f.lock().map_err(io(path))?;
    Ok(f)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProviderError + '_ {
    move |source| ProviderError::Io { context: format!("{}", path.display()), source }
}
