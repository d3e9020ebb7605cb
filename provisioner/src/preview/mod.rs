//! `workstation preview`: a box per pull request, run by CI. `up` creates
//! (or finds) the box `pr-N`, puts the tree of one commit on it (the whole
//! `git archive` once, then only what changed), runs the manifest's install
//! and restart rules as `sync` does, and brings the stack up with its seeds
//! kept. Its tags (`workstation:preview`, `:ref`, `:expires`) say which
//! pull request, which commit, and when `reap` terminates it.
//!
//! A preview's hostnames are the manifest's with `pr-N` as a label
//! (`api.dev.example.com` -> `api.pr-12.dev.example.com`), so previews and
//! engineers' boxes never claim the same name.

pub mod dns;
mod error;
mod git;
pub mod github;
pub mod key;
mod manage;
mod names;
pub mod summary;
mod up;
mod upload;

pub use error::PreviewError;
pub use git::Repo;
pub use manage::{down, find, list, share, unshare, Down};
pub use names::{box_name, checkout_path, hostnames, labelled, manifest_for, url, PREVIEW_ENV, PREVIEW_URL_ENV};
pub use up::{deploy, up, PreviewReport, UpRequest, MAX_TTL};
pub use upload::{Mode, Uploaded};
