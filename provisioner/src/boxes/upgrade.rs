//! `upgrade`: the box onto the newest image of its line (or a named one),
//! keeping its data volume. The provider replaces the root
//! ([`crate::provider::Provider::replace_root`]); then the new root's host
//! key is pinned through the same trusted path as `create` (the tag only the
//! box's own role writes, and only once the box proves it holds that key),
//! and the stack comes back up on its data: the seed markers are on the
//! data volume, so nothing is reseeded. Every step can be re-run: an
//! interrupted upgrade is finished by the next.

use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use super::drift::Drift;
use super::{Context, LifecycleError, Snapshots};
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::poll::{self, Backoff};
use crate::progress::step;
use crate::provider::{data, BoxInfo, BoxState, RootReplaced};
use crate::ssh::known_hosts;
use crate::ssh::remote::{RemoteError, Session};
use crate::stack::up::UpReport;

/// The new root publishes its key early in its boot (as at first boot).
const NEW_KEY_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const NEW_KEY_POLL: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

#[derive(Debug, Serialize)]
pub struct UpgradeReport {
    #[serde(rename = "box")]
    pub info: BoxInfo,
    pub root: RootReplaced,
    pub data_volume: String,
    pub host_key_fingerprint: String,
    pub up: UpReport,
    /// The engineer's dotfiles, installed again when the settings name them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dotfiles: Option<super::dotfiles::DotfilesReport>,
}

/// One box of `upgrade --all --dry-run`.
#[derive(Debug, Serialize)]
pub struct Behind {
    #[serde(rename = "box")]
    pub info: BoxInfo,
    pub drift: Drift,
}

impl Context {
    /// Moves box `name` onto `image` (None: the newest its manifest names).
    pub async fn upgrade(
        &self,
        name: &BoxName,
        manifest: &LoadedManifest,
        image: Option<&str>,
        health_timeout: Duration,
        progress: Option<&ProgressBar>,
    ) -> Result<UpgradeReport, LifecycleError> {
        step(progress, "checking the seed snapshots".into());
        let snapshots: Snapshots = self.snapshots(manifest).await?;
        let info = self.find(name).await?;
        // EC2 replaces the root of a running instance only.
        let info = self.power_on(info, progress).await?;
        let data_volume =
            self.provider.attach_data(&info).await?.ok_or_else(|| LifecycleError::NoDataVolume { name: info.name.clone(), id: info.id.clone() })?;
        // The key its tag holds (a new one, after an upgrade interrupted
        // past the replacement), then the data where it must be.
        let (info, session, _) = self.pin_new_root(&info).await?;
        let shell = self.probe(session, &info.name).await?;
        let on_volume = shell.check(&format!("test -f \"$WORKSTATION_BOX_ROOT\"/{}", data::MARKER)).await;
        shell.close().await;
        if !on_volume? {
            return Err(LifecycleError::DataNotOnVolume { name: info.name.clone(), id: info.id.clone() });
        }
        let target = match image {
            Some(id) => Some(id.to_owned()),
            None => self.provider.launch_image(&manifest.manifest.machine).await?,
        };
        step(progress, format!("replacing the root volume of {}{}", info.id, target.as_deref().map(|t| format!(" with {t}")).unwrap_or_default()));
        let root = self.provider.replace_root(&info.id, target.as_deref()).await?;

        step(progress, format!("pinning the host key of {}'s new root", info.name));
        let (info, session, fingerprint) = self.pin_new_root(&info).await?;
        let shell = self.probe(session, &info.name).await?;
        let up = self.up_on(&info, &shell, manifest, &snapshots, health_timeout, progress).await;
        shell.close().await;
        Ok(UpgradeReport { info, root, data_volume, host_key_fingerprint: fingerprint, up: up?, dotfiles: None })
    }

    /// Pins the host key the box publishes in its tag and returns a session
    /// once the box proves it holds that key. Until a new root has
    /// published, the tag still holds the old root's key, which the box no
    /// longer presents: that is waited out, never trusted on first use.
    /// Before the replacement too: a box whose data is not on its volume
    /// (an image from before data volumes, a failed mount) is refused, as
    /// the replacement would delete the root that holds it.
    async fn pin_new_root(&self, info: &BoxInfo) -> Result<(BoxInfo, Session, String), LifecycleError> {
        let alias = known_hosts::alias(&info.id);
        let found = poll::until(NEW_KEY_TIMEOUT, NEW_KEY_POLL, async || {
            let now = self.provider.describe(&info.id).await?;
            let (BoxState::Running, Some(published)) = (now.state, now.host_key.as_deref()) else { return Ok(None) };
            let key = known_hosts::parse_key(published)?;
            self.known_hosts.pin(&alias, &now.name, &key, true)?;
            match self.connect(&now).await {
                Ok(session) => Ok(Some((now, session, known_hosts::fingerprint(&key)))),
                Err(LifecycleError::Remote(e)) if e.is_transient() || matches!(*e, RemoteError::HostKeyMismatch { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
        found.ok_or_else(|| LifecycleError::NoNewHostKey { name: info.name.clone(), id: info.id.clone(), waited: NEW_KEY_TIMEOUT })
    }

    /// `upgrade --all --dry-run`: every box (of every owner) that runs an
    /// older image than the newest of this manifest's image line (boxes of
    /// other manifests are judged against it too: run it with each).
    pub async fn behind(&self, manifest: &LoadedManifest) -> Result<Vec<Behind>, LifecycleError> {
        let line = self.image_line(Some(manifest)).await;
        let boxes = self.provider.list(None).await?;
        Ok(boxes.into_iter().filter_map(|info| Drift::of(info.image_id.as_deref(), &line).map(|drift| Behind { info, drift })).collect())
    }
}
