//! `workstation.toml`: the manifest that declares a box.
//!
//! The CLI, the Nix image (through `builtins.fromTOML`) and the box-side
//! commands all read this one file. Parsing is strict (`deny_unknown_fields`,
//! so a typo is an error rather than a silently ignored setting), and
//! [`Manifest::validate`] checks what types cannot, naming each field and
//! the fix.

pub mod deployed;
mod file;
mod idle;
mod machine;
pub mod name;
mod queue;
pub mod secret;
pub mod service;
mod store;
mod sync;
mod validate;
mod webhooks;

pub use deployed::S3Url;
pub use file::{ConfigError, LoadedManifest, Manifest, ParseError, Problem, UnknownName, FILE_NAME};
pub use idle::{default_idle_timeout, IdlePolicy, Schedule, ScheduleAction};
pub use machine::{ImageRef, MachineSpec};
pub use queue::QueuePlan;
pub use secret::SecretRef;
pub use service::{Front, HealthCheck, Service, ServiceLogs};
pub use store::{SeedFormat, SeedSource, Store, StoreKind};
pub use sync::SyncSpec;
pub use webhooks::Webhooks;
