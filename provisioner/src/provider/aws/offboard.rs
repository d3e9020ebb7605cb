//! What an owner leaves behind in EC2, for `workstation admin offboard`:
//! their instances (with the mark that starts the grace), key pairs and
//! volumes without an instance; and the calls that remove them.

use aws_sdk_ec2::types::{Filter, VolumeState};
use chrono::{DateTime, Utc};

use super::instances::{api, tag};
use super::launch::key_pair_prefix;
use super::AwsProvider;
use crate::manifest::name::Owner;
use crate::provider::{parse_time, tags, Result};

/// The tag that records when an owner's offboarding began.
pub const OFFBOARDED_AT: &str = "workstation:offboarded-at";

/// One of the owner's instances.
#[derive(Debug, Clone)]
pub struct OwnedBox {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// When offboarding marked it; a mark that is not a time is no mark.
    pub offboarded_at: Option<DateTime<Utc>>,
}

/// A volume of the owner's that no instance holds (kept data).
#[derive(Debug, Clone)]
pub struct KeptVolume {
    pub id: String,
    pub gib: i32,
    pub offboarded_at: Option<DateTime<Utc>>,
}

/// Everything of one owner's.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub boxes: Vec<OwnedBox>,
    pub key_pairs: Vec<String>,
    pub volumes: Vec<KeptVolume>,
}

impl AwsProvider {
    /// The owner's instances (not terminated), key pairs and unattached volumes.
    pub async fn holdings(&self, owner: &Owner) -> Result<Holdings> {
        let owned = |name: &str| Filter::builder().name(format!("tag:{}", tags::OWNER)).values(name).build();
        let live = Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build();
        let boxes = self
            .instances(vec![owned(owner.as_str()), live])
            .await?
            .iter()
            .filter_map(|i| {
                let tag_of = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
                Some(OwnedBox {
                    id: i.instance_id()?.to_string(),
                    name: tag_of(tags::NAME).unwrap_or_default(),
                    running: i.state().and_then(|s| s.name()).is_some_and(|s| s.as_str() == "running" || s.as_str() == "pending"),
                    offboarded_at: parse_time(tag_of(OFFBOARDED_AT).as_deref()),
                })
            })
            .collect();
        // The names are ours (`workstation.<owner>.<fingerprint>`), and owner
        // names hold no '.', so the prefix is the owner's alone.
        let prefix = key_pair_prefix(owner);
        let pairs = self.client.describe_key_pairs().filters(Filter::builder().name("key-name").values(format!("{prefix}*")).build()).send().await;
        let key_pairs = pairs
            .map_err(api("DescribeKeyPairs"))?
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name())
            .filter(|n| n.starts_with(&prefix))
            .map(String::from)
            .collect();
        let available = Filter::builder().name("status").values(VolumeState::Available.as_str()).build();
        let mut pages = self.client.describe_volumes().filters(owned(owner.as_str())).filters(available).into_paginator().send();
        let mut volumes = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(api("DescribeVolumes"))?;
            volumes.extend(page.volumes().iter().filter_map(|v| {
                let mark = v.tags().iter().find(|t| t.key() == Some(OFFBOARDED_AT)).and_then(|t| t.value());
                Some(KeptVolume { id: v.volume_id()?.to_string(), gib: v.size().unwrap_or(0), offboarded_at: parse_time(mark) })
            }));
        }
        Ok(Holdings { boxes, key_pairs, volumes })
    }

    /// Marks `ids` (instances or volumes) as offboarded at `at` (the grace runs from the mark).
    pub async fn mark_offboarded(&self, ids: &[String], at: DateTime<Utc>) -> Result<()> {
        let value = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.client.create_tags().set_resources(Some(ids.to_vec())).tags(tag(OFFBOARDED_AT, &value)).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }

    pub async fn delete_key_pair(&self, name: &str) -> Result<()> {
        self.client.delete_key_pair().key_name(name).send().await.map_err(api("DeleteKeyPair"))?;
        Ok(())
    }

    pub async fn delete_volume_by_id(&self, id: &str) -> Result<()> {
        self.client.delete_volume().volume_id(id).send().await.map_err(api("DeleteVolume"))?;
        Ok(())
    }
}
