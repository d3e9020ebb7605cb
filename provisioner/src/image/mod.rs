//! The box image: what it is built from (`Inputs`, one AMI per inputs
//! and architecture), building it with the flake (`build`) and publishing
//! it as an AMI (`publish`).
//!
//! Publishing:
//!
//! The raw disk goes up as an EBS snapshot through the EBS direct APIs:
//! 512 KiB blocks, several in flight, blocks that are holes or all zeros
//! never sent (a fresh NixOS disk is mostly empty). RegisterImage then makes
//! the AMI. Its name is derived from the inputs (manifest hash, flake.lock
//! hash, architecture), so publishing the same inputs twice finds the first
//! AMI instead of making a second one; a snapshot completed by a run that
//! died before RegisterImage is reused the same way.

use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::{ArchitectureValues, BootModeValues};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::manifest::LoadedManifest;
use crate::provider::tags;

mod build;
mod publish;

pub use build::{build, disk_of, BuildError, Built};
pub use publish::{register_request, Published, Publisher, Upload};

/// The EBS direct APIs' block size.
pub const BLOCK: usize = 512 * 1024;
const GIB: u64 = 1 << 30;
/// NixOS's amazon image names its root device this way.
const ROOT_DEVICE: &str = "/dev/xvda";

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

    fn ec2(self) -> ArchitectureValues {
        match self {
            Arch::X86_64 => ArchitectureValues::X8664,
            Arch::Aarch64 => ArchitectureValues::Arm64,
        }
    }

    /// NixOS's amazon image boots x86_64 through GRUB in BIOS mode and
    /// aarch64 through UEFI (Graviton has no BIOS).
    fn boot_mode(self) -> BootModeValues {
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

/// What an image is built from; equal inputs make an equal image.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// The image line (`workstation:image` tag), e.g. "workstation".
    pub image: String,
    pub manifest_hash: String,
    pub flake_lock_hash: String,
    pub arch: Arch,
}

impl Inputs {
    pub fn key(&self) -> String {
        let text = format!("{}\n{}\n{}\n{}", self.image, self.manifest_hash, self.flake_lock_hash, self.arch.nix_system());
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// The AMI's name: unique per account and region, so it doubles as the
    /// idempotency key of RegisterImage.
    pub fn ami_name(&self) -> String {
        format!("{}-{}-{}", self.image, self.arch.nix_system(), self.key())
    }

    fn tags(&self) -> Vec<(&'static str, String)> {
        vec![
            (tags::IMAGE, self.image.clone()),
            (tags::MANIFEST_HASH, self.manifest_hash.clone()),
            (tags::FLAKE_LOCK_HASH, self.flake_lock_hash.clone()),
            (tags::IMAGE_INPUTS, self.key()),
        ]
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
    #[error("snapshot {id} did not complete within {minutes} minutes (state {state}); run publish again to resume")]
    SnapshotTimeout { id: String, minutes: u64, state: String },
    #[error("cannot tell the disk's architecture; pass --arch")]
    UnknownArch,
    #[error("cannot read {path} (the flake's lock file); pass --flake-lock PATH")]
    FlakeLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn api<E: std::error::Error>(op: &'static str) -> impl FnOnce(E) -> ImageError {
    move |e| ImageError::Api { op, message: aws_sdk_ec2::error::DisplayErrorContext(&e).to_string() }
}

impl Inputs {
    /// The inputs of a built disk: its architecture (given, else the nix
    /// system of the build, else this machine's), the manifest, and the
    /// flake's lock file (given, else flake.lock beside the manifest).
    pub fn of(image: String, manifest: &LoadedManifest, system: &str, arch: Option<Arch>, flake_lock: Option<PathBuf>) -> Result<Inputs, ImageError> {
        let arch = match (arch, system) {
            (Some(a), _) => a,
            (None, "x86_64-linux") => Arch::X86_64,
            (None, "aarch64-linux") => Arch::Aarch64,
            (None, _) => Arch::of_this_machine().ok_or(ImageError::UnknownArch)?,
        };
        let lock = flake_lock.unwrap_or_else(|| manifest.path.parent().map(|d| d.join("flake.lock")).unwrap_or_else(|| "flake.lock".into()));
        let flake_lock_hash = file_hash(&lock).map_err(|source| ImageError::FlakeLock { path: lock.display().to_string(), source })?;
        Ok(Inputs { image, manifest_hash: manifest.hash.clone(), flake_lock_hash, arch })
    }
}

/// sha256 of a file's bytes, hex: the flake.lock hash.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    Ok(hex::encode(Sha256::digest(std::fs::read(path)?)))
}
