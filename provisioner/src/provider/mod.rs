//! Where boxes come from. `aws` launches EC2 instances; `local` makes boxes
//! out of network namespaces on this machine. Everything above this module
//! (create, pinning, SSH) is the same for both.

mod api;
pub mod aws;
pub mod data;
mod error;
pub mod host;
mod kind;
pub mod local;
pub mod machine;
mod model;
pub mod netns;
pub mod pushed_keys;
pub mod queues;
pub mod tags;
pub mod usage;

pub use api::Provider;
pub use data::{DataVolume, ImageSummary, RootReplaced};
pub use error::{LocalError, ProviderError, Result};
pub use kind::{AddressKind, LocalNetwork, ProviderKind};
pub use model::{is_commit_id, parse_time, BoxInfo, BoxState, LaunchSpec, Launched, Preview, TeamEnv};
