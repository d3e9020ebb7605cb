//! [`AwsProvider`]: the [`Provider`] on EC2, and how an instance and its
//! tags become a [`BoxInfo`].

use std::collections::HashMap;
use std::net::IpAddr;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, Instance, InstanceStateName, Tag};
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};

use crate::manifest::name::{BoxName, Owner};
use crate::manifest::MachineSpec;
use crate::provider::{data, tags, usage, BoxInfo, BoxState, LaunchSpec, Launched, Preview, Provider, ProviderError, Result, TeamEnv};
use crate::provider::{AddressKind, ProviderKind};
use crate::provider::{DataVolume, ImageSummary, RootReplaced};

/// States in which an instance is "the box" (not on its way out).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

pub struct AwsProvider {
    pub(super) client: Client,
    pub(super) address: AddressKind,
    /// For team boxes (`push_key`); None: this caller reaches only its own.
    pub(super) connect: Option<aws_sdk_ec2instanceconnect::Client>,
    /// For boxes' queues (queues.rs): every destroy and reap deletes a
    /// box's, so a provider without it cannot be made.
    pub(super) sqs: aws_sdk_sqs::Client,
}

impl AwsProvider {
    pub fn new(client: Client, sqs: aws_sdk_sqs::Client, address: AddressKind) -> Self {
        Self { client, address, connect: None, sqs }
    }

    /// Lets this provider push keys to team boxes (EC2 Instance Connect).
    pub fn with_instance_connect(mut self, client: aws_sdk_ec2instanceconnect::Client) -> Self {
        self.connect = Some(client);
        self
    }

    async fn live_instances(&self, owner: Option<&Owner>, name: Option<&BoxName>) -> Result<Vec<Instance>> {
        let mut filters = vec![
            Filter::builder().name("tag-key").values(tags::NAME).build(),
            Filter::builder().name("instance-state-name").set_values(Some(LIVE_STATES.map(String::from).to_vec())).build(),
        ];
        if let Some(o) = owner {
            filters.push(Filter::builder().name(format!("tag:{}", tags::OWNER)).values(o.as_str()).build());
        }
        if let Some(n) = name {
            filters.push(Filter::builder().name(format!("tag:{}", tags::NAME)).values(n.as_str()).build());
        }
        let mut out = self.instances(filters).await?;
        // Oldest first, id as tie-break: every concurrent `create` picks
        // the same survivor.
        out.sort_by_key(|i| (i.launch_time().map(|t| (t.secs(), t.subsec_nanos())), i.instance_id().map(String::from)));
        Ok(out)
    }

    /// Every instance matching `filters`, in pages of 1,000 (EC2's largest).
    pub(super) async fn instances(&self, filters: Vec<Filter>) -> Result<Vec<Instance>> {
        let mut pages = self.client.describe_instances().set_filters(Some(filters)).max_results(1000).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(api("DescribeInstances"))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances().iter().cloned()));
        }
        Ok(out)
    }

    pub(super) fn info(&self, i: &Instance) -> BoxInfo {
        let tags: HashMap<&str, &str> = i.tags().iter().filter_map(|t| Some((t.key()?, t.value()?))).collect();
        let private = i.private_ip_address().and_then(|a| a.parse::<IpAddr>().ok());
        let public = i.public_ip_address().and_then(|a| a.parse::<IpAddr>().ok());
        BoxInfo {
            id: i.instance_id().unwrap_or_default().to_string(),
            name: tags.get(tags::NAME).unwrap_or(&"").to_string(),
            owner: tags.get(tags::OWNER).unwrap_or(&"").to_string(),
            state: state(i),
            address: match self.address {
                AddressKind::Public => public.or(private),
                AddressKind::Private => private,
            },
            private_address: private,
            host_key: tags.get(tags::HOST_KEY).map(|k| k.to_string()),
            manifest_hash: tags.get(tags::MANIFEST_HASH).map(|k| k.to_string()),
            launched_at: i.launch_time().and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            instance_type: i.instance_type().map(|t| t.as_str().to_string()),
            last_active: crate::provider::parse_time(tags.get(tags::LAST_ACTIVE).copied()),
            keep_until: crate::provider::parse_time(tags.get(tags::KEEP_UNTIL).copied()),
            stopped_by: tags.get(tags::STOPPED_BY).map(|k| k.to_string()),
            stopped_at: matches!(state(i), BoxState::Stopped | BoxState::Stopping).then(|| i.state_transition_reason().and_then(usage::stopped_at)).flatten(),
            usage: usage::Usage::parse(tags.get(tags::USAGE).copied()),
            hibernate: i.hibernation_options().and_then(|h| h.configured()).unwrap_or(false),
            shareable: tags.get(tags::SHAREABLE) == Some(&"true"),
            bring_up_unfinished: tags.get(tags::BRING_UP) == Some(&"unfinished"),
            preview: Preview::from_tags(tags.get(tags::PREVIEW).copied(), tags.get(tags::REF).copied(), tags.get(tags::EXPIRES).copied()),
            team: TeamEnv::from_tags(tags.get(tags::TEAM).copied(), tags.get(tags::ENV).copied(), tags.get(tags::REF).copied()),
            image_id: tags.get(tags::IMAGE_ID).map(|v| v.to_string()).or_else(|| i.image_id().map(String::from)),
            data_volume: data_device(i).or_else(|| tags.get(tags::DATA_VOLUME).map(|v| v.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl Provider for AwsProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aws
    }

    async fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched> {
        if let Some(info) = self.find(spec.owner, spec.name).await? {
            return Ok(Launched { info, created: false, terminated_duplicates: vec![] });
        }
        let subnets = self.launch_subnets(spec).await?;
        let (image, root_device, architecture) = self.resolve_image(&spec.manifest.manifest.machine).await?;
        self.check_types(spec, &architecture).await?;
        let (key_name, _) = self.ensure_key_pair(spec.owner, spec.public_key).await?;
        let launched = self.run_instance(spec, &image, &root_device, &key_name, &subnets).await?;

        let (keeper, duplicates) = self.settle_duplicates(spec.owner, spec.name).await?;
        Ok(Launched { info: keeper.unwrap_or_else(|| self.info(&launched)), created: true, terminated_duplicates: duplicates })
    }

    /// Two launches of one name with different tokens (concurrent creates
    /// from two machines; APIs that do not deduplicate, like moto) leave
    /// several live boxes: the oldest stays, the others are terminated.
    /// Asked again once the box runs, as a launch may not list the other
    /// yet (EC2's eventual consistency).
    async fn settle_duplicates(&self, owner: &Owner, name: &BoxName) -> Result<(Option<BoxInfo>, Vec<String>)> {
        let live = self.live_instances(Some(owner), Some(name)).await?;
        let duplicates: Vec<String> = live.iter().skip(1).filter_map(|i| i.instance_id().map(String::from)).collect();
        if !duplicates.is_empty() {
            let ended = self.client.terminate_instances().set_instance_ids(Some(duplicates.clone())).send().await;
            match ended {
                Ok(_) => {}
                // Concurrent creates reconcile the same duplicates, and the
                // other one may have ended them first: EC2 accepts that,
                // moto answers that the volume is already detached.
                Err(e) if code(&e) == Some("InvalidAttachment.NotFound") => {}
                Err(e) => return Err(api("TerminateInstances")(e)),
            }
        }
        Ok((live.first().map(|i| self.info(i)), duplicates))
    }

    async fn find(&self, owner: &Owner, name: &BoxName) -> Result<Option<BoxInfo>> {
        Ok(self.live_instances(Some(owner), Some(name)).await?.first().map(|i| self.info(i)))
    }

    async fn list(&self, owner: Option<&Owner>) -> Result<Vec<BoxInfo>> {
        Ok(self.live_instances(owner, None).await?.iter().map(|i| self.info(i)).collect())
    }

    async fn team_boxes(&self) -> Result<Vec<BoxInfo>> {
        let filters = vec![
            Filter::builder().name("tag-key").values(tags::TEAM).build(),
            Filter::builder().name("instance-state-name").set_values(Some(LIVE_STATES.map(String::from).to_vec())).build(),
        ];
        Ok(self.instances(filters).await?.iter().map(|i| self.info(i)).filter(|b| b.team.is_some()).collect())
    }

    async fn describe(&self, id: &str) -> Result<BoxInfo> {
        let out = self.client.describe_instances().instance_ids(id).send().await;
        let out = match out {
            Err(e) if code(&e) == Some("InvalidInstanceID.NotFound") => return Err(ProviderError::NotFound { id: id.into() }),
            other => other.map_err(api("DescribeInstances"))?,
        };
        out.reservations().iter().flat_map(|r| r.instances()).next().map(|i| self.info(i)).ok_or_else(|| ProviderError::NotFound { id: id.into() })
    }

    async fn start(&self, id: &str) -> Result<()> {
        // What the start ends, for the hours ledger (only an estimate
        // rides on it: a failed look does not stop the start).
        let before = self.describe(id).await.ok();
        let started = self.client.start_instances().instance_ids(id).send().await;
        match started {
            Ok(_) => {
                if let Some(before) = &before {
                    self.record_usage(before).await;
                }
                Ok(())
            }
            // Its volumes are in its zone: it can run nowhere else.
            Err(e) if code(&e) == Some(NO_CAPACITY) => Err(ProviderError::NoCapacity {
                instance_type: self.describe(id).await.ok().and_then(|b| b.instance_type).unwrap_or_else(|| "instance".into()),
                place: format!("in the Availability Zone of box {id}"),
                fix: "its volumes are in that zone, so it can start only there: run `workstation start` again in a few minutes, or give the stopped instance another type (`aws ec2 modify-instance-attribute --instance-id ID --instance-type TYPE`) and start it".into(),
            }),
            Err(e) => Err(api("StartInstances")(e)),
        }
    }

    async fn stop(&self, id: &str, hibernate: bool) -> Result<()> {
        self.stop_instances(&[id.to_string()], hibernate).await.map_err(api("StopInstances"))?;
        Ok(())
    }

    /// Its queues first: a destroy interrupted after them finds the box
    /// and runs again, one interrupted after the box would leave them.
    async fn destroy(&self, id: &str) -> Result<()> {
        let info = self.describe(id).await?;
        let deleted = self.delete_queues(&info.owner, &info.name).await?;
        if deleted > 0 {
            tracing::info!("deleted {deleted} queues of box {}", info.name);
        }
        self.client.terminate_instances().instance_ids(id).send().await.map_err(api("TerminateInstances"))?;
        Ok(())
    }

    async fn destroy_with_data(&self, id: &str) -> Result<()> {
        let data = self.attached_data(id).await?;
        self.destroy(id).await?;
        match data {
            Some(volume) => self.delete_when_free(&volume).await,
            None => Ok(()),
        }
    }

    async fn volumes(&self, owner: Option<&Owner>) -> Result<Vec<DataVolume>> {
        self.data_volumes(owner).await
    }

    async fn delete_volume(&self, volume: &DataVolume) -> Result<()> {
        self.delete_kept(volume).await
    }

    async fn attach_data(&self, info: &BoxInfo) -> Result<Option<String>> {
        self.attach_kept(info).await
    }

    async fn replace_root(&self, id: &str, image: Option<&str>) -> Result<RootReplaced> {
        self.replace_root_volume(id, image).await
    }

    async fn images(&self, machine: &MachineSpec) -> Result<Vec<ImageSummary>> {
        self.image_line(machine).await
    }

    async fn launch_image(&self, machine: &MachineSpec) -> Result<Option<String>> {
        Ok(Some(self.resolve_image(machine).await?.0))
    }

    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()> {
        let value = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.client.create_tags().resources(id).tags(tag(tags::KEEP_UNTIL, &value)).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }

    async fn set_shareable(&self, id: &str, shareable: bool) -> Result<()> {
        let value = if shareable { "true" } else { "false" };
        self.client.create_tags().resources(id).tags(tag(tags::SHAREABLE, value)).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }

    async fn queues(&self, info: &BoxInfo, stores: &std::collections::BTreeMap<String, crate::manifest::Store>) -> Result<crate::provider::queues::QueueEnv> {
        self.ensure_queues(info, stores).await
    }

    async fn record_bring_up(&self, id: &str, finished: Option<&str>) -> Result<()> {
        let tags = match finished {
            None => vec![tag(tags::BRING_UP, "unfinished")],
            Some(hash) => vec![tag(tags::BRING_UP, "finished"), tag(tags::MANIFEST_HASH, hash)],
        };
        self.client.create_tags().resources(id).set_tags(Some(tags)).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }

    async fn set_team_commit(&self, id: &str, commit: Option<&str>) -> Result<()> {
        self.client.create_tags().resources(id).tags(tag(tags::REF, commit.unwrap_or_default())).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }

    async fn push_key(&self, info: &BoxInfo, user: &str, public_key: &str) -> Result<()> {
        let Some(instance_connect) = self.connect.as_ref() else {
            return Err(ProviderError::Api { operation: "SendSSHPublicKey", message: "this provider was built without an EC2 Instance Connect client".into() });
        };
        let sent = instance_connect.send_ssh_public_key().instance_id(&info.id).instance_os_user(user).ssh_public_key(public_key).send().await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("AccessDeniedException") => Err(ProviderError::NotYourTeam {
                what: info.team.as_ref().map_or_else(|| info.name.clone(), TeamEnv::label),
                detail: e.into_service_error().to_string(),
            }),
            Err(e) => Err(api("SendSSHPublicKey")(e)),
        }
    }

    async fn set_preview(&self, id: &str, preview: &Preview) -> Result<()> {
        let tags = preview_tags(preview).into_iter().filter(|t| t.key() != Some(tags::PREVIEW)).collect();
        self.client.create_tags().resources(id).set_tags(Some(tags)).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }
}

/// The volume attached at the data device, if any.
pub(super) fn data_device(i: &Instance) -> Option<String> {
    i.block_device_mappings().iter().find(|b| b.device_name() == Some(data::DEVICE)).and_then(|b| b.ebs()?.volume_id()).map(String::from)
}

/// A team box's tags at launch: team, environment, and no commit yet.
pub(super) fn team_tags(t: &TeamEnv) -> Vec<Tag> {
    vec![tag(tags::TEAM, &t.team), tag(tags::ENV, &t.env), tag(tags::REF, t.commit.as_deref().unwrap_or_default())]
}

/// A preview box's tags: its number, commit and expiry.
pub(super) fn preview_tags(p: &Preview) -> Vec<Tag> {
    let mut out = vec![tag(tags::PREVIEW, &p.number.to_string())];
    // Empty while an upload is under way: the box's tree is then at no
    // known commit, and the next `preview up` uploads all of it.
    out.push(tag(tags::REF, p.commit.as_deref().unwrap_or_default()));
    out.extend(p.expires.map(|t| tag(tags::EXPIRES, &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))));
    out
}

pub(super) fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

pub(super) fn state(i: &Instance) -> BoxState {
    match i.state().and_then(|s| s.name()) {
        Some(InstanceStateName::Running) => BoxState::Running,
        Some(InstanceStateName::Stopping) => BoxState::Stopping,
        Some(InstanceStateName::Stopped) => BoxState::Stopped,
        Some(InstanceStateName::ShuttingDown) => BoxState::ShuttingDown,
        Some(InstanceStateName::Terminated) => BoxState::Terminated,
        _ => BoxState::Pending,
    }
}

/// EC2's error when a zone has none of an instance type left.
pub(super) const NO_CAPACITY: &str = "InsufficientInstanceCapacity";

pub(super) fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

/// EC2's message with the error [`code`].
pub(super) fn message<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.message())
}

pub(super) use crate::provider::error::aws_failure as api;

type StopResult = std::result::Result<(), aws_sdk_ec2::error::SdkError<aws_sdk_ec2::operation::stop_instances::StopInstancesError>>;

impl AwsProvider {
    /// StopInstances, hibernating when asked (see [`hibernation_refused`]).
    pub(super) async fn stop_instances(&self, ids: &[String], hibernate: bool) -> StopResult {
        let stop = |hibernate: bool| self.client.stop_instances().set_instance_ids(Some(ids.to_vec())).set_hibernate(hibernate.then_some(true)).send();
        match stop(hibernate).await {
            // One instance at a time: in a batch, the others can hibernate
            // (reap retries a rejected batch one by one).
            Err(e) if hibernate && ids.len() == 1 && hibernation_refused(&e) => stop(false).await.map(drop),
            result => result.map(drop),
        }
    }

    /// Adds the run and the stop that this start ended to the box's usage
    /// tag (provider/usage.rs). Only `cost`'s estimate rides on it, so a
    /// failure (a colleague's `share --start` may not tag the box) is noted
    /// in the debug log, not a failed start.
    pub(super) async fn record_usage(&self, before: &BoxInfo) {
        let Some(stopped_at) = before.stopped_at.filter(|_| before.state == BoxState::Stopped) else { return };
        let by = usage::StoppedBy::of(before.stopped_by.as_deref(), stopped_at);
        let next = before.usage.after_start(before.launched_at, stopped_at, by, Utc::now());
        if let Err(e) = self.client.create_tags().resources(&before.id).tags(tag(tags::USAGE, &next.to_tag())).send().await {
            tracing::debug!("recording box {}'s hours for `cost` failed: {}", before.name, aws_sdk_ec2::error::DisplayErrorContext(&e));
        }
    }
}

/// EC2 refuses to hibernate an instance whose hibernation is not ready yet
/// (the first minutes after launch) or not enabled (a box launched before
/// `box.hibernate` was set): such a box is stopped plainly rather than
/// left running.
pub fn hibernation_refused<E: aws_sdk_ec2::error::ProvideErrorMetadata>(e: &E) -> bool {
    let refused = e.code().is_some_and(|c| c.contains("Hibernation"));
    if refused {
        tracing::warn!("hibernation refused ({}); stopping instead", e.message().unwrap_or_default());
    }
    refused
}
