//! The manifest's stack on a box: brought up under the box's bring-up
//! lock and recorded on the box, and its stores seeded.

use std::time::Duration;

use indicatif::ProgressBar;

use super::{Context, LifecycleError};
use crate::manifest::{LoadedManifest, Manifest};
use crate::progress::step;
use crate::provider::BoxInfo;
use crate::stack::layout::{sh, SecretSource};
use crate::stack::seed::hash_cache::HashCache;
use crate::stack::seed::{self, SeedReport, Snapshot};
use crate::stack::shell::{BoxShell, ShellError};
use crate::stack::up::{self, UpReport};

/// Each store's snapshot, by store name (None: the store has no seed).
pub type Snapshots = std::collections::BTreeMap<String, Option<Snapshot>>;

impl Context {
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

    pub(super) async fn up_with(
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
    pub(super) async fn up_on(
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
                self.hand_over_secrets(shell, &manifest.manifest).await?;
                let queues = self.queues(info, &manifest.manifest, progress).await?;
                let report = up::up(shell, lock, &manifest.manifest, snapshots, &queues, health_timeout, progress).await?;
                if report.healthy {
                    record(Some(&manifest.hash)).await;
                }
                Ok::<_, LifecycleError>(report)
            })
            .await?;
        Ok(report)
    }

    /// The box's queues (made if missing), for its services' environment.
    async fn queues(&self, info: &BoxInfo, manifest: &Manifest, progress: Option<&ProgressBar>) -> Result<crate::provider::queues::QueueEnv, LifecycleError> {
        if let Some((name, store)) = crate::provider::queues::sqs_store(&manifest.stores) {
            step(progress, format!("the {} queues of store {name}", store.queues.len()));
        }
        Ok(self.provider.queues(info, &manifest.stores).await?)
    }

    /// A local box's secrets, resolved on this laptop and handed to the
    /// box's holder over the session's stdin, before programs (re)start
    /// and read them. A box in AWS reads its own; nothing to do.
    pub async fn hand_over_secrets(&self, shell: &BoxShell, manifest: &Manifest) -> Result<(), LifecycleError> {
        let super::secrets::SecretStore::Laptop(laptop) = &self.secrets else { return Ok(()) };
        if shell.layout.secrets != SecretSource::Laptop || manifest.services.values().all(|s| s.secrets.is_empty()) {
            return Ok(());
        }
        let handover = laptop.handover(manifest, &self.owner)?;
        for (reference, why) in &handover.missing {
            tracing::warn!("secret {reference}: {why}; the programs that need it will not start");
        }
        let json = serde_json::to_vec(&handover).expect("strings serialize");
        let hold = format!("{} box hold-secrets --socket {}", sh(&shell.layout.bin), sh(&shell.layout.secrets_socket()));
        let said = shell.run_input("handing the secrets to the box", &hold, json.as_slice()).await?;
        if said.contains("started the holder") {
            // Programs that asked before any holder ran (the box just
            // booted) gave up; the values are there now. Before supervisord
            // runs there is nothing to start.
            let programs: Vec<&str> = manifest.services.iter().filter(|(_, s)| !s.secrets.is_empty()).map(|(n, _)| n.as_str()).collect();
            let start = shell.supervisorctl(&format!("start {}", programs.join(" ")));
            shell.output(&format!("{start} >/dev/null 2>&1 || true")).await?;
        }
        Ok(())
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
            out.insert(name.clone(), Snapshot::resolve(name, store, dir, self.seeds.outside, self.seeds.s3.as_ref(), &hashes).await?);
        }
        Ok(out)
    }
}
