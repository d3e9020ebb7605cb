//! Which image a box launches (by id, name or tag, for the instance type's
//! architecture), whether a tagged one was really published, and the images
//! newer than a box's (its drift).

use aws_sdk_ec2::types::{Filter, Image, InstanceType};

use super::instances::api;
use super::AwsProvider;
use crate::manifest::{ImageRef, MachineSpec};
use crate::provider::{parse_time, tags, ImageSummary, ProviderError, Result};

impl AwsProvider {
    /// The images the manifest's reference names that the instance type
    /// can boot, newest first, and how to name the reference in errors.
    async fn candidates(&self, machine: &MachineSpec) -> Result<(Vec<Image>, String)> {
        let req = self.client.describe_images();
        let (req, shown) = match machine.image() {
            ImageRef::Id(id) => (req.image_ids(id), id.to_string()),
            // This account's images, or those of owners the manifest trusts:
            // anyone can publish a public AMI under any name.
            ImageRef::Name(name) => (
                req.set_owners(Some([vec!["self".to_string()], machine.image_owners.clone()].concat()))
                    .filters(Filter::builder().name("name").values(name).build()),
                format!(
                    "{name} owned by this account{}",
                    if machine.image_owners.is_empty() { String::new() } else { format!(" or {}", machine.image_owners.join(", ")) }
                ),
            ),
            // Only this account's images carry our tags (tags of shared
            // AMIs are not visible).
            ImageRef::Tag(tag) => (
                req.owners("self").filters(Filter::builder().name(format!("tag:{}", tags::IMAGE)).values(tag).build()),
                format!("tagged {}={tag}", tags::IMAGE),
            ),
        };
        // A tag names an image line with one AMI per architecture: only
        // the instance type's can boot it.
        let archs = match machine.image() {
            ImageRef::Tag(_) => Some(self.architectures(&machine.instance_type).await?),
            _ => None,
        };
        let images = req.send().await.map_err(api("DescribeImages"))?;
        let mut out: Vec<Image> = images
            .images()
            .iter()
            .filter(|i| match (&archs, i.architecture()) {
                (Some(archs), Some(a)) => archs.iter().any(|x| x == a.as_str()),
                _ => true,
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| b.creation_date().cmp(&a.creation_date()));
        Ok((out, shown))
    }

    /// The image to launch, its root device name and its architecture
    /// ("" when EC2 does not say).
    pub(super) async fn resolve_image(&self, machine: &MachineSpec) -> Result<(String, String, String)> {
        let (images, shown) = self.candidates(machine).await?;
        let newest = images.first().ok_or(ProviderError::NoImage { name: shown })?;
        if let ImageRef::Tag(_) = machine.image() {
            self.check_published(newest).await?;
        }
        Ok((
            newest.image_id().unwrap_or_default().to_string(),
            newest.root_device_name().unwrap_or("/dev/xvda").to_string(),
            newest.architecture().map(|a| a.as_str().to_string()).unwrap_or_default(),
        ))
    }

    /// Every image the reference names, newest first (none for an id:
    /// nothing is newer than a pinned image).
    pub(super) async fn image_line(&self, machine: &MachineSpec) -> Result<Vec<ImageSummary>> {
        if let ImageRef::Id(_) = machine.image() {
            return Ok(Vec::new());
        }
        let (images, _) = self.candidates(machine).await?;
        Ok(images.iter().filter_map(|i| Some(ImageSummary { id: i.image_id()?.to_string(), created_at: parse_time(i.creation_date()) })).collect())
    }

    /// An image found by its line's tag is launched only if it is what
    /// `image publish` makes: it names what was built (its content and
    /// inputs), and the snapshot its root device boots from carries the
    /// same inputs, which only the publisher can put there (terraform:
    /// snapshots are tagged only as the publisher starts its upload, and it
    /// registers images only from such snapshots). An image someone merely
    /// tagged with the line's name, or whose tags were copied from a real
    /// one onto another disk, is refused.
    async fn check_published(&self, image: &aws_sdk_ec2::types::Image) -> Result<()> {
        let id = image.image_id().unwrap_or_default().to_string();
        let refuse = |why: String| ProviderError::UnpublishedImage { id: id.clone(), why };
        let value = |tags: &[aws_sdk_ec2::types::Tag], key: &str| {
            tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).filter(|v| !v.is_empty()).map(String::from)
        };
        let missing = |key: &str| refuse(format!("it has no {key} tag (what was built)"));
        value(image.tags(), tags::IMAGE_CONTENT).ok_or_else(|| missing(tags::IMAGE_CONTENT))?;
        let inputs = value(image.tags(), tags::IMAGE_INPUTS).ok_or_else(|| missing(tags::IMAGE_INPUTS))?;
        let snapshot = image
            .block_device_mappings()
            .iter()
            .find(|b| b.device_name().is_some() && b.device_name() == image.root_device_name())
            .and_then(|b| b.ebs())
            .and_then(|e| e.snapshot_id())
            .ok_or_else(|| refuse("its root device boots from no snapshot".into()))?;
        let out = self.client.describe_snapshots().owner_ids("self").snapshot_ids(snapshot).send().await.map_err(api("DescribeSnapshots"))?;
        let provenance = out.snapshots().first().and_then(|s| value(s.tags(), tags::IMAGE_INPUTS));
        if provenance.as_deref() != Some(inputs.as_str()) {
            return Err(refuse(format!(
                "its root snapshot {snapshot} was not uploaded by `workstation image publish` for it ({} {}, the image says {inputs})",
                tags::IMAGE_INPUTS,
                provenance.as_deref().unwrap_or("missing")
            )));
        }
        Ok(())
    }

    /// The architectures an instance type runs ("x86_64", "arm64").
    async fn architectures(&self, instance_type: &str) -> Result<Vec<String>> {
        let out = self.client.describe_instance_types().instance_types(InstanceType::from(instance_type)).send().await.map_err(api("DescribeInstanceTypes"))?;
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
}
