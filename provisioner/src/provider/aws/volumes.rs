//! Data volumes on EC2: listed by their tags, attached at
//! [`data::DEVICE`], kept when their instance is terminated unless purged.

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Volume, VolumeAttachmentState, VolumeState};

use super::instances::{api, code, data_device};
use super::AwsProvider;
use crate::manifest::name::Owner;
use crate::poll::{Backoff, Pauses};
use crate::provider::{data, tags, BoxInfo, DataVolume, ProviderError, Result};

/// EBS attaches and detaches within seconds (a terminating instance's
/// volumes within a minute); generous for a loaded region.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const ATTACH_POLL: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

impl AwsProvider {
    /// Volumes tagged with a box name (ours), of one owner or all: those at
    /// the data device of an instance, and those no instance holds (root
    /// volumes go with their instance, so a free one is kept data).
    pub(super) async fn data_volumes(&self, owner: Option<&Owner>) -> Result<Vec<DataVolume>> {
        let mut req = self.client.describe_volumes().filters(Filter::builder().name("tag-key").values(tags::NAME).build());
        if let Some(o) = owner {
            req = req.filters(Filter::builder().name(format!("tag:{}", tags::OWNER)).values(o.as_str()).build());
        }
        let mut pages = req.into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page.map_err(api("DescribeVolumes"))?.volumes().iter().filter_map(data_volume));
        }
        out.sort_by(|a, b| (&a.owner, &a.name, a.created_at).cmp(&(&b.owner, &b.name, b.created_at)));
        Ok(out)
    }

    async fn volume(&self, id: &str) -> Result<Volume> {
        let out = self.client.describe_volumes().volume_ids(id).send().await;
        let out = match out {
            Err(e) if code(&e) == Some("InvalidVolume.NotFound") => return Err(ProviderError::Volume { id: id.into(), why: "no such volume".into() }),
            other => other.map_err(api("DescribeVolumes"))?,
        };
        out.volumes().first().cloned().ok_or_else(|| ProviderError::Volume { id: id.into(), why: "no such volume".into() })
    }

    /// Deletes a kept volume of the owner's; one a box holds is refused.
    pub(super) async fn delete_kept(&self, volume: &DataVolume) -> Result<()> {
        let v = self.volume(&volume.id).await?;
        if v.state() != Some(&VolumeState::Available) {
            return Err(ProviderError::Volume { id: volume.id.clone(), why: "a box holds it; `workstation destroy --purge` deletes both".into() });
        }
        self.client.delete_volume().volume_id(&volume.id).send().await.map_err(api("DeleteVolume"))?;
        Ok(())
    }

    /// Attaches the kept volume the instance was launched to reattach
    /// (its [`tags::DATA_VOLUME`]), unless something is at the data device.
    pub(super) async fn attach_kept(&self, info: &BoxInfo) -> Result<Option<String>> {
        let out = self.client.describe_instances().instance_ids(&info.id).send().await.map_err(api("DescribeInstances"))?;
        let Some(instance) = out.reservations().iter().flat_map(|r| r.instances()).next() else {
            return Err(ProviderError::NotFound { id: info.id.clone() });
        };
        if let Some(attached) = data_device(instance) {
            return Ok(Some(attached));
        }
        let Some(wanted) = instance.tags().iter().find(|t| t.key() == Some(tags::DATA_VOLUME)).and_then(|t| t.value()) else {
            return Ok(None);
        };
        // The tag is a claim the engineer wrote: only a volume made for
        // this owner and box name is attached.
        let v = self.volume(wanted).await?;
        let found = data_volume(&v);
        if !found.as_ref().is_some_and(|d| d.owner == info.owner && d.name == info.name) {
            return Err(ProviderError::Volume { id: wanted.into(), why: format!("it is not a data volume of {}/{}", info.owner, info.name) });
        }
        if let Some(elsewhere) = v.attachments().iter().filter_map(|a| a.instance_id()).find(|i| *i != info.id) {
            return Err(ProviderError::Volume {
                id: wanted.into(),
                why: format!("instance {elsewhere} holds it; destroy that box first, or `workstation create --data new`"),
            });
        }
        if v.state() == Some(&VolumeState::Available) {
            let attach = self.client.attach_volume().volume_id(wanted).instance_id(&info.id).device(data::DEVICE).send().await;
            match attach {
                Ok(_) => {}
                Err(e) if code(&e) == Some("InvalidVolume.ZoneMismatch") => {
                    return Err(ProviderError::Volume {
                        id: wanted.into(),
                        why: format!(
                            "it is in {} and box {} is not; destroy the box and `workstation create --data new`, or snapshot the volume into the box's zone",
                            v.availability_zone().unwrap_or("another zone"),
                            info.name
                        ),
                    })
                }
                Err(e) => return Err(api("AttachVolume")(e)),
            }
        }
        let mut pauses = Pauses::new(ATTACH_TIMEOUT, ATTACH_POLL);
        loop {
            let v = self.volume(wanted).await?;
            if v.attachments().iter().any(|a| a.instance_id() == Some(info.id.as_str()) && a.state() == Some(&VolumeAttachmentState::Attached)) {
                break;
            }
            if !pauses.wait().await {
                return Err(ProviderError::Volume { id: wanted.into(), why: format!("not attached to {} within {ATTACH_TIMEOUT:?}", info.id) });
            }
        }
        Ok(Some(wanted.to_string()))
    }

    /// The volume at the instance's data device, if any.
    pub(super) async fn attached_data(&self, id: &str) -> Result<Option<String>> {
        let out = self.client.describe_instances().instance_ids(id).send().await.map_err(api("DescribeInstances"))?;
        Ok(out.reservations().iter().flat_map(|r| r.instances()).next().and_then(data_device))
    }

    /// After a purging terminate: deletes the data volume once EC2 has
    /// detached it. An interrupted wait leaves it kept, which `destroy
    /// --purge` of the name (or `list --volumes`) finds again; no
    /// ModifyInstanceAttribute, which would let engineers change far more.
    pub(super) async fn delete_when_free(&self, volume: &str) -> Result<()> {
        let mut pauses = Pauses::new(ATTACH_TIMEOUT, ATTACH_POLL);
        loop {
            let v = match self.volume(volume).await {
                Err(ProviderError::Volume { .. }) => return Ok(()),
                other => other?,
            };
            if v.state() == Some(&VolumeState::Available) {
                self.client.delete_volume().volume_id(volume).send().await.map_err(api("DeleteVolume"))?;
                return Ok(());
            }
            if !pauses.wait().await {
                return Err(ProviderError::Volume {
                    id: volume.into(),
                    why: format!("still attached {ATTACH_TIMEOUT:?} after its box was terminated; `workstation destroy NAME --purge` deletes it later"),
                });
            }
        }
    }
}

/// A volume as a data volume: ours (owner and name tags), made empty (a
/// root comes from its image's snapshot: one a failed root replacement
/// left free is not data), and either at the data device or free.
fn data_volume(v: &Volume) -> Option<DataVolume> {
    if v.snapshot_id().is_some_and(|s| !s.is_empty()) {
        return None;
    }
    let tag = |k: &str| v.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
    let attached_to = match v.attachments().iter().find(|a| a.device() == Some(data::DEVICE)) {
        Some(a) => Some(a.instance_id()?.to_string()),
        None if v.state() == Some(&VolumeState::Available) => None,
        None => return None,
    };
    Some(DataVolume {
        id: v.volume_id()?.to_string(),
        owner: tag(tags::OWNER)?,
        name: tag(tags::NAME)?,
        size_gib: v.size().unwrap_or(0).max(0) as u32,
        created_at: v.create_time().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        attached_to,
        availability_zone: v.availability_zone().map(String::from),
    })
}
