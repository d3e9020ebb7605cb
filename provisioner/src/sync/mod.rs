//! `workstation sync`: mirror the laptop's checkout onto the box with rsync
//! over workstation's own SSH config (pinned host key, StrictHostKeyChecking),
//! then run the installs and restarts the changed files call for.
//!
//! A change batch names the directories it touched; rsync then copies just
//! those, one level deep (`--files-from --dirs --delete`), so an edit costs
//! one small transfer, not a walk of the tree. New or renamed directories,
//! very large batches (a branch switch) and reconnections get a full sync.
//! `--delete` only ever applies below the synced directory on the box.

mod apply;
mod rsync;
mod rules;
pub mod session;

pub use apply::{apply, apply_with, Applied, Report};
pub use rsync::{control_path, parse_itemized, Batch, Sent, SyncError, Target, FULL_SYNC_ABOVE};
pub use rules::{Actions, Rules};
