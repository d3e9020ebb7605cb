//! A box's power: start (and wake on connect), stop, destroy, and the
//! wait for a state in between; the hostnames follow.

use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use super::bring_up::Snapshots;
use super::data::DataOnDestroy;
use super::{Context, LifecycleError};
use crate::laptop::hosts::{self, Pointed};
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::poll::{self, Backoff};
use crate::progress::step;
use crate::provider::{BoxInfo, BoxState};
use crate::ssh::known_hosts;
use crate::stack::services;
use crate::stack::up::UpReport;

/// EC2 usually has an instance running within a minute; large or
/// capacity-constrained types can take several.
pub(super) const RUNNING_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long a wake waits for the stack to become healthy before it runs
/// the command anyway (saying which programs are not): as `start`'s
/// default `--health-timeout`.
const WAKE_HEALTH_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Asking the provider about a box: fast first (local boxes and moto answer
/// in milliseconds), backing off to stay far below EC2's API rate limits.
pub(super) const POLL: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
/// EC2 is eventually consistent: an instance just launched may be unknown
/// to DescribeInstances for a while ("Eventual consistency in the Amazon
/// EC2 API": a resource just created may not be visible to the next
/// describe). A wait asks again for this long before it believes the box
/// is gone.
const UNSEEN_GRACE: Duration = Duration::from_secs(2 * 60);

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

impl Context {
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
    pub(super) async fn power_on(&self, mut info: BoxInfo, progress: Option<&ProgressBar>) -> Result<BoxInfo, LifecycleError> {
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

    pub async fn destroy(&self, name: &BoxName, data: DataOnDestroy, progress: Option<&ProgressBar>) -> Result<(BoxInfo, Option<Pointed>), LifecycleError> {
        let info = self.find(name).await?;
        step(progress, format!("destroying {}", info.id));
        match data {
            DataOnDestroy::Keep => self.provider.destroy(&info.id).await?,
            DataOnDestroy::Purge => self.provider.destroy_with_data(&info.id).await?,
        }
        // A create of it interrupted before the box was listed kept its
        // launch's nonce: the next box of the name launches anew.
        crate::laptop::launches::done(&self.paths, &self.owner, name);
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

    /// Polls the box until `done`. If the box is terminated meanwhile
    /// because a concurrent `create` kept another instance of this name,
    /// follows that one.
    pub(super) async fn wait(
        &self,
        info: &BoxInfo,
        what: &'static str,
        timeout: Duration,
        progress: Option<&ProgressBar>,
        done: impl Fn(&BoxInfo) -> bool,
    ) -> Result<BoxInfo, LifecycleError> {
        let mut current = info.clone();
        let mut first = true;
        // Only a box launched just now may be unknown to the API yet.
        let just_launched = info.launched_at.is_some_and(|at| chrono::Utc::now() - at < chrono::Duration::from_std(UNSEEN_GRACE).unwrap_or_default());
        let started = std::time::Instant::now();
        let gone = |b: &BoxInfo| LifecycleError::Gone { name: b.name.clone(), id: b.id.clone(), what, state: b.state.as_str() };
        let found = poll::until(timeout, POLL, async || {
            // The first round trusts what the caller knew, unless that
            // already says done: then the API is asked once, so a box
            // found done is one the API knows (a launch's own answer may
            // say running before DescribeInstances knows the instance).
            if !std::mem::take(&mut first) || done(&current) {
                if let Some(p) = progress {
                    p.tick();
                }
                current = match self.provider.describe(&current.id).await {
                    Ok(found) => found,
                    Err(crate::provider::ProviderError::NotFound { .. }) if just_launched && started.elapsed() < UNSEEN_GRACE => {
                        tracing::debug!("{} is not visible to the API yet; asking again", current.id);
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                };
            }
            while !done(&current) && !current.state.is_live() {
                let name: BoxName = current.name.parse().map_err(|_| gone(&current))?;
                match self.provider.find(&self.owner, &name).await? {
                    Some(other) if other.id != current.id => current = other,
                    _ => return Err(gone(&current)),
                }
            }
            Ok(done(&current).then(|| current.clone()))
        })
        .await?;
        found.ok_or_else(|| LifecycleError::Timeout {
            name: current.name.clone(),
            id: current.id.clone(),
            what,
            waited: timeout,
            state: current.state.as_str(),
        })
    }
}
