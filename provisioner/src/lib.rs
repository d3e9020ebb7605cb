//! workstation: provision Nix-reproducible remote development boxes.
//!
//! The library does the work; `src/cli/` only parses, calls it and prints.
//! Each folder is one role (docs/architecture.md has the map).

pub mod admin;
pub mod boxes;
pub mod boxside;
pub mod child;
pub mod cli;
pub mod cost;
pub mod env;
pub mod idle;
pub mod image;
pub mod intercept;
pub mod laptop;
pub mod logging;
pub mod manifest;
pub mod poll;
pub mod preview;
pub mod progress;
pub mod provider;
pub mod ssh;
pub mod stack;
pub mod sync;
pub mod webhooks;
