//! RunInstances and what it needs first: the owner's key pair, and room
//! for hibernation; the box's root and data volumes.

use std::time::Duration;

use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HibernationOptionsRequest, HttpTokensState, IamInstanceProfileSpecification, Instance, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceMetadataTagsState, InstanceType, Placement, ResourceType, TagSpecification, VolumeType,
};
use sha2::{Digest, Sha256};

use super::instances::{api, code, message, preview_tags, state, tag, team_tags, NO_CAPACITY};
use super::AwsProvider;
use crate::manifest::name::{BoxName, Owner};
use crate::provider::{data, tags, BoxState, LaunchSpec, ProviderError, Result};

/// A ClientToken stays bound to its instance after termination: EC2 then
/// answers with that instance (or IdempotentInstanceTerminated), and the
/// token is salted again. A launch's nonce (laptop/launches.rs) makes this
/// rare (a name re-created after a create that was never seen running);
/// these rounds bound it.
const TOKEN_ROUNDS: usize = 6;

impl AwsProvider {
    /// Imports the user's public key once, or checks the pair already
    /// there: a name is only a claim (someone else could have imported a
    /// pair under it first), so an existing pair must hold this very key
    /// and be tagged with this owner. Returns the name and whether this
    /// call imported it.
    pub async fn ensure_key_pair(&self, owner: &Owner, public_key: &str) -> Result<(String, bool)> {
        let name = key_pair_name(owner, public_key);
        if self.verify_key_pair(&name, owner, public_key).await? {
            return Ok((name, false));
        }
        let imported = self
            .client
            .import_key_pair()
            .key_name(&name)
            .public_key_material(Blob::new(public_key.trim().as_bytes()))
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::KeyPair).tags(tag(tags::OWNER, owner.as_str())).build())
            .send()
            .await;
        match imported {
            Ok(_) => Ok((name, true)),
            // A concurrent create imported it first; check what it imported.
            Err(e) if code(&e) == Some("InvalidKeyPair.Duplicate") => {
                self.verify_key_pair(&name, owner, public_key).await?;
                Ok((name, false))
            }
            Err(e) => Err(api("ImportKeyPair")(e)),
        }
    }

    /// Whether the pair `name` exists; an error if it holds another key or
    /// belongs to another owner.
    async fn verify_key_pair(&self, name: &str, owner: &Owner, public_key: &str) -> Result<bool> {
        let found = self.client.describe_key_pairs().key_names(name).include_public_key(true).send().await;
        let out = match found {
            Ok(out) => out,
            Err(e) if code(&e) == Some("InvalidKeyPair.NotFound") => return Ok(false),
            Err(e) => return Err(api("DescribeKeyPairs")(e)),
        };
        let Some(pair) = out.key_pairs().first() else { return Ok(false) };
        let tagged = pair.tags().iter().find(|t| t.key() == Some(tags::OWNER)).and_then(|t| t.value());
        let reason = if pair.public_key().map(key_material) != Some(key_material(public_key)) {
            "a different public key"
        } else if tagged != Some(owner.as_str()) {
            "another owner's tag"
        } else {
            return Ok(true);
        };
        Err(ProviderError::KeyPairMismatch { name: name.into(), reason })
    }

    /// Every type the launch may use (`box.instance_type`, then
    /// `box.fallback_instance_types`), checked in one DescribeInstanceTypes
    /// before anything is launched: offered in this region, able to boot
    /// the image's architecture, and with `box.hibernate` able to hibernate
    /// with room on the root for the RAM (AWS's prerequisites: supported
    /// family, at most 150 GiB of RAM, an encrypted EBS root large enough
    /// for the memory image). A fallback that cannot would otherwise fail
    /// only once it is reached, in the middle of a capacity shortage.
    pub(super) async fn check_types(&self, spec: &LaunchSpec<'_>, architecture: &str) -> Result<()> {
        let machine = &spec.manifest.manifest.machine;
        let types: Vec<&str> = machine.instance_types().collect();
        let field = |t: &str| if t == machine.instance_type { "box.instance_type" } else { "box.fallback_instance_types" };
        let asked = self.client.describe_instance_types().set_instance_types(Some(types.iter().map(|t| InstanceType::from(*t)).collect())).send().await;
        let out = match asked {
            Err(e) if code(&e) == Some("InvalidInstanceType") => {
                return Err(ProviderError::InstanceType {
                    field: "box.instance_type or box.fallback_instance_types",
                    instance_type: types.join(", "),
                    why: format!("EC2 says: {}", message(&e).unwrap_or("one is unknown in this region")),
                })
            }
            other => other.map_err(api("DescribeInstanceTypes"))?,
        };
        let archs = |info: &aws_sdk_ec2::types::InstanceTypeInfo| -> Vec<String> {
            info.processor_info().map(|p| p.supported_architectures().iter().map(|a| a.as_str().to_owned()).collect()).unwrap_or_default()
        };
        // The image's architecture, or when EC2 does not say (an image
        // registered without it) those of box.instance_type, which it boots.
        let mut bootable: Vec<String> = vec![architecture.to_owned()];
        let mut whose = "the image is";
        for t in &types {
            let Some(info) = out.instance_types().iter().find(|i| i.instance_type().map(|x| x.as_str()) == Some(*t)) else {
                return Err(ProviderError::InstanceType { field: field(t), instance_type: (*t).into(), why: "EC2 does not offer it in this region".into() });
            };
            let runs = archs(info);
            if bootable == [""] {
                bootable = runs.clone();
                whose = "box.instance_type, which boots the image, runs";
            } else if !runs.is_empty() && !runs.iter().any(|a| bootable.contains(a)) {
                return Err(ProviderError::InstanceType {
                    field: field(t),
                    instance_type: (*t).into(),
                    why: format!("it runs {} and {whose} {}", runs.join("/"), bootable.join("/")),
                });
            }
            if machine.hibernate {
                let ram_gib = info.memory_info().and_then(|m| m.size_in_mib()).unwrap_or_default() as f64 / 1024.0;
                hibernation_allows(t, info.hibernation_supported().unwrap_or(false), ram_gib, machine.disk_gib)
                    .map_err(|why| ProviderError::Hibernation(format!("{} {t}: {why}", field(t))))?;
            }
        }
        Ok(())
    }

    /// The subnets this launch may use, in order. A kept data volume
    /// attaches only in its own zone: with `box.subnet`/`box.subnets` set,
    /// only those in the volume's zone (checked before anything is
    /// launched: after, the box would run without its data).
    pub(super) async fn launch_subnets(&self, spec: &LaunchSpec<'_>) -> Result<Vec<Option<String>>> {
        let machine = &spec.manifest.manifest.machine;
        let choices = machine.subnet_choices();
        let zone = spec.data.and_then(|kept| kept.availability_zone.as_deref().map(|z| (kept, z)));
        let (Some((kept, zone)), false) = (zone, choices.iter().all(Option::is_none)) else { return Ok(choices) };
        let ids: Vec<String> = choices.iter().flatten().cloned().collect();
        let out = self.client.describe_subnets().set_subnet_ids(Some(ids.clone())).send().await.map_err(api("DescribeSubnets"))?;
        let in_zone: Vec<Option<String>> = ids
            .iter()
            .filter(|id| out.subnets().iter().any(|s| s.subnet_id() == Some(id.as_str()) && s.availability_zone() == Some(zone)))
            .cloned()
            .map(Some)
            .collect();
        if in_zone.is_empty() {
            let zone_of =
                |id: &str| out.subnets().iter().find(|s| s.subnet_id() == Some(id)).and_then(|s| s.availability_zone()).unwrap_or("another zone").to_string();
            let fix = match machine.subnet.as_deref() {
                Some(subnet) => format!("box.subnet {subnet} is in {}: set box.subnet to a subnet in {zone}", zone_of(subnet)),
                None => format!("no subnet of box.subnets ({}) is: add a subnet in {zone}", ids.join(", ")),
            };
            return Err(ProviderError::Volume {
                id: kept.id.clone(),
                why: format!("it is in {zone}, and {fix}, or `workstation create --data new` (the kept volume stays: `workstation list --volumes`)"),
            });
        }
        Ok(in_zone)
    }

    /// Launches as the first instance type and subnet EC2 has capacity
    /// for: each type (`box.instance_type`, then
    /// `box.fallback_instance_types`) in each of `subnets` in turn, saying
    /// which it got when that is not the first. With no capacity anywhere,
    /// the last refusal, which says what to do.
    pub(super) async fn run_instance(
        &self,
        spec: &LaunchSpec<'_>,
        image: &str,
        root_device: &str,
        key_name: &str,
        subnets: &[Option<String>],
    ) -> Result<Instance> {
        let machine = &spec.manifest.manifest.machine;
        let choices: Vec<(&str, &Option<String>)> = machine.instance_types().flat_map(|t| subnets.iter().map(move |s| (t, s))).collect();
        let mut refused = Vec::new();
        for (i, (instance_type, subnet)) in choices.iter().enumerate() {
            // Each choice its own ClientToken, from what the request asks
            // for: EC2 refuses a token again with other parameters
            // (IdempotentParameterMismatch), so a changed manifest or a
            // kept volume makes a new one, while a re-run of the same
            // launch gets the same instance.
            let data = spec.data.map_or("new", |v| v.id.as_str());
            let choice = format!(
                "{instance_type}\0{}\0{image}\0{data}\0{}\0{}\0{}",
                subnet.as_deref().unwrap_or(""),
                spec.manifest.hash,
                machine.disk_gib,
                machine.data_gib
            );
            match self.run_one(spec, image, root_device, key_name, instance_type, subnet.as_deref(), &choice).await {
                Err(ProviderError::NoCapacity { place, .. }) if i + 1 < choices.len() => {
                    tracing::warn!("EC2 has no {instance_type} capacity {place}; trying the next choice");
                    refused.push(format!("{instance_type} {place}"));
                }
                Err(ProviderError::NotOffered { place, .. }) if i + 1 < choices.len() => {
                    tracing::warn!("EC2 does not offer {instance_type} {place}; trying the next choice");
                    refused.push(format!("{instance_type} {place}"));
                }
                Ok(instance) => {
                    if !refused.is_empty() {
                        let zone = instance.placement().and_then(|p| p.availability_zone()).unwrap_or("?");
                        tracing::info!("launched as {instance_type} in {zone} (none of {} for now)", refused.join("; "));
                    }
                    return Ok(instance);
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("at least one choice: instance_type, in box.subnet or EC2's default")
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_one(
        &self,
        spec: &LaunchSpec<'_>,
        image: &str,
        root_device: &str,
        key_name: &str,
        instance_type: &str,
        subnet: Option<&str>,
        choice: &str,
    ) -> Result<Instance> {
        let machine = &spec.manifest.manifest.machine;
        let tag_spec = |kind: ResourceType| {
            let mut b = TagSpecification::builder()
                .resource_type(kind.clone())
                .tags(tag(tags::OWNER, spec.owner.as_str()))
                .tags(tag(tags::NAME, spec.name.as_str()))
                .tags(tag("Name", &format!("workstation {}/{}", spec.owner, spec.name)));
            if kind == ResourceType::Instance {
                b = b.tags(tag(tags::MANIFEST_HASH, &spec.manifest.hash)).tags(tag(tags::IMAGE_ID, image));
                if let Some(kept) = spec.data {
                    b = b.tags(tag(tags::DATA_VOLUME, &kept.id));
                }
                for t in spec.preview.map(preview_tags).into_iter().chain(spec.team.map(team_tags)).flatten() {
                    b = b.tags(t);
                }
            } else if let Some(p) = spec.preview {
                // A preview's volumes carry its number: its role reaches
                // only its own.
                b = b.tags(tag(tags::PREVIEW, &p.number.to_string()));
            }
            b.build()
        };
        let mut salt = choice.to_string();
        for round in 0..TOKEN_ROUNDS {
            let request = self
                .client
                .run_instances()
                .client_token(client_token(spec.owner, spec.name, &format!("{}{salt}", spec.attempt.unwrap_or_default())))
                .image_id(image)
                .instance_type(InstanceType::from(instance_type))
                .min_count(1)
                .max_count(1)
                .key_name(key_name)
                .set_subnet_id(subnet.map(String::from))
                .set_security_group_ids((!machine.security_groups.is_empty()).then(|| machine.security_groups.clone()))
                .set_iam_instance_profile(machine.instance_profile_for(spec.owner).map(|p| IamInstanceProfileSpecification::builder().name(p).build()))
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_tokens(HttpTokensState::Required)
                        .http_endpoint(InstanceMetadataEndpointState::Enabled)
                        // The image reads its owner from the instance's
                        // tags (images/box.nix creates that user).
                        .instance_metadata_tags(InstanceMetadataTagsState::Enabled)
                        .build(),
                )
                // A new data volume comes with the instance, kept when it
                // is terminated (a preview's goes with it); a kept one is
                // attached once the instance runs, in its zone.
                .set_block_device_mappings(match spec.data {
                    None => Some(vec![volume(root_device, machine.disk_gib, true), volume(data::DEVICE, machine.data_gib, spec.preview.is_some())]),
                    Some(_) => Some(vec![volume(root_device, machine.disk_gib, true)]),
                })
                .set_placement(
                    spec.data
                        .and_then(|v| v.availability_zone.as_ref())
                        .filter(|_| subnet.is_none())
                        .map(|zone| Placement::builder().availability_zone(zone).build()),
                )
                // The root volume is encrypted in any case, as hibernation
                // requires.
                .set_hibernation_options(machine.hibernate.then(|| HibernationOptionsRequest::builder().configured(true).build()))
                .tag_specifications(tag_spec(ResourceType::Instance))
                .tag_specifications(tag_spec(ResourceType::Volume));
            let out = send_once_key_is_known(request).await;
            // The token's instance is gone (EC2 answers so since 2025), or
            // the token went with other parameters: a token of its own.
            let out = match out {
                Err(e) if matches!(code(&e), Some("IdempotentInstanceTerminated" | "IdempotentParameterMismatch")) => {
                    salt = format!("{choice}#{round}");
                    continue;
                }
                other => other,
            };
            let place = || match subnet {
                Some(subnet) => format!("in the zone of subnet {subnet}"),
                None => "in the zone EC2 chose".into(),
            };
            let out = out.map_err(|e| match code(&e) {
                Some(NO_CAPACITY) => ProviderError::NoCapacity {
                    instance_type: instance_type.into(),
                    place: place(),
                    fix: "nothing was launched: run `workstation create` again in a few minutes, or list a subnet per zone in box.subnets and other types in box.fallback_instance_types (tried in order)".into(),
                },
                // EC2's error codes: "Unsupported ... you might be trying
                // to launch an instance in an Availability Zone that
                // currently has constraints on that instance type".
                Some("Unsupported") => ProviderError::NotOffered {
                    instance_type: instance_type.into(),
                    place: place(),
                    said: message(&e).unwrap_or_default().to_owned(),
                },
                _ => api("RunInstances")(e),
            })?;
            let inst =
                out.instances().first().cloned().ok_or_else(|| ProviderError::Api { operation: "RunInstances", message: "returned no instance".into() })?;
            match state(&inst) {
                BoxState::ShuttingDown | BoxState::Terminated => {
                    salt = format!("{choice}{}", inst.instance_id().unwrap_or_default());
                }
                _ => return Ok(inst),
            }
        }
        Err(ProviderError::Api {
            operation: "RunInstances",
            message: format!("kept returning terminated instances for {}/{}; try again in a minute", spec.owner, spec.name),
        })
    }
}

/// Sends the launch, asked again while EC2 does not know its key pair
/// yet: one just imported may be unknown to RunInstances for a while (AWS,
/// "Eventual consistency in the Amazon EC2 API"). Nothing was launched
/// then, so the same request (and ClientToken) is safe to repeat.
async fn send_once_key_is_known(
    request: aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder,
) -> std::result::Result<
    aws_sdk_ec2::operation::run_instances::RunInstancesOutput,
    aws_sdk_ec2::error::SdkError<aws_sdk_ec2::operation::run_instances::RunInstancesError>,
> {
    let mut pauses = crate::poll::Pauses::new(KEY_PAIR_SETTLE, crate::poll::Backoff::new(Duration::from_millis(500), Duration::from_secs(4)));
    loop {
        match request.clone().send().await {
            Err(e) if code(&e) == Some("InvalidKeyPair.NotFound") && pauses.wait().await => continue,
            other => return other,
        }
    }
}

/// How long a key pair just imported may stay unknown to RunInstances.
const KEY_PAIR_SETTLE: Duration = Duration::from_secs(60);

/// An encrypted gp3 volume at `device` (hibernation needs the root
/// encrypted; the data holds the engineer's work).
fn volume(device: &str, gib: u32, delete_on_termination: bool) -> BlockDeviceMapping {
    BlockDeviceMapping::builder()
        .device_name(device)
        .ebs(
            EbsBlockDevice::builder().volume_size(gib as i32).volume_type(VolumeType::Gp3).encrypted(true).delete_on_termination(delete_on_termination).build(),
        )
        .build()
}

/// Room the system and the box's data need on the root volume besides the
/// memory image, in GiB (the image is about 10).
const HIBERNATION_HEADROOM_GIB: f64 = 16.0;
/// AWS hibernates instances with at most this much RAM.
const HIBERNATION_MAX_RAM_GIB: f64 = 150.0;

/// Why `box.hibernate` cannot work with this instance type and disk, if so.
fn hibernation_allows(instance_type: &str, supported: bool, ram_gib: f64, disk_gib: u32) -> std::result::Result<(), String> {
    if !supported || ram_gib > HIBERNATION_MAX_RAM_GIB {
        return Err(format!(
            "instance type {instance_type} ({ram_gib:.0} GiB RAM) cannot hibernate; pick a type that can (e.g. t3, m5, m6i, c6i, r6i with at most 150 GiB RAM), or set box.hibernate = false"
        ));
    }
    let needed = (ram_gib + HIBERNATION_HEADROOM_GIB).ceil() as u32;
    if disk_gib < needed {
        return Err(format!(
            "hibernation writes the box's {ram_gib:.0} GiB of RAM to its root volume: box.disk_gib = {disk_gib} leaves too little room; set box.disk_gib to at least {needed}"
        ));
    }
    Ok(())
}

/// The owner's key pair for this key: `workstation.<owner>.<fingerprint>`.
/// Owner names cannot contain '.', so the IAM policy can allow each
/// engineer exactly the names `workstation.<their owner>.*`.
pub fn key_pair_name(owner: &Owner, public_key: &str) -> String {
    format!("{}{}", key_pair_prefix(owner), &hex::encode(Sha256::digest(key_material(public_key).1))[..12])
}

/// What every key pair of `owner`'s name starts with.
pub fn key_pair_prefix(owner: &Owner) -> String {
    format!("workstation.{owner}.")
}

/// An OpenSSH public key's type and base64 blob, without its comment.
fn key_material(key: &str) -> (&str, &str) {
    let mut fields = key.split_whitespace();
    (fields.next().unwrap_or_default(), fields.next().unwrap_or_default())
}

/// At most 64 ASCII characters (EC2's limit); the same for every create of
/// this owner+name+salt, so EC2 returns one instance however often it is
/// retried.
fn client_token(owner: &Owner, name: &BoxName, salt: &str) -> String {
    let digest = Sha256::digest(format!("{owner}\0{name}\0{salt}"));
    format!("workstation-{}", &hex::encode(digest)[..40])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hibernation_needs_a_type_that_can_and_room_for_the_ram() {
        assert!(hibernation_allows("t3.medium", true, 4.0, 30).is_ok());
        let err = hibernation_allows("t3.medium", true, 4.0, 8).unwrap_err();
        assert!(err.contains("box.disk_gib = 8") && err.contains("at least 20"), "{err}");
        let err = hibernation_allows("i3.metal", false, 512.0, 1000).unwrap_err();
        assert!(err.contains("i3.metal") && err.contains("box.hibernate = false"), "{err}");
        assert!(hibernation_allows("x1.32xlarge", true, 1952.0, 3000).is_err(), "more than 150 GiB of RAM");
    }

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
