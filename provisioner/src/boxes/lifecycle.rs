//! `create` and friends: the steps that turn "a name" into "a box I can SSH
//! into with a pinned key", each idempotent, so re-running `create` on a
//! half-made box finishes it.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::time::Instant;

use super::access::{public_key_path, read_public_key};
use crate::idle::policy::{self, Seen, Verdict};
use crate::laptop::hosts::{self, HostsAgent, Pointed};
use crate::laptop::paths::Paths;
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::{IdlePolicy, LoadedManifest};
use crate::progress::step;
use crate::provider::{BoxInfo, BoxState, LaunchSpec, Provider, ProviderError};
use crate::ssh::known_hosts::{self, KnownHosts, PinError, Pinned};
use crate::ssh::remote::RemoteError;
use crate::ssh::ssh_config::SshConfigError;
use crate::stack::seed::hash_cache::HashCache;
use crate::stack::seed::{self, SeedError, SeedReport, Snapshot};
use crate::stack::services;
use crate::stack::shell::{BoxShell, ShellError};
use crate::stack::up::{self, UpReport};

/// EC2 usually has an instance running within a minute; large or
/// capacity-constrained types can take several.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The image publishes its host key early in first boot, 1-3 minutes on
/// EC2; generous so a slow boot is not reported as a failure.
const HOST_KEY_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// sshd may start a little after the key is published.
pub(super) const SSH_READY_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// How long a wake waits for the stack to become healthy before it runs
/// the command anyway (saying which programs are not): as `start`'s
/// default `--health-timeout`.
const WAKE_HEALTH_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Rounds of "wait, pin, connect" when concurrent creates keep replacing
/// the survivor; each round only repeats if another create won.
const SETTLE_ROUNDS: usize = 3;
/// Polling starts fast (local boxes and moto answer in milliseconds) and
/// backs off to stay far below EC2's API rate limits.
pub(super) const POLL_FIRST: Duration = Duration::from_millis(50);
pub(super) const POLL_MAX: Duration = Duration::from_secs(5);

/// Each store's snapshot, by store name (None: the store has no seed).
pub type Snapshots = std::collections::BTreeMap<String, Option<Snapshot>>;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Boxed: russh's errors are large and every other variant is small.
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error(transparent)]
    SshConfig(#[from] SshConfigError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error("no box named {name} for owner {owner} (destroyed, or never created); create it with `workstation create {name}`, or see your boxes with `workstation list`")]
    UnknownBox { owner: String, name: String },
    #[error("{owner} has no box named {name}; `workstation list --all` shows every owner's boxes, and `--box NAME` picks one of {owner}'s")]
    UnknownShared { owner: String, name: String },
    #[error("box {name} ({id}) was not {what} after {waited:?} (state: {state}); check it in the EC2 console or run `workstation status {name}`")]
    Timeout { name: String, id: String, what: &'static str, waited: Duration, state: &'static str },
    #[error("box {name} ({id}) has not published its host key yet; it does so at first boot (`workstation create {name}` waits for it)")]
    NoHostKey { name: String, id: String },
    #[error("{owner}'s box {name} is {state}, not running; pass --start to start it (if {owner} lets colleagues start it: `workstation share --allow-start`), or ask {owner} to run `workstation start {name}`")]
    NotRunning { owner: String, name: String, state: &'static str },
    #[error("{owner} has not let colleagues start box {name}; ask {owner} to run `workstation share --allow-start --box {name}` (or to start it), or ask the platform team")]
    NotShareable { owner: String, name: String },
    #[error("{refused}; the box's sshd says: {why}")]
    KeyRefused { refused: Box<RemoteError>, why: String },
    #[error("box {name} is {state}; start it with `workstation start {name}`")]
    Stopped { name: String, state: &'static str },
    #[error(transparent)]
    Hosts(#[from] hosts::ClientError),
    #[error("box {name} ({id}) has no address to connect to")]
    NoAddress { name: String, id: String },
    #[error("box {name} ({id}) disappeared while {what} (state: {state})")]
    Gone { name: String, id: String, what: &'static str, state: &'static str },
    #[error("--for {} is longer than idle.max_keep ({}); ask for less, or raise idle.max_keep in workstation.toml", humantime::format_duration(*.asked), humantime::format_duration(*.max))]
    KeepTooLong { asked: Duration, max: Duration },
    #[error("cannot read your SSH public key {path}; create a key with `ssh-keygen -t ed25519` or set ssh_key in ~/.config/workstation/config.toml")]
    PublicKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<RemoteError> for LifecycleError {
    fn from(e: RemoteError) -> Self {
        LifecycleError::Remote(Box::new(e))
    }
}

/// Everything the lifecycle needs, built once by the CLI.
pub struct Context {
    pub provider: Box<dyn Provider>,
    pub owner: Owner,
    pub paths: Paths,
    pub known_hosts: KnownHosts,
    pub ssh_user: String,
    pub identity: PathBuf,
    /// For seeds stored in S3 (only built when the manifest has one).
    pub s3: Option<aws_sdk_s3::Client>,
    /// Local seeds may be read from outside the manifest's directory
    /// (`--allow-outside`); by default a manifest from a repository cannot
    /// send the laptop's other files to a box.
    pub seeds_outside: bool,
    /// The laptop's hosts agent, which points hostnames at boxes.
    pub hosts: HostsAgent,
    /// This binary and the flags that select this provider: the generated
    /// SSH config's ProxyCommand runs `<proxy...> proxy NAME`.
    pub proxy: Vec<String>,
}

/// What `start` did.
#[derive(Debug, Serialize)]
pub struct Started {
    #[serde(rename = "box")]
    pub info: BoxInfo,
    /// The stack, when a manifest was at hand.
    pub up: Option<UpReport>,
    pub hostnames: Option<Pointed>,
    /// Without the box's manifest: programs supervisord was still starting
    /// when the wait ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub starting: Vec<String>,
    /// A wake's bring-up that failed (the wake goes on without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl Started {
    pub fn healthy(&self) -> bool {
        self.up.as_ref().is_none_or(|u| u.healthy) && self.starting.is_empty() && self.failed.is_none()
    }
}

/// What a wake found or did. One is made per command: its size is no cost.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Woken {
    /// Found running: nothing was done.
    Running(BoxInfo),
    /// Found stopped and started by this wake.
    Started(Started),
}

impl Woken {
    pub fn into_info(self) -> BoxInfo {
        match self {
            Woken::Running(info) => info,
            Woken::Started(started) => started.info,
        }
    }
}

/// `workstation status`: the box and what the laptop knows about it.
#[derive(Debug, Serialize)]
pub struct BoxStatus {
    #[serde(flatten)]
    pub info: BoxInfo,
    pub host_key_pinned: bool,
    /// Whether the box was created from this manifest (None: unknown).
    pub manifest_current: Option<bool>,
    /// When the idle policy would stop it, and why (running aws boxes).
    pub idle: Option<Verdict>,
}

#[derive(Debug, Serialize)]
pub struct CreateReport {
    #[serde(rename = "box")]
    pub info: BoxInfo,
    /// False when the box already existed (create resumed or did nothing).
    pub created: bool,
    /// True when an existing stopped box was started.
    pub started: bool,
    pub terminated_duplicates: Vec<String>,
    pub host_key_fingerprint: String,
    pub host_key_newly_pinned: bool,
    /// Services, seeds and health on the box.
    pub up: UpReport,
    /// The manifest's hostnames, pointed at the box.
    pub hostnames: Pointed,
}

/// A box `create` launched and can reach (see [`Context::launch_ready`]).
pub struct Ready {
    pub info: BoxInfo,
    /// The SSH session that found the box ready (it does the bring-up too).
    pub shell: BoxShell,
    pub host_key_fingerprint: String,
    pub host_key_newly_pinned: bool,
    pub created: bool,
    pub started: bool,
    pub terminated_duplicates: Vec<String>,
}

impl Context {
    pub async fn find(&self, name: &BoxName) -> Result<BoxInfo, LifecycleError> {
        self.provider.find(&self.owner, name).await?.ok_or_else(|| LifecycleError::UnknownBox { owner: self.owner.to_string(), name: name.to_string() })
    }

    /// The box `name`, whether its key is pinned, whether it runs this
    /// manifest, and when the idle policy would stop it.
    pub async fn status(&self, name: &BoxName, manifest: Option<&LoadedManifest>) -> Result<BoxStatus, LifecycleError> {
        let info = self.find(name).await?;
        let host_key_pinned = self.known_hosts.get(&known_hosts::alias(&info.id))?.is_some();
        let policy = manifest.map(|m| m.manifest.idle.clone()).unwrap_or_default();
        // Both providers record activity and keeps where the box's own
        // idle check reads them (EC2 tags, a local box's record).
        let idle = (info.state == BoxState::Running).then(|| policy::decide(&policy, &Seen::of(&info), Utc::now()));
        let manifest_current = manifest.zip(info.manifest_hash.as_ref()).map(|(m, h)| &m.hash == h);
        Ok(BoxStatus { info, host_key_pinned, manifest_current, idle })
    }

    /// Creates (or finishes) the owner's box `name` with the user's key.
    pub async fn create_box(
        &self,
        name: &BoxName,
        manifest: &LoadedManifest,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<CreateReport, LifecycleError> {
        let public_key = read_public_key(&public_key_path(&self.identity))?;
        let spec = LaunchSpec { owner: &self.owner, name, manifest, public_key: &public_key, preview: None };
        self.create(&spec, health_timeout, progress).await
    }

    pub async fn create(&self, spec: &LaunchSpec<'_>, health_timeout: Duration, progress: Option<&ProgressBar>) -> Result<CreateReport, LifecycleError> {
        // Everything that can fail here fails before a box is billed.
        step(progress, "checking the seed snapshots".into());
        let snapshots = self.snapshots(spec.manifest).await?;
        let ready = self.launch_ready(spec, progress).await?;
        self.finish_create(ready, spec.manifest, &snapshots, health_timeout, progress).await
    }

    /// The first half of `create`: the box launched (or found, and started
    /// if stopped), running, its host key pinned, SSH answering, and the
    /// SSH config written. `preview up` puts the tree on it before the
    /// second half ([`Context::finish_create`]) brings the stack up.
    pub async fn launch_ready(&self, spec: &LaunchSpec<'_>, progress: Option<&ProgressBar>) -> Result<Ready, LifecycleError> {
        step(progress, format!("launching {}", spec.name));
        let launched = self.provider.launch(spec).await?;
        let mut info = launched.info;

        let mut started = false;
        if matches!(info.state, BoxState::Stopping | BoxState::Stopped) {
            step(progress, format!("starting stopped box {}", info.id));
            info = self.wait(&info, "stopped", RUNNING_TIMEOUT, progress, |i| i.state == BoxState::Stopped).await?;
            self.provider.start(&info.id).await?;
            started = true;
        }

        // Concurrent creates against an API that does not deduplicate may
        // terminate this instance in favour of an older one after we
        // started waiting: check at the end and follow the survivor.
        let mut pinned_key;
        let mut session;
        let mut rounds = 0;
        loop {
            step(progress, format!("waiting for {} to run", info.id));
            info = self.wait(&info, "running", RUNNING_TIMEOUT, progress, |i| i.state == BoxState::Running).await?;

            step(progress, format!("waiting for {} to publish its SSH host key", info.id));
            info = self.wait(&info, "publishing its host key", HOST_KEY_TIMEOUT, progress, |i| i.host_key.is_some()).await?;

            let key = known_hosts::parse_key(info.host_key.as_deref().unwrap_or_default())?;
            let outcome = self.known_hosts.pin(&known_hosts::alias(&info.id), &info.name, &key, false)?;
            pinned_key = (key, outcome);

            step(progress, format!("connecting to {} over SSH", info.id));
            session = self.wait_ssh(&info).await?;
            rounds += 1;
            match self.provider.find(spec.owner, spec.name).await? {
                Some(survivor) if survivor.id != info.id && rounds < SETTLE_ROUNDS => {
                    session.close().await;
                    info = survivor;
                }
                _ => break,
            }
        }
        let (key, pinned) = pinned_key;
        self.write_ssh_config(true).await?;
        let shell = BoxShell::probe(session, &info.name).await?;
        Ok(Ready {
            info,
            shell,
            host_key_fingerprint: known_hosts::fingerprint(&key),
            host_key_newly_pinned: pinned == Pinned::New,
            created: launched.created,
            started,
            terminated_duplicates: launched.terminated_duplicates,
        })
    }

    /// The second half of `create`: the manifest's stack up on the ready
    /// box, and its hostnames pointed at it.
    pub async fn finish_create(
        &self,
        ready: Ready,
        manifest: &LoadedManifest,
        snapshots: &Snapshots,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<CreateReport, LifecycleError> {
        let up = self.up_on(&ready.info, &ready.shell, manifest, snapshots, health_timeout, progress).await;
        ready.shell.close().await;
        let up = up?;
        step(progress, "pointing hostnames at the box".into());
        let hostnames = self.point_hostnames(&ready.info, &manifest.manifest.hostnames).await;

        Ok(CreateReport {
            up,
            hostnames,
            host_key_fingerprint: ready.host_key_fingerprint,
            host_key_newly_pinned: ready.host_key_newly_pinned,
            info: ready.info,
            created: ready.created,
            started: ready.started,
            terminated_duplicates: ready.terminated_duplicates,
        })
    }

    /// Makes the box run the manifest's stack (see [`up::up`]).
    pub async fn up(
        &self,
        info: &BoxInfo,
        manifest: &LoadedManifest,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<UpReport, LifecycleError> {
        step(progress, "resolving seed snapshots".into());
        let snapshots = self.snapshots(manifest).await?;
        self.up_with(info, manifest, &snapshots, health_timeout, progress).await
    }

    async fn up_with(
        &self,
        info: &BoxInfo,
        manifest: &LoadedManifest,
        snapshots: &Snapshots,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<UpReport, LifecycleError> {
        step(progress, format!("connecting to {} over SSH", info.id));
        self.on_box(info, async |shell| self.up_on(info, shell, manifest, snapshots, health_timeout, progress).await).await
    }

    /// [`up::up`] on the box's shell, recorded on the box (the
    /// `workstation:bring-up` tag), under the bring-up lock so concurrent
    /// runs record in turn: unfinished from the start until it ends healthy,
    /// then finished with the manifest's hash, so a bring-up interrupted or
    /// failed shows in `status`. The record is best effort: a box whose
    /// stack is up is not reported broken because a tag could not be
    /// written.
    async fn up_on(
        &self,
        info: &BoxInfo,
        shell: &BoxShell,
        manifest: &LoadedManifest,
        snapshots: &Snapshots,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<UpReport, LifecycleError> {
        let record = async |finished: Option<&str>| {
            if let Err(e) = self.provider.record_bring_up(&info.id, finished).await {
                tracing::warn!("box {}: the bring-up could not be recorded ({e}); `workstation status` may not say how it ended", info.name);
            }
        };
        step(progress, "waiting for the box's bring-up lock".into());
        let report = shell
            .locked(async |lock| {
                record(None).await;
                let report = up::up(shell, lock, &manifest.manifest, snapshots, health_timeout, progress).await?;
                if report.healthy {
                    record(Some(&manifest.hash)).await;
                }
                Ok::<_, ShellError>(report)
            })
            .await?;
        Ok(report)
    }

    /// Loads the manifest's stores (or `only` that one) from their
    /// snapshots under the bring-up lock; `reset` loads loaded ones again.
    pub async fn seed(&self, info: &BoxInfo, manifest: &LoadedManifest, only: Option<&str>, reset: bool) -> Result<Vec<SeedReport>, LifecycleError> {
        let snapshots = self.snapshots(manifest).await?;
        self.on_box(info, async |shell| {
            let reports =
                shell.locked(async |lock| Ok::<_, ShellError>(seed::seed_all(shell, lock, &manifest.manifest.stores, only, &snapshots, reset).await)).await?;
            Ok(reports)
        })
        .await
    }

    /// Every store's snapshot: checked (local; hashed while it loads unless
    /// its hash is remembered) or looked up and presigned (S3).
    pub async fn snapshots(&self, manifest: &LoadedManifest) -> Result<Snapshots, LifecycleError> {
        let dir = manifest.path.parent().unwrap_or(std::path::Path::new("."));
        let hashes = std::sync::Arc::new(std::sync::Mutex::new(HashCache::load(self.paths.state_dir.join("seed-hashes.json"))));
        let mut out = std::collections::BTreeMap::new();
        for (name, store) in &manifest.manifest.stores {
            out.insert(name.clone(), Snapshot::resolve(name, store, dir, self.seeds_outside, self.s3.as_ref(), &hashes).await?);
        }
        Ok(out)
    }

    /// Starts a stopped box and waits until SSH answers with its pinned key.
    pub async fn start(&self, name: &BoxName, progress: Option<&ProgressBar>) -> Result<BoxInfo, LifecycleError> {
        let info = self.find(name).await?;
        self.start_found(info, progress).await
    }

    /// Wake on connect: the box `name`, running, as `start` leaves it. A
    /// stopped one (by its idle check, `reap` or `stop`) is started and
    /// waited for until SSH answers with the pinned key; then, with a
    /// manifest, its stack is brought up and waited for until healthy and
    /// the hostnames pointed at it again, so the command that woke it finds
    /// its services answering. Without one (plain `ssh` from another
    /// directory), supervisord's programs are waited for until none is
    /// still starting. Concurrent wakes start it once: EC2's StartInstances
    /// is idempotent, a local box boots under its lock, and bring-up runs
    /// under the box's bring-up lock.
    pub async fn wake(&self, name: &BoxName, manifest: Option<&LoadedManifest>, progress: Option<&ProgressBar>) -> Result<Woken, LifecycleError> {
        let info = self.find(name).await?;
        if info.state == BoxState::Running {
            return Ok(Woken::Running(info));
        }
        step(progress, format!("box {name} is {}: starting it", info.state.as_str()));
        // Only the manifest the box runs (as its last bring-up recorded it):
        // a ProxyCommand runs wherever ssh was started, and another
        // project's manifest is not this box's.
        let manifest = match manifest {
            Some(m) if info.manifest_hash.as_deref() != Some(m.hash.as_str()) => {
                tracing::warn!(
                    "box {name} runs another manifest than {}: waking it without bringing that one up (`workstation up {name}` applies it)",
                    m.path.display()
                );
                None
            }
            other => other,
        };
        let info = self.start_found(info, progress).await?;
        let mut failed = None;
        if let Some(m) = manifest {
            // A bring-up that fails does not keep the engineer out of the
            // box: it is reported, and the command runs (it may be the one
            // to find out why).
            match self.snapshots(m).await {
                Ok(s) => match self.stack_back(info.clone(), m, &s, WAKE_HEALTH_TIMEOUT, progress).await {
                    Ok(started) => return Ok(Woken::Started(started)),
                    Err(e) => failed = Some(e.to_string()),
                },
                Err(e) => failed = Some(e.to_string()),
            }
        }
        step(progress, "waiting for supervisord's programs to start".into());
        let starting = self.on_box(&info, async |shell| Ok::<_, LifecycleError>(services::settle(shell, WAKE_HEALTH_TIMEOUT).await?)).await?;
        // A started box usually has a new address: the names follow it
        // even when its stack did not come up.
        let hostnames = match manifest {
            Some(m) => Some(self.point_hostnames(&info, &m.manifest.hostnames).await),
            None => None,
        };
        Ok(Woken::Started(Started { info, up: None, hostnames, starting, failed }))
    }

    async fn start_found(&self, info: BoxInfo, progress: Option<&ProgressBar>) -> Result<BoxInfo, LifecycleError> {
        let info = self.power_on(info, progress).await?;
        step(progress, format!("connecting to {} over SSH", info.id));
        self.wait_ssh(&info).await?.close().await;
        self.write_ssh_config(false).await?;
        Ok(info)
    }

    /// `start` with the stack: the box running and answering SSH, then,
    /// with a manifest, its stack brought up and the hostnames pointed at
    /// it again (a started box usually has a new address).
    pub async fn start_with_stack(
        &self,
        name: &BoxName,
        manifest: Option<&LoadedManifest>,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<Started, LifecycleError> {
        // A missing seed fails before the box starts billing.
        let snapshots = match manifest {
            Some(m) => Some(self.snapshots(m).await?),
            None => None,
        };
        let info = self.start(name, progress).await?;
        match (manifest, &snapshots) {
            (Some(m), Some(s)) => self.stack_back(info, m, s, health_timeout, progress).await,
            _ => Ok(Started { info, up: None, hostnames: None, starting: Vec::new(), failed: None }),
        }
    }

    /// A started box's stack brought up (waited for until healthy) and the
    /// hostnames pointed at it again (a started box usually has a new
    /// address).
    async fn stack_back(
        &self,
        info: BoxInfo,
        manifest: &LoadedManifest,
        snapshots: &Snapshots,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<Started, LifecycleError> {
        let up = self.up_with(&info, manifest, snapshots, health_timeout, progress).await?;
        step(progress, "pointing hostnames at the box".into());
        let hostnames = self.point_hostnames(&info, &manifest.manifest.hostnames).await;
        Ok(Started { info, up: Some(up), hostnames: Some(hostnames), starting: Vec::new(), failed: None })
    }

    /// The box running: a stopped (or stopping) one started once it has
    /// stopped, then waited for until it runs.
    async fn power_on(&self, mut info: BoxInfo, progress: Option<&ProgressBar>) -> Result<BoxInfo, LifecycleError> {
        if info.state != BoxState::Running {
            info = self.wait(&info, "stopped", RUNNING_TIMEOUT, progress, |i| matches!(i.state, BoxState::Stopped | BoxState::Running)).await?;
            match info.owner == self.owner.as_str() {
                true => step(progress, format!("starting {}", info.id)),
                false => step(progress, format!("starting {}'s box {} ({})", info.owner, info.name, info.id)),
            }
            self.provider.start(&info.id).await?;
            info = self.wait(&info, "running", RUNNING_TIMEOUT, progress, |i| i.state == BoxState::Running).await?;
        }
        Ok(info)
    }

    /// Stops box `name`; the hostnames pointed at it move to another box of
    /// yours that runs, or are cleared (see [`Context::move_hostnames_off`]).
    pub async fn stop(&self, name: &BoxName, progress: Option<&ProgressBar>) -> Result<(BoxInfo, Option<Pointed>), LifecycleError> {
        let info = self.find(name).await?;
        if info.state != BoxState::Stopped {
            step(progress, format!("stopping {}", info.id));
            self.provider.stop(&info.id, info.hibernate).await?;
        }
        let stopped = self.wait(&info, "stopped", RUNNING_TIMEOUT, progress, |i| i.state == BoxState::Stopped).await?;
        // A stopped box gives up its public address, which someone else's
        // instance may get next: the laptop must not keep sending there.
        let moved = self.move_hostnames_off(&stopped).await;
        Ok((stopped, moved))
    }

    pub async fn destroy(&self, name: &BoxName, progress: Option<&ProgressBar>) -> Result<(BoxInfo, Option<Pointed>), LifecycleError> {
        let info = self.find(name).await?;
        step(progress, format!("destroying {}", info.id));
        self.provider.destroy(&info.id).await?;
        self.known_hosts.forget(&known_hosts::alias(&info.id))?;
        self.write_ssh_config(false).await?;
        let moved = self.move_hostnames_off(&info).await;
        Ok((info, moved))
    }

    /// Clears the hostnames pointed at this box of yours (an absent agent
    /// has nothing to clear) and, when another box of yours runs the same
    /// manifest, points them at it (your default box first): the laptop is
    /// not left with no target while such a box is up. None: nothing was
    /// pointed at this box.
    async fn move_hostnames_off(&self, info: &BoxInfo) -> Option<Pointed> {
        let names = match self.hosts.unpoint(&hosts::label(self.owner.as_str(), &info.name)).await {
            Ok(names) if !names.is_empty() => names,
            Ok(_) => return None,
            Err(e) => {
                tracing::debug!("hostnames not cleared: {e}");
                return None;
            }
        };
        let mut others: Vec<BoxInfo> = match self.provider.list(Some(&self.owner)).await {
            // Only a box of the same manifest serves these names.
            Ok(boxes) => boxes
                .into_iter()
                .filter(|b| b.id != info.id && b.state == BoxState::Running && b.preview.is_none() && b.manifest_hash == info.manifest_hash)
                .collect(),
            Err(_) => Vec::new(),
        };
        others.sort_by_key(|b| (b.name != BoxName::default().as_str(), b.name.clone()));
        Some(match others.first() {
            Some(next) => self.point_hostnames(next, &names).await,
            None => Pointed::Skipped { reason: format!("{} no longer point anywhere: no other box of yours made from this manifest runs", names.join(", ")) },
        })
    }

    /// Points the manifest's hostnames at one of your boxes (create, start,
    /// `share --off`); reported, never fatal.
    pub async fn point_hostnames(&self, info: &BoxInfo, names: &[String]) -> Pointed {
        let label = hosts::label(self.owner.as_str(), &info.name);
        self.hosts.point_best_effort(names, info.address, &label).await
    }

    /// Holds box `name` up for `duration` (at most the policy's
    /// `max_keep`): the idle check and `reap` leave it running until then.
    pub async fn keep(&self, name: &BoxName, duration: Duration, policy: &IdlePolicy) -> Result<(BoxInfo, DateTime<Utc>), LifecycleError> {
        if duration > policy.max_keep {
            return Err(LifecycleError::KeepTooLong { asked: duration, max: policy.max_keep });
        }
        let info = self.find(name).await?;
        // A stopped box does not stop itself: a keep would only hold it
        // up after a later start, which is not what was asked.
        if info.state != BoxState::Running {
            return Err(LifecycleError::Stopped { name: info.name.clone(), state: info.state.as_str() });
        }
        let until = Utc::now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        self.provider.keep_until(&info.id, until).await?;
        Ok((info, until))
    }

    /// Someone's running box, to share. A stopped one is an error that says
    /// so (pointing at it would just time out); with `start`, it is started,
    /// if its owner lets colleagues start it (the `workstation:shareable`
    /// tag, which the engineers' IAM policy checks too).
    pub async fn shared_box(&self, owner: &Owner, name: &BoxName, start: bool, progress: Option<&ProgressBar>) -> Result<BoxInfo, LifecycleError> {
        let mut info = self.provider.find(owner, name).await?.ok_or_else(|| match owner == &self.owner {
            true => LifecycleError::UnknownBox { owner: owner.to_string(), name: name.to_string() },
            false => LifecycleError::UnknownShared { owner: owner.to_string(), name: name.to_string() },
        })?;
        if info.state != BoxState::Running && start {
            if !info.shareable && owner != &self.owner {
                return Err(LifecycleError::NotShareable { owner: owner.to_string(), name: info.name });
            }
            // Running is enough: the hostnames go to its address, and its
            // host key is not ours to pin.
            info = self.power_on(info, progress).await?;
            // `wait` follows a replaced box among *your* boxes: never point
            // a colleague's label at one of them.
            if info.owner != owner.as_str() {
                return Err(LifecycleError::Gone { name: name.to_string(), id: info.id, what: "starting", state: "terminated" });
            }
        }
        if info.state != BoxState::Running {
            return Err(LifecycleError::NotRunning { owner: owner.to_string(), name: info.name, state: info.state.as_str() });
        }
        if info.address.is_none() {
            return Err(LifecycleError::NoAddress { name: info.name, id: info.id });
        }
        Ok(info)
    }

    /// Polls the box until `done`. If the box is terminated meanwhile
    /// because a concurrent `create` kept another instance of this name,
    /// follows that one.
    async fn wait(
        &self,
        info: &BoxInfo,
        what: &'static str,
        timeout: Duration,
        progress: Option<&ProgressBar>,
        done: impl Fn(&BoxInfo) -> bool,
    ) -> Result<BoxInfo, LifecycleError> {
        let started = Instant::now();
        let mut current = info.clone();
        let mut pause = POLL_FIRST;
        loop {
            if done(&current) {
                return Ok(current);
            }
            if !current.state.is_live() {
                let name: BoxName = current.name.parse().map_err(|_| LifecycleError::Gone {
                    name: current.name.clone(),
                    id: current.id.clone(),
                    what,
                    state: current.state.as_str(),
                })?;
                match self.provider.find(&self.owner, &name).await? {
                    Some(other) if other.id != current.id => {
                        current = other;
                        continue;
                    }
                    _ => return Err(LifecycleError::Gone { name: current.name, id: current.id, what, state: current.state.as_str() }),
                }
            }
            if started.elapsed() >= timeout {
                return Err(LifecycleError::Timeout {
                    name: current.name.clone(),
                    id: current.id.clone(),
                    what,
                    waited: timeout,
                    state: current.state.as_str(),
                });
            }
            if let Some(p) = progress {
                p.tick();
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
            current = self.provider.describe(&current.id).await?;
        }
    }
}
