//! The box image: what it is built from (`Inputs`, one AMI per inputs
//! and architecture), building it with the flake (`build`) and publishing
//! it as an AMI (`publish`).
//!
//! Publishing:
//!
//! The raw disk goes up as an EBS snapshot through the EBS direct APIs:
//! 512 KiB blocks, several in flight, blocks that are holes or all zeros
//! never sent (a fresh NixOS disk is mostly empty). RegisterImage then makes
//! the AMI. Its name is derived from what was built (the build result's
//! store path, or a bare disk's data) and the architecture, so publishing
//! the same image twice finds the first AMI instead of making a second one,
//! and a changed image is always a new AMI; a snapshot completed by a run
//! that died before RegisterImage is reused the same way.

mod build;
mod inputs;
mod publish;

pub use build::{build, disk_of, Baked, BuildError, Built, Disk};
pub use inputs::{Arch, ImageError, Inputs, BLOCK};
pub use publish::{data_digest, register_request, Published, Publisher, Upload};
