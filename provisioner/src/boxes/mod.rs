//! A box's life as the laptop sees it: create, start, stop, destroy, the
//! stack on it, reaching it over SSH, the checks of `doctor`, and the steps
//! of `init`. [`Context`] is what every verb needs.

pub mod access;
pub mod bring_up;
mod check;
mod context;
pub mod create;
pub mod data;
pub mod doctor;
pub mod dotfiles;
pub mod drift;
mod error;
pub mod init;
mod platform_checks;
pub mod power;
mod secrets;
pub mod share;
pub mod upgrade;

pub use bring_up::Snapshots;
pub use context::{BoxStatus, Context, SeedAccess, SshLogin};
pub use create::{CreateReport, Ready};
pub use error::LifecycleError;
pub use power::{Started, Woken};
pub use secrets::SecretStore;
