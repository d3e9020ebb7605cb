//! The aws provider: boxes are EC2 instances, identified by tags.
//!
//! Takes a ready `aws_sdk_ec2::Client` (built once in the CLI from the
//! credential chain, profile, region and `AWS_ENDPOINT_URL`), so tests point
//! it at moto without any code path of their own.

use std::collections::HashMap;
use std::net::IpAddr;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification, Instance, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceMetadataTagsState, InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification,
    VolumeType,
};
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{tags, BoxInfo, BoxState, LaunchSpec, Launched, Provider, ProviderError, Result};
use crate::config::ImageRef;
use crate::name::{BoxName, Owner};
use crate::settings::{AddressKind, ProviderKind};

/// States in which an instance is "the box" (not on its way out).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// A ClientToken stays bound to its instance after termination, so a
/// re-create of a destroyed name gets the old, terminated instance back.
/// We then salt the token with that instance's id; two rounds cover a name
/// destroyed and re-created several times in a row.
const TOKEN_ROUNDS: usize = 4;

pub struct AwsProvider {
    client: Client,
    address: AddressKind,
}

impl AwsProvider {
    pub fn new(client: Client, address: AddressKind) -> Self {
        Self { client, address }
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

    /// The image to launch and its root device name.
    async fn resolve_image(&self, spec: &LaunchSpec<'_>) -> Result<(String, String)> {
        let machine = &spec.manifest.manifest.machine;
        let req = self.client.describe_images();
        let (req, shown) = match machine.image() {
            ImageRef::Id(id) => (req.image_ids(id), id.to_string()),
            ImageRef::Name(name) => (req.filters(Filter::builder().name("name").values(name).build()), name.to_string()),
            // Only this account's images carry our tags (tags of shared
            // AMIs are not visible).
            ImageRef::Tag(tag) => (
                req.owners("self").filters(Filter::builder().name(format!("tag:{}", crate::image::tags::IMAGE)).values(tag).build()),
                format!("tagged {}={tag}", crate::image::tags::IMAGE),
            ),
        };
        // A tag names an image line with one AMI per architecture: only
        // the instance type's can boot it.
        let archs = match machine.image() {
            ImageRef::Tag(_) => Some(self.architectures(&machine.instance_type).await?),
            _ => None,
        };
        let images = req.send().await.map_err(api("DescribeImages"))?;
        let newest = images
            .images()
            .iter()
            .filter(|i| match (&archs, i.architecture()) {
                (Some(archs), Some(a)) => archs.iter().any(|x| x == a.as_str()),
                _ => true,
            })
            .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
            .ok_or(ProviderError::NoImage { name: shown })?;
        Ok((
            newest.image_id().unwrap_or_default().to_string(),
            newest.root_device_name().unwrap_or("/dev/xvda").to_string(),
        ))
    }

    /// The architectures an instance type runs ("x86_64", "arm64").
    async fn architectures(&self, instance_type: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .describe_instance_types()
            .instance_types(InstanceType::from(instance_type))
            .send()
            .await
            .map_err(api("DescribeInstanceTypes"))?;
        let archs: Vec<String> = out
            .instance_types()
            .iter()
            .flat_map(|t| t.processor_info().map(|p| p.supported_architectures()).unwrap_or_default())
            .map(|a| a.as_str().to_string())
            .collect();
        if archs.is_empty() {
            return Err(ProviderError::NoImage { name: format!("for instance type {instance_type:?} (unknown to EC2; check box.instance_type)") });
        }
        Ok(archs)
    }

    /// Imports the user's public key once. The name carries the key's
    /// fingerprint, so an existing pair with this name holds this key.
    /// Returns the name and whether this call imported it.
    pub async fn ensure_key_pair(&self, owner: &Owner, public_key: &str) -> Result<(String, bool)> {
        let blob = public_key.split_whitespace().nth(1).unwrap_or(public_key);
        let name = format!("workstation-{owner}-{}", &hex::encode(Sha256::digest(blob))[..12]);
        let found = self.client.describe_key_pairs().key_names(&name).send().await;
        match found {
            Ok(_) => return Ok((name, false)),
            Err(e) if code(&e) == Some("InvalidKeyPair.NotFound") => {}
            Err(e) => return Err(api("DescribeKeyPairs")(e)),
        }
        let imported = self
            .client
            .import_key_pair()
            .key_name(&name)
            .public_key_material(Blob::new(public_key.trim().as_bytes()))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::KeyPair)
                    .tags(tag(tags::OWNER, owner.as_str()))
                    .build(),
            )
            .send()
            .await;
        match imported {
            Ok(_) => Ok((name, true)),
            // A concurrent create imported it first.
            Err(e) if code(&e) == Some("InvalidKeyPair.Duplicate") => Ok((name, false)),
            Err(e) => Err(api("ImportKeyPair")(e)),
        }
    }

    async fn run_instance(&self, spec: &LaunchSpec<'_>, image: &str, root_device: &str, key_name: &str) -> Result<Instance> {
        let machine = &spec.manifest.manifest.machine;
        let tag_spec = |kind: ResourceType| {
            let is_instance = kind == ResourceType::Instance;
            let b = TagSpecification::builder()
                .resource_type(kind)
                .tags(tag(tags::OWNER, spec.owner.as_str()))
                .tags(tag(tags::NAME, spec.name.as_str()))
                .tags(tag("Name", &format!("workstation {}/{}", spec.owner, spec.name)));
            if is_instance {
                b.tags(tag(tags::MANIFEST_HASH, &spec.manifest.hash)).build()
            } else {
                b.build()
            }
        };
        let mut salt = String::new();
        for _ in 0..TOKEN_ROUNDS {
            let out = self
                .client
                .run_instances()
                .client_token(client_token(spec.owner, spec.name, &salt))
                .image_id(image)
                .instance_type(InstanceType::from(machine.instance_type.as_str()))
                .min_count(1)
                .max_count(1)
                .key_name(key_name)
                .set_subnet_id(machine.subnet.clone())
                .set_security_group_ids((!machine.security_groups.is_empty()).then(|| machine.security_groups.clone()))
                .set_iam_instance_profile(
                    machine.instance_profile.as_ref().map(|p| IamInstanceProfileSpecification::builder().name(p).build()),
                )
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_tokens(HttpTokensState::Required)
                        .http_endpoint(InstanceMetadataEndpointState::Enabled)
                        // The image reads its owner from the instance's
                        // tags (images/box.nix creates that user).
                        .instance_metadata_tags(InstanceMetadataTagsState::Enabled)
                        .build(),
                )
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(root_device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .volume_size(machine.disk_gib as i32)
                                .volume_type(VolumeType::Gp3)
                                .encrypted(true)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                .tag_specifications(tag_spec(ResourceType::Instance))
                .tag_specifications(tag_spec(ResourceType::Volume))
                .send()
                .await
                .map_err(api("RunInstances"))?;
            let inst = out.instances().first().cloned().ok_or_else(|| ProviderError::Api {
                operation: "RunInstances",
                message: "returned no instance".into(),
            })?;
            match state(&inst) {
                BoxState::ShuttingDown | BoxState::Terminated => {
                    salt = inst.instance_id().unwrap_or_default().to_string();
                }
                _ => return Ok(inst),
            }
        }
        Err(ProviderError::Api {
            operation: "RunInstances",
            message: format!("kept returning terminated instances for {}/{}; try again in a minute", spec.owner, spec.name),
        })
    }

    fn info(&self, i: &Instance) -> BoxInfo {
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
            host_key: tags.get(tags::HOST_KEY).map(|k| k.to_string()),
            manifest_hash: tags.get(tags::MANIFEST_HASH).map(|k| k.to_string()),
            launched_at: i.launch_time().and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            instance_type: i.instance_type().map(|t| t.as_str().to_string()),
            last_active: super::parse_time(tags.get(tags::LAST_ACTIVE).copied()),
            keep_until: super::parse_time(tags.get(tags::KEEP_UNTIL).copied()),
            stopped_by: tags.get(tags::STOPPED_BY).map(|k| k.to_string()),
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
        let (image, root_device) = self.resolve_image(spec).await?;
        let (key_name, _) = self.ensure_key_pair(spec.owner, spec.public_key).await?;
        let launched = self.run_instance(spec, &image, &root_device, &key_name).await?;

        // EC2 deduplicates the ClientToken; APIs that don't (moto) can leave
        // several live boxes for one name. Keep the oldest, end the others.
        let live = self.live_instances(Some(spec.owner), Some(spec.name)).await?;
        let keeper = live.first().cloned().unwrap_or(launched);
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
        Ok(Launched { info: self.info(&keeper), created: true, terminated_duplicates: duplicates })
    }

    async fn find(&self, owner: &Owner, name: &BoxName) -> Result<Option<BoxInfo>> {
        Ok(self.live_instances(Some(owner), Some(name)).await?.first().map(|i| self.info(i)))
    }

    async fn list(&self, owner: Option<&Owner>) -> Result<Vec<BoxInfo>> {
        Ok(self.live_instances(owner, None).await?.iter().map(|i| self.info(i)).collect())
    }

    async fn describe(&self, id: &str) -> Result<BoxInfo> {
        let out = self.client.describe_instances().instance_ids(id).send().await;
        let out = match out {
            Err(e) if code(&e) == Some("InvalidInstanceID.NotFound") => return Err(ProviderError::NotFound { id: id.into() }),
            other => other.map_err(api("DescribeInstances"))?,
        };
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .next()
            .map(|i| self.info(i))
            .ok_or_else(|| ProviderError::NotFound { id: id.into() })
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.client.start_instances().instance_ids(id).send().await.map_err(api("StartInstances"))?;
        Ok(())
    }

    async fn stop(&self, id: &str) -> Result<()> {
        self.client.stop_instances().instance_ids(id).send().await.map_err(api("StopInstances"))?;
        Ok(())
    }

    async fn destroy(&self, id: &str) -> Result<()> {
        self.client.terminate_instances().instance_ids(id).send().await.map_err(api("TerminateInstances"))?;
        Ok(())
    }

    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()> {
        let value = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.client.create_tags().resources(id).tags(tag(tags::KEEP_UNTIL, &value)).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }
}

/// How one StopInstances batch went, per instance.
#[derive(Debug, Default)]
pub struct Stopped {
    pub stopped: Vec<String>,
    /// Already stopping, stopped or terminated by the time we asked.
    pub gone: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// EC2 error codes that mean "this instance is no longer running".
const GONE_CODES: [&str; 3] = ["IncorrectInstanceState", "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"];

impl AwsProvider {
    /// Every owner's running boxes (the reaper's view), page by page.
    pub async fn running(&self) -> Result<Vec<BoxInfo>> {
        let filters = vec![
            Filter::builder().name("tag-key").values(tags::OWNER).build(),
            Filter::builder().name("instance-state-name").values("running").build(),
        ];
        Ok(self.instances(filters).await?.iter().map(|i| self.info(i)).collect())
    }

    /// Every instance matching `filters`, in pages of 1,000 (EC2's largest).
    async fn instances(&self, filters: Vec<Filter>) -> Result<Vec<Instance>> {
        let mut pages = self.client.describe_instances().set_filters(Some(filters)).max_results(1000).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(api("DescribeInstances"))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances().iter().cloned()));
        }
        Ok(out)
    }

    /// Stops `ids` in one call and tags them with `reason`. An instance that
    /// stopped or vanished meanwhile is not a failure: a batch the API
    /// rejects is retried one instance at a time to tell which.
    pub async fn stop_batch(&self, ids: &[String], reason: &str) -> Stopped {
        let mut out = Stopped::default();
        match self.client.stop_instances().set_instance_ids(Some(ids.to_vec())).send().await {
            Ok(_) => out.stopped = ids.to_vec(),
            Err(e) if ids.len() > 1 => {
                tracing::debug!("batch stop failed ({}); retrying one by one", aws_sdk_ec2::error::DisplayErrorContext(&e));
                for id in ids {
                    let one = Box::pin(self.stop_batch(std::slice::from_ref(id), reason)).await;
                    out.stopped.extend(one.stopped);
                    out.gone.extend(one.gone);
                    out.failed.extend(one.failed);
                }
                return out;
            }
            Err(e) => {
                use aws_sdk_ec2::error::ProvideErrorMetadata;
                if e.code().is_some_and(|c| GONE_CODES.contains(&c)) {
                    out.gone = ids.to_vec();
                } else {
                    out.failed = vec![(ids[0].clone(), aws_sdk_ec2::error::DisplayErrorContext(&e).to_string())];
                }
                return out;
            }
        }
        // The reason is worth a call: "why did my box stop?" is answered by
        // `workstation status`. Tag values are limited to 256 characters.
        let value: String = reason.chars().take(256).collect();
        if let Err(e) = self.client.create_tags().set_resources(Some(out.stopped.clone())).tags(tag(tags::STOPPED_BY, &value)).send().await {
            tracing::warn!("tagging stopped boxes with the reason failed: {}", aws_sdk_ec2::error::DisplayErrorContext(&e));
        }
        out
    }
}

/// At most 64 ASCII characters (EC2's limit); the same for every create of
/// this owner+name+salt, so EC2 returns one instance however often it is
/// retried.
fn client_token(owner: &Owner, name: &BoxName, salt: &str) -> String {
    let digest = Sha256::digest(format!("{owner}\0{name}\0{salt}"));
    format!("workstation-{}", &hex::encode(digest)[..40])
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn state(i: &Instance) -> BoxState {
    match i.state().and_then(|s| s.name()) {
        Some(InstanceStateName::Running) => BoxState::Running,
        Some(InstanceStateName::Stopping) => BoxState::Stopping,
        Some(InstanceStateName::Stopped) => BoxState::Stopped,
        Some(InstanceStateName::ShuttingDown) => BoxState::ShuttingDown,
        Some(InstanceStateName::Terminated) => BoxState::Terminated,
        _ => BoxState::Pending,
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

fn api<E, R>(operation: &'static str) -> impl FnOnce(SdkError<E, R>) -> ProviderError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    move |e| ProviderError::Api { operation, message: DisplayErrorContext(&e).to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_token_is_stable_short_and_salted() {
        let (o, n): (Owner, BoxName) = ("alice".parse().unwrap(), "dev".parse().unwrap());
        let t = client_token(&o, &n, "");
        assert_eq!(t, client_token(&o, &n, ""));
        assert!(t.len() <= 64 && t.is_ascii());
        assert_ne!(t, client_token(&o, &n, "i-123"));
        assert_ne!(t, client_token(&o, &"dev2".parse().unwrap(), ""));
    }
}

/// Counts API requests by operation (every attempt, retries included):
/// `reap` reports them, and its benchmark compares them with the minimum.
#[derive(Debug, Clone, Default)]
pub struct ApiCalls(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>);

impl ApiCalls {
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl aws_sdk_ec2::config::Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "ApiCalls"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>().map_or("unknown", |m| m.name()).to_owned();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(operation).or_default() += 1;
        Ok(())
    }
}
