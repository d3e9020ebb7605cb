//! What an image is: its line, architecture and content (`Inputs`), the
//! tags and AMI name derived from them, and what can go wrong publishing it.

use aws_sdk_ec2::types::{ArchitectureValues, BootModeValues};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::provider::aws::failure::AwsFailure;
use crate::provider::tags;

/// The EBS direct APIs' block size.
pub const BLOCK: usize = 512 * 1024;
pub(super) const GIB: u64 = 1 << 30;
/// NixOS's amazon image names its root device this way.
pub(super) const ROOT_DEVICE: &str = "/dev/xvda";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn of_this_machine() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    pub(super) fn ec2(self) -> ArchitectureValues {
        match self {
            Arch::X86_64 => ArchitectureValues::X8664,
            Arch::Aarch64 => ArchitectureValues::Arm64,
        }
    }

    /// NixOS's amazon image boots x86_64 through GRUB in BIOS mode and
    /// aarch64 through UEFI (Graviton has no BIOS).
    pub(super) fn boot_mode(self) -> BootModeValues {
        match self {
            Arch::X86_64 => BootModeValues::LegacyBios,
            Arch::Aarch64 => BootModeValues::Uefi,
        }
    }

    /// The nix system the flake builds for.
    pub fn nix_system(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux",
            Arch::Aarch64 => "aarch64-linux",
        }
    }
}

/// What an AMI is: an image line, an architecture, and the image built.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// The image line (`workstation:image` tag), e.g. "workstation".
    pub image: String,
    pub arch: Arch,
    /// What was built: the build result's store path, or `sha256:` of a
    /// bare disk file's data ([`data_digest`]).
    pub content: String,
    /// What the build baked in, when it says (our flake's `ami` does).
    pub manifest_hash: Option<String>,
    pub nixpkgs: Option<String>,
    /// The repository commit it was built from (CI's), when told: a tag,
    /// not part of [`Inputs::key`] (the same build from two commits is one
    /// image).
    pub commit: Option<String>,
}

impl Inputs {
    pub fn key(&self) -> String {
        let text = format!("{}\n{}\n{}", self.image, self.content, self.arch.nix_system());
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// The AMI's name: unique per account and region, so it doubles as the
    /// idempotency key of RegisterImage.
    pub fn ami_name(&self) -> String {
        format!("{}-{}-{}", self.image, self.arch.nix_system(), self.key())
    }

    /// Only what is known: a bare disk has no manifest tag rather than the
    /// hash of whichever manifest is on the command line.
    pub(super) fn tags(&self) -> Vec<(&'static str, String)> {
        let mut tags = vec![(tags::IMAGE, self.image.clone()), (tags::IMAGE_INPUTS, self.key()), (tags::IMAGE_CONTENT, self.content.clone())];
        tags.extend(self.manifest_hash.clone().map(|h| (tags::MANIFEST_HASH, h)));
        tags.extend(self.nixpkgs.clone().map(|r| (tags::NIXPKGS_REV, r)));
        tags.extend(self.commit.clone().map(|c| (tags::SOURCE_COMMIT, c)));
        tags
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read the disk image {path}: {source}")]
    Disk { path: String, source: std::io::Error },
    #[error("the disk image {path} is empty; build it with `workstation image build`")]
    EmptyDisk { path: String },
    #[error("{op} failed: {message}")]
    Api { op: &'static str, message: String },
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    #[error("snapshot {id} did not complete within {minutes} minutes (state {state}); run publish again to resume")]
    SnapshotTimeout { id: String, minutes: u64, state: String },
    #[error("cannot tell the disk's architecture; pass --arch")]
    UnknownArch,
    #[error("the build's nix-support/workstation-image.json has an invalid {field} ({value:?}); rebuild with `workstation image build`")]
    Baked { field: &'static str, value: String },
}

pub(super) fn api<E, R>(op: &'static str) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, R>) -> ImageError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    move |e| ImageError::Aws(AwsFailure::of(op, &e))
}
