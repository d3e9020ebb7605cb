//! What can go wrong with a box, as the laptop sees it.

use std::path::PathBuf;
use std::time::Duration;

use crate::laptop::hosts;
use crate::provider::ProviderError;
use crate::ssh::known_hosts::PinError;
use crate::ssh::remote::RemoteError;
use crate::ssh::ssh_config::SshConfigError;
use crate::stack::seed::SeedError;
use crate::stack::shell::ShellError;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(
        "{owner} already has {count} boxes ({boxes}) and box.max_boxes_per_owner allows {max}; \
         destroy one first (`workstation destroy NAME`), or ask the platform team to raise the limit"
    )]
    TooManyBoxes { owner: String, count: usize, max: u32, boxes: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(
        "box {name} ({id}) has no data volume (made before data volumes): its data is on the root an upgrade replaces. \
         Copy what you need off it, then `workstation destroy {name} --purge` and `workstation create {name}`"
    )]
    NoDataVolume { name: String, id: String },
    #[error("box {name} ({id}) did not publish the host key of its new root within {waited:?}; run `workstation upgrade {name}` again, or look at the instance's console output")]
    NoNewHostKey { name: String, id: String, waited: Duration },
    #[error(
        "box {name} ({id}) has a data volume, but its data is not on it (its image predates data volumes, or the volume did not mount): \
         an upgrade would delete the root that holds it. Nothing was changed; see `workstation doctor {name}`, or copy what you need off it first"
    )]
    DataNotOnVolume { name: String, id: String },

    #[error("cannot keep this launch's nonce in {}: {source}; check that the directory is writable", .dir.display())]
    LaunchState { dir: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Boxed: russh's errors are large and every other variant is small.
    #[error(transparent)]
    Remote(Box<RemoteError>),
    #[error(transparent)]
    SshConfig(#[from] SshConfigError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Seed(#[from] SeedError),
    #[error(transparent)]
    Secrets(#[from] crate::laptop::secrets::LaptopSecretsError),
    #[error("no box named {name} for owner {owner} (destroyed, or never created); create it with `workstation create {name}`, or see your boxes with `workstation list`")]
    UnknownBox { owner: String, name: String },
    #[error("{owner} has no box named {name}; `workstation list --all` shows every owner's boxes, and `--box NAME` picks one of {owner}'s")]
    UnknownShared { owner: String, name: String },
    #[error("box {name} ({id}) was not {what} after {waited:?} (state: {state}); check it in the EC2 console or run `workstation status {name}`")]
    Timeout { name: String, id: String, what: &'static str, waited: Duration, state: &'static str },
    #[error("box {name} ({id}) has not published its host key yet; it does so at first boot (`workstation create {name}` waits for it)")]
    NoHostKey { name: String, id: String },
    #[error("{owner}'s box {name} is {state}, not running; pass --start to start it (if {owner} lets colleagues start it: `workstation share --allow-start`), or ask {owner} to run `workstation start {name}`")]
    NotRunning { owner: String, name: String, state: &'static str },
    #[error("{owner} has not let colleagues start box {name}; ask {owner} to run `workstation share --allow-start --box {name}` (or to start it), or ask the platform team")]
    NotShareable { owner: String, name: String },
    #[error("{refused}; the box's sshd says: {why}")]
    KeyRefused { refused: Box<RemoteError>, why: String },
    #[error("box {name} is {state}; start it with `workstation start {name}`")]
    Stopped { name: String, state: &'static str },
    #[error(transparent)]
    Hosts(#[from] hosts::ClientError),
    #[error("box {name} ({id}) has no address to connect to")]
    NoAddress { name: String, id: String },
    #[error("box {name} ({id}) disappeared while {what} (state: {state})")]
    Gone { name: String, id: String, what: &'static str, state: &'static str },
    #[error("--for {} is longer than idle.max_keep ({}); ask for less, or raise idle.max_keep in workstation.toml", humantime::format_duration(*.asked), humantime::format_duration(*.max))]
    KeepTooLong { asked: Duration, max: Duration },
    #[error("cannot read your SSH public key {path}; create a key with `ssh-keygen -t ed25519` or set ssh_key in ~/.config/workstation/config.toml")]
    PublicKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<RemoteError> for LifecycleError {
    fn from(e: RemoteError) -> Self {
        LifecycleError::Remote(Box::new(e))
    }
}
