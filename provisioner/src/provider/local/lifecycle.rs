//! The [`Provider`] verbs on local boxes.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::record::{io, namespace, read_record, Record, Recorded};
use super::store::LocalProvider;
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::MachineSpec;
use crate::provider::{
    BoxInfo, BoxState, DataVolume, ImageSummary, LaunchSpec, Launched, Preview, Provider, ProviderError, ProviderKind, Result, RootReplaced,
};

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
        let volume = match spec.data {
            Some(kept) => self.kept_volume(kept, spec.owner, spec.name)?,
            None => self.new_volume(spec.owner.as_str(), spec.name.as_str(), spec.manifest.manifest.machine.data_gib)?.id,
        };
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
                root: Some(self.machine.volume_root(&volume)),
                volume: Some(volume),
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
                team: spec.team.cloned(),
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

    async fn team_boxes(&self) -> Result<Vec<BoxInfo>> {
        Ok(self.records()?.iter().filter(|r| r.team.is_some()).map(|r| self.info(r)).collect())
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
        self.remove(id, false).await
    }

    async fn destroy_with_data(&self, id: &str) -> Result<()> {
        self.remove(id, true).await
    }

    async fn volumes(&self, owner: Option<&Owner>) -> Result<Vec<DataVolume>> {
        let boxes = self.records()?;
        Ok(self.volume_records()?.iter().filter(|v| owner.is_none_or(|o| o.as_str() == v.owner)).map(|v| self.data_volume(v, &boxes)).collect())
    }

    async fn delete_volume(&self, volume: &DataVolume) -> Result<()> {
        let boxes = self.records()?;
        let Some(v) = self.volume_records()?.into_iter().find(|v| v.id == volume.id) else {
            return Err(ProviderError::Volume { id: volume.id.clone(), why: "no such volume".into() });
        };
        if let Some(holder) = self.data_volume(&v, &boxes).attached_to {
            return Err(ProviderError::Volume { id: v.id, why: format!("box {holder} holds it; `workstation destroy --purge` deletes both") });
        }
        self.remove_volume(&v.id)
    }

    async fn attach_data(&self, info: &BoxInfo) -> Result<Option<String>> {
        Ok(self.record(&info.id)?.volume)
    }

    /// The local counterpart of EC2's root volume replacement: the box
    /// halts, loses what its root held (its host key), and boots again,
    /// publishing a new key; its data (the volume) is untouched. Recorded
    /// stopped first: EC2 finishes a replacement whoever asked for it went,
    /// and here the next verb that wakes the box (the re-run) finishes one
    /// interrupted anywhere by booting it, with whatever key it then has.
    async fn replace_root(&self, id: &str, _image: Option<&str>) -> Result<RootReplaced> {
        let r = self.record(id)?;
        let _lock = self.name_lock(&r.owner, &r.name)?;
        let r = self.update(id, |r| r.state = Recorded::Stopped)?;
        self.halt(&r).await?;
        self.host(&r).forget_host_key()?;
        let r = self.update(id, |r| r.host_key = None)?;
        self.boot(r).await?;
        Ok(RootReplaced { from: None, to: None, replaced: true })
    }

    async fn images(&self, _machine: &MachineSpec) -> Result<Vec<ImageSummary>> {
        Ok(Vec::new())
    }

    async fn launch_image(&self, _machine: &MachineSpec) -> Result<Option<String>> {
        Ok(None)
    }

    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()> {
        self.update(id, |r| r.keep_until = Some(until)).map(drop)
    }

    async fn set_shareable(&self, id: &str, shareable: bool) -> Result<()> {
        self.update(id, |r| r.shareable = shareable).map(drop)
    }

    /// A local box's sqs store runs its own server, which makes the
    /// queues when it starts (stack/stores.rs): only their URLs here.
    async fn queues(&self, _info: &BoxInfo, stores: &std::collections::BTreeMap<String, crate::manifest::Store>) -> Result<crate::provider::queues::QueueEnv> {
        Ok(crate::provider::queues::local_env(stores))
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

    async fn set_team_commit(&self, id: &str, commit: Option<&str>) -> Result<()> {
        self.update(id, |r| {
            if let Some(team) = r.team.as_mut() {
                team.commit = commit.map(str::to_owned);
            }
        })
        .map(drop)
    }

    async fn push_key(&self, info: &BoxInfo, user: &str, public_key: &str) -> Result<()> {
        let dir = self.host(&self.record(&info.id)?).pushed_keys_dir();
        crate::provider::pushed_keys::push(&dir, user, public_key, Utc::now()).map_err(io(&dir))
    }

    async fn set_preview(&self, id: &str, preview: &Preview) -> Result<()> {
        self.update(id, |r| r.preview = Some(preview.clone())).map(drop)
    }
}

impl LocalProvider {
    /// Halts box `id` and removes it; its data volume too with `purge`.
    async fn remove(&self, id: &str, purge: bool) -> Result<()> {
        let r = self.record(id)?;
        let _lock = self.name_lock(&r.owner, &r.name)?;
        self.halt(&r).await?;
        let dir = self.box_dir(&r.owner, &r.name);
        // box.json is in a directory the user can write: only this box's
        // own root in the machine directory is removed (as root), and only
        // a volume this HOME recorded.
        // A preview's data goes with it, as its EC2 volume does.
        if let Some(volume) = r.volume.as_ref().filter(|_| purge || r.preview.is_some()) {
            if self.volume_records()?.iter().any(|v| v.id == *volume) {
                self.remove_volume(volume)?;
            }
        }
        if let Some(root) = r.root.as_ref().filter(|root| **root == self.machine.box_root(&namespace(&r.id))) {
            match std::fs::remove_dir_all(root) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(root)(e)),
                _ => {}
            }
        }
        self.machine.release(r.address, &dir.join("box.json"));
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// The kept volume `create` chose to reattach, checked to be this
    /// box's and free.
    fn kept_volume(&self, kept: &DataVolume, owner: &Owner, name: &BoxName) -> Result<String> {
        let refuse = |why: String| ProviderError::Volume { id: kept.id.clone(), why };
        let v = self.volume_records()?.into_iter().find(|v| v.id == kept.id).ok_or_else(|| refuse("no such volume".into()))?;
        if v.owner != owner.as_str() || v.name != name.as_str() {
            return Err(refuse(format!("it was made for {}/{}, not {owner}/{name}", v.owner, v.name)));
        }
        if let Some(holder) = self.records()?.iter().find(|r| r.volume.as_deref() == Some(v.id.as_str())) {
            return Err(refuse(format!("box {} holds it", holder.id)));
        }
        Ok(v.id)
    }
}
