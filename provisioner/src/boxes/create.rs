//! `create`: the steps that turn "a name" into "a box I can SSH into with
//! a pinned key and its stack up", each idempotent, so re-running `create`
//! on a half-made box finishes it.

use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use super::access::{public_key_path, read_public_key};
use super::bring_up::Snapshots;
use super::data::DataOnCreate;
use super::dotfiles::{DotfilesReport, Source};
use super::drift::Drift;
use super::power::RUNNING_TIMEOUT;
use super::{Context, LifecycleError};
use crate::laptop::hosts::Pointed;
use crate::laptop::launches;
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::progress::step;
use crate::provider::{BoxInfo, BoxState, LaunchSpec};
use crate::ssh::known_hosts::{self, Pinned};
use crate::stack::shell::BoxShell;
use crate::stack::up::UpReport;

/// The image publishes its host key early in first boot, 1-3 minutes on
/// EC2; generous so a slow boot is not reported as a failure.
const HOST_KEY_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Rounds of "wait, pin, connect" when concurrent creates keep replacing
/// the survivor; each round only repeats if another create won.
const SETTLE_ROUNDS: usize = 3;

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
    /// The engineer's dotfiles, when the settings name them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dotfiles: Option<DotfilesReport>,
    /// The kept data volume this create reattached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reattached: Option<String>,
    /// An existing box that runs an older image than its line's newest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
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
    /// Installs `dotfiles` on the box `create` or `upgrade` made ready:
    /// a report, never a failure of the verb.
    pub async fn dotfiles_on(&self, info: &BoxInfo, dotfiles: Option<&str>) -> Option<DotfilesReport> {
        let setting = dotfiles?;
        let source = Source::parse(setting);
        Some(match self.install_dotfiles(info, &source).await {
            Ok(done) => done,
            Err(e) => DotfilesReport { source: setting.to_owned(), how: "none", script: None, linked: Vec::new(), ok: false, failure: Some(e.to_string()) },
        })
    }

    /// Creates (or finishes) the owner's box `name` with the user's key,
    /// reattaching the name's kept data volume unless told `New`.
    pub async fn create_box(
        &self,
        name: &BoxName,
        manifest: &LoadedManifest,
        data: DataOnCreate,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<CreateReport, LifecycleError> {
        let public_key = read_public_key(&public_key_path(&self.ssh.identity))?;
        let kept = match (data, self.provider.find(&self.owner, name).await?) {
            (DataOnCreate::Reattach, None) => self.kept_volume(name).await?,
            _ => None,
        };
        if let Some(v) = &kept {
            step(progress, format!("reattaching kept data volume {} ({} GiB)", v.id, v.size_gib));
        }
        let spec = LaunchSpec { owner: &self.owner, name, manifest, public_key: &public_key, preview: None, team: None, data: kept.as_ref(), attempt: None };
        let mut report = self.create(&spec, health_timeout, progress).await?;
        report.reattached = kept.filter(|_| report.created).map(|v| v.id);
        if !report.created {
            report.drift = self.drift(&report.info, Some(manifest)).await;
        }
        Ok(report)
    }

    pub async fn create(&self, spec: &LaunchSpec<'_>, health_timeout: Duration, progress: Option<&ProgressBar>) -> Result<CreateReport, LifecycleError> {
        // Everything that can fail here fails before a box is billed.
        step(progress, "checking the seed snapshots".into());
        let snapshots = self.snapshots(spec.manifest).await?;
        let ready = self.launch_ready(spec, progress).await?;
        self.finish_create(ready, spec.manifest, &snapshots, health_timeout, progress).await
    }

    /// box.max_boxes_per_owner: a new box beyond it is refused before
    /// anything is launched (an existing one is still finished or started).
    /// Previews have their own limit (`preview up --max`).
    async fn check_box_limit(&self, spec: &LaunchSpec<'_>) -> Result<(), LifecycleError> {
        let Some(max) = spec.manifest.manifest.machine.max_boxes_per_owner.filter(|_| spec.preview.is_none()) else {
            return Ok(());
        };
        let boxes = self.provider.list(Some(spec.owner)).await?;
        let mut mine: Vec<&str> = boxes.iter().filter(|b| b.preview.is_none()).map(|b| b.name.as_str()).collect();
        mine.sort_unstable();
        if mine.contains(&spec.name.as_str()) || mine.len() < max as usize {
            return Ok(());
        }
        Err(LifecycleError::TooManyBoxes { owner: spec.owner.to_string(), count: mine.len(), max, boxes: mine.join(", ") })
    }

    /// The first half of `create`: the box launched (or found, and started
    /// if stopped), running, its host key pinned, SSH answering, and the
    /// SSH config written. `preview up` puts the tree on it before the
    /// second half ([`Context::finish_create`]) brings the stack up.
    pub async fn launch_ready(&self, spec: &LaunchSpec<'_>, progress: Option<&ProgressBar>) -> Result<Ready, LifecycleError> {
        self.check_box_limit(spec).await?;
        step(progress, format!("launching {}", spec.name));
        let nonce = launches::nonce(&self.paths, spec.owner, spec.name)
            .map_err(|source| LifecycleError::LaunchState { dir: self.paths.state_dir.join("launches"), source })?;
        let launched = self.provider.launch(&LaunchSpec { attempt: Some(&nonce), ..*spec }).await?;
        let mut info = launched.info;

        let mut started = false;
        if matches!(info.state, BoxState::Stopping | BoxState::Stopped) {
            step(progress, format!("starting stopped box {}", info.id));
            info = self.wait(&info, "stopped", RUNNING_TIMEOUT, progress, |i| i.state == BoxState::Stopped).await?;
            self.provider.start(&info.id).await?;
            started = true;
        }

        // Concurrent creates (another machine's, with its own token) may
        // terminate this instance in favour of an older one after we
        // started waiting, and one the launch could not list yet (EC2's
        // eventual consistency) shows by now: settle at the end and follow
        // the survivor.
        let mut pinned_key;
        let mut session;
        let mut rounds = 0;
        let mut terminated = launched.terminated_duplicates;
        let listed = loop {
            step(progress, format!("waiting for {} to run", info.id));
            info = self.wait(&info, "running", RUNNING_TIMEOUT, progress, |i| i.state == BoxState::Running).await?;
            // A kept volume is attached once the instance runs; the image
            // waits for it before its services start.
            self.provider.attach_data(&info).await?;

            step(progress, format!("waiting for {} to publish its SSH host key", info.id));
            info = self.wait(&info, "publishing its host key", HOST_KEY_TIMEOUT, progress, |i| i.host_key.is_some()).await?;

            let key = known_hosts::parse_key(info.host_key.as_deref().unwrap_or_default())?;
            let outcome = self.known_hosts.pin(&known_hosts::alias(&info.id), &info.name, &key, false)?;
            pinned_key = (key, outcome);

            step(progress, format!("connecting to {} over SSH", info.id));
            session = self.wait_ssh(&info).await?;
            rounds += 1;
            let (survivor, ended) = self.provider.settle_duplicates(spec.owner, spec.name).await?;
            terminated.extend(ended);
            match survivor {
                Some(survivor) if survivor.id != info.id && rounds < SETTLE_ROUNDS => {
                    session.close().await;
                    info = survivor;
                }
                survivor => break survivor.is_some(),
            }
        };
        // Running and listed by its tags: a re-run finds the box itself.
        if listed {
            launches::done(&self.paths, spec.owner, spec.name);
        }
        let (key, pinned) = pinned_key;
        self.write_ssh_config(true).await?;
        let shell = self.probe(session, &info.name).await?;
        Ok(Ready {
            info,
            shell,
            host_key_fingerprint: known_hosts::fingerprint(&key),
            host_key_newly_pinned: pinned == Pinned::New,
            created: launched.created,
            started,
            terminated_duplicates: terminated,
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
            dotfiles: None,
            reattached: None,
            drift: None,
        })
    }
}
