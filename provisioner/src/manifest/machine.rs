//! `[box]`: the instance, its disk, network and image.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub instance_type: String,
    /// The root volume (the image; replaced by `upgrade`).
    pub disk_gib: u32,
    /// The data volume: home, `src/`, store data, seed markers and logs
    /// (everything `upgrade` and `destroy --keep-data` keep).
    #[serde(default = "default_data_gib")]
    pub data_gib: u32,
    /// Falls back to the user's settings, then the AWS config chain.
    pub region: Option<String>,
    pub subnet: Option<String>,
    /// Instead of `subnet`: one subnet per Availability Zone, tried in
    /// order when EC2 has no capacity in the one before.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Instance types tried after `instance_type` when no subnet has
    /// capacity for it (of the same architecture: the image is one).
    #[serde(default)]
    pub fallback_instance_types: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The box's IAM instance profile (terraform's `instance_profile`
    /// output): lets the box tag and stop only itself and read the shared
    /// secrets. `{owner}` in it is the launching owner (terraform's
    /// `instance_profile_per_owner`): that owner's boxes read their secrets.
    pub instance_profile: Option<String>,
    /// Exactly one of `image_id`, `image_name` and `image_tag`.
    pub image_id: Option<String>,
    pub image_name: Option<String>,
    /// The newest AMI of this account tagged `workstation:image` = this
    /// value (what `workstation image publish --image` tags) that runs on
    /// the instance type's architecture.
    pub image_tag: Option<String>,
    /// Accounts besides this one whose AMIs `image_name` may select
    /// ("amazon", or 12-digit account ids). A name is not unique across
    /// accounts: anyone can publish a public AMI with a matching one.
    #[serde(default)]
    pub image_owners: Vec<String>,
    /// Hibernate instead of stopping (idle check, `reap`, `stop`): a woken
    /// box resumes with its processes and caches. The launch enables it
    /// (HibernationOptions) after checking that the instance type supports
    /// it and that the encrypted root volume holds the RAM; an image built
    /// with it prepares the guest (images/hibernation.nix), and `[idle]`
    /// timeout defaults to 20 minutes instead of 45 (docs/idle.md).
    #[serde(default)]
    pub hibernate: bool,
    /// The most boxes one owner may have (running or stopped): `create`
    /// refuses another, `reap` reports who is over. IAM cannot count
    /// instances; the platform sets this (docs/operator.md, guardrails).
    pub max_boxes_per_owner: Option<u32>,
    /// Where the platform published this manifest (terraform's
    /// `manifest_url`, written by `workstation manifest publish`): the
    /// reaper reads it, `doctor` compares it with this file.
    pub deployed_manifest: Option<String>,
}

impl MachineSpec {
    /// The subnets a launch may use, in order (None: EC2's default).
    pub fn subnet_choices(&self) -> Vec<Option<String>> {
        match (&self.subnet, self.subnets.is_empty()) {
            (_, false) => self.subnets.iter().cloned().map(Some).collect(),
            (subnet, true) => vec![subnet.clone()],
        }
    }

    /// `instance_type`, then the fallbacks.
    pub fn instance_types(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.instance_type.as_str()).chain(self.fallback_instance_types.iter().map(String::as_str))
    }
}

fn default_data_gib() -> u32 {
    50
}

/// How the manifest names the box's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRef<'a> {
    Id(&'a str),
    Name(&'a str),
    Tag(&'a str),
}

impl MachineSpec {
    /// The instance profile `owner`'s boxes launch with (`{owner}` filled in).
    pub fn instance_profile_for(&self, owner: &super::name::Owner) -> Option<String> {
        self.instance_profile.as_ref().map(|p| p.replace(super::secret::OWNER, owner.as_str()))
    }

    /// The image, once [`Manifest::validate`] has checked exactly one is set.
    pub fn image(&self) -> ImageRef<'_> {
        match (&self.image_id, &self.image_name, &self.image_tag) {
            (Some(id), _, _) => ImageRef::Id(id),
            (None, Some(name), _) => ImageRef::Name(name),
            (None, None, Some(tag)) => ImageRef::Tag(tag),
            (None, None, None) => unreachable!("manifest validation requires an image"),
        }
    }
}
