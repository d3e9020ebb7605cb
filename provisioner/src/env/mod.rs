//! `workstation env`: a team's shared box. `env up staging --team payments
//! --ref main` (CI, on every push) makes or updates box `payments-staging`
//! with the preview machinery: the tree of one commit, only what changed
//! after the first run, the manifest's installs and restarts, the stack up
//! with its data kept. Its owner is the team's deployer, `payments-ci`:
//! only that identity makes, updates and takes down the team's boxes. Its tags (`workstation:team`, `:env`, `:ref`) say
//! whose it is and what it runs.
//!
//! Engineers reach it with their own key, pushed for a minute through EC2
//! Instance Connect (only members of its team may: terraform/iam.tf), and
//! the box records every login and personal intercept (boxside/access.rs);
//! `env status` shows them with the routes in place.

mod error;
mod manage;
mod names;
mod up;

pub use error::EnvError;
pub use manage::{down, find, list, share, status, unshare, EnvStatus};
pub use names::{deployer, EnvRef, TEAM_ENV};
pub use up::{up, EnvReport, UpRequest};
