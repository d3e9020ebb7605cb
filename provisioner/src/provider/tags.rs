//! Every EC2 tag key workstation reads or writes. A box's identity and
//! metadata live on its instance (the local provider keeps the same keys in
//! its records); published images carry theirs on the AMI.
//!
//! A tag that a box or an engineer can write is a claim, not a fact: the
//! readers (idle policy, host key pinning, image lookup) check values.

pub const OWNER: &str = "workstation:owner";
pub const NAME: &str = "workstation:name";
pub const MANIFEST_HASH: &str = "workstation:manifest-hash";
pub const HOST_KEY: &str = "workstation:host-key";
/// RFC 3339; written by the box when it sees activity (rate-limited).
pub const LAST_ACTIVE: &str = "workstation:last-active";
/// RFC 3339; `workstation keep --for` (capped by idle.max_keep).
pub const KEEP_UNTIL: &str = "workstation:keep-until";
/// Who stopped the box and why (the box itself, or `reap`).
pub const STOPPED_BY: &str = "workstation:stopped-by";
/// The box's hours by month (provider/usage.rs), written by each start
/// through workstation; for `cost`'s estimate only.
pub const USAGE: &str = "workstation:usage";
/// "unfinished" from the start of a bring-up (create, start, up, a wake)
/// until it ends healthy, then "finished" (with [`MANIFEST_HASH`] set to the
/// manifest it brought up): `status` and `doctor` say when a box's stack
/// was left half made.
pub const BRING_UP: &str = "workstation:bring-up";
/// "true": the owner lets colleagues start the box (`share --start`);
/// written by the owner with `share --allow-start`.
pub const SHAREABLE: &str = "workstation:shareable";

/// The image the box's root runs: set at launch, and by `upgrade` once a
/// root volume replacement succeeded (EC2 keeps the launch image in the
/// instance's ImageId). Only for drift: nothing trusts it for access.
pub const IMAGE_ID: &str = "workstation:image-id";
/// On an instance launched to reattach a kept data volume: that volume,
/// which is attached once the instance runs (EC2 cannot attach an existing
/// volume at launch).
pub const DATA_VOLUME: &str = "workstation:data-volume";

/// A preview box's pull request number (`workstation preview`).
pub const PREVIEW: &str = "workstation:preview";
/// The full commit id a preview box's tree is at.
pub const REF: &str = "workstation:ref";
/// RFC 3339: when `reap` terminates the preview box.
pub const EXPIRES: &str = "workstation:expires";

/// A team box's team (`workstation env up --team`): the engineers whose
/// principal tag `team` has this value may push their keys to it
/// (terraform/iam.tf, TeamBoxesByInstanceConnect).
pub const TEAM: &str = "workstation:team";
/// A team box's environment name (`env up staging`); its commit is [`REF`].
pub const ENV: &str = "workstation:env";

/// On AMIs: which image line an AMI belongs to; `box.image_tag` selects by it.
pub const IMAGE: &str = "workstation:image";
/// On AMIs: what was built (the build's store path, or `sha256:` of a bare
/// disk's data). [`MANIFEST_HASH`] on an AMI is the manifest baked in.
pub const IMAGE_CONTENT: &str = "workstation:image-content";
/// On AMIs: the nixpkgs revision the image was built from.
pub const NIXPKGS_REV: &str = "workstation:nixpkgs";
/// The source commit an image was built from (`image publish --commit`).
pub const SOURCE_COMMIT: &str = "workstation:commit";
/// On AMIs: hash of the image line, content and architecture; also in the AMI's name.
pub const IMAGE_INPUTS: &str = "workstation:image-inputs";
