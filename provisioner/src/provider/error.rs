//! What can go wrong asking a provider.

use super::aws::failure::AwsFailure;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{operation} failed: {message}")]
    Api { operation: &'static str, message: String },
    #[error(transparent)]
    Aws(#[from] AwsFailure),
    #[error("box {id} not found (it may have been destroyed; `workstation list` shows what exists)")]
    NotFound { id: String },
    #[error("no image {name} found; check box.image_id/image_name/image_tag in the manifest, or publish the image with `workstation image publish`")]
    NoImage { name: String },
    #[error("image {id} carries the image line's tag but is not a published image: {why}. Nothing was launched; publish the image with `workstation image publish`, or name it with box.image_id if you trust it")]
    UnpublishedImage { id: String, why: String },
    #[error("key pair {name} exists but holds {reason}: someone else imported it under your name, and a box launched with it would let them in. Nothing was launched; ask the platform team to delete it (`aws ec2 delete-key-pair --key-name {name}`), then create again")]
    KeyPairMismatch { name: String, reason: &'static str },
    #[error("the local provider needs root (it creates network namespaces); run with sudo, or use --provider aws")]
    NeedsRoot,
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Local(String),
    #[error("box.hibernate: {0}")]
    Hibernation(String),
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;
