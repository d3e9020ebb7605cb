//! What can go wrong asking a provider.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

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
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("you may not log in to {what}: AWS refused your key ({detail}). Team boxes admit the engineers whose `team` tag (from your identity provider) is the box's team; ask the platform team to add you, or use `workstation env list` to see whose box it is")]
    NotYourTeam { what: String, detail: String },
    #[error("box.hibernate: {0}")]
    Hibernation(String),
    #[error("{field} {instance_type}: {why}; choose another type")]
    InstanceType { field: &'static str, instance_type: String, why: String },
    /// EC2's InsufficientInstanceCapacity: none of that instance type left
    /// in that Availability Zone for now (EC2 User Guide, "Insufficient
    /// instance capacity": wait a few minutes, or try another zone or
    /// instance type).
    #[error("EC2 has no {instance_type} capacity {place} right now (InsufficientInstanceCapacity); {fix}")]
    NoCapacity { instance_type: String, place: String, fix: String },
    /// EC2's Unsupported on a launch: the type is not offered (or is
    /// constrained) in that zone.
    #[error(
        "EC2 does not offer {instance_type} {place} (Unsupported: {said}); nothing was launched: list a subnet in another zone in box.subnets, or another type in box.fallback_instance_types (tried in order)"
    )]
    NotOffered { instance_type: String, place: String, said: String },
    #[error("data volume {id}: {why}")]
    Volume { id: String, why: String },
    #[error("replacing the root volume of box {id}: {task} {}", root_failure(.state))]
    RootReplacement { id: String, task: String, state: String },
}

pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

/// A failed AWS request of `operation` (any service's SDK) as a
/// [`ProviderError`], explained (aws/failure.rs): for `map_err`.
pub(super) fn aws_failure<E, R>(operation: &'static str) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, R>) -> ProviderError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    move |e| ProviderError::Aws(AwsFailure::of(operation, &e))
}

/// What a root replacement task's end state means for the box, and what to do.
fn root_failure(state: &str) -> String {
    match state {
        "failed" => "failed; EC2 put the old root back: the box runs its old image, with its data volume. Run `workstation upgrade` again".into(),
        "failed-detached" => {
            "failed and left the instance without a root volume; its data volume is untouched. Ask the platform team to look at the task in the EC2 console"
                .into()
        }
        other => format!("is {other}; it goes on without us: run `workstation upgrade` again to wait for it"),
    }
}

/// What goes wrong with boxes on this machine (the local provider).
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("local boxes record no {tag} tag")]
    NoSuchTag { tag: String },
    #[error("{} is corrupt ({detail}); remove the box directory to forget the box", .path.display())]
    CorruptRecord { path: PathBuf, detail: String },
    #[error("path {} is not UTF-8", .path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{0}")]
    Root(#[from] crate::stack::layout::BadRoot),
    #[error(
        "no free address in local.subnet {subnet}: all {held} are held by local boxes on this machine (any user's); \
         destroy a box (`workstation list`), or set a larger or different [local] subnet in ~/.config/workstation/config.toml"
    )]
    NoFreeAddress { subnet: Ipv4Net, held: usize },
    #[error("address {address} is leased to another local box ({}); destroy and re-create this box to get a free address", .holder.display())]
    Leased { address: Ipv4Addr, holder: PathBuf },
    #[error("address {address} is not a box address in {network} (the bridge owns {gateway})")]
    NotABoxAddress { address: Ipv4Addr, network: Ipv4Net, gateway: Ipv4Addr },
    #[error(
        "address {address} of box {name} is already held by network namespace {namespace} (another user's box on this machine?); \
         destroy and re-create this box to get a free address"
    )]
    AddressHeld { address: Ipv4Addr, name: String, namespace: String },
    #[error("sshd of box {name} did not accept connections on {address} within {waited:?}; see `ip netns exec {namespace} ss -ltn`")]
    SshdNotReady { name: String, address: std::net::SocketAddr, waited: Duration, namespace: String },
    #[error(
        "the local box directory {} is below {} (mode {mode:o}, owner uid {uid}), which another user could change, and root's sshd takes the box's login key from it; \
         set HOME (or XDG_STATE_HOME) to a directory only you can write",
        .dir.display(),
        .below.display()
    )]
    Untrusted { dir: PathBuf, below: PathBuf, mode: u32, uid: u32 },
}
