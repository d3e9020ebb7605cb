//! workstation: provision Nix-reproducible remote development boxes.
//!
//! The library does the work; `src/cli/` only parses, calls it and prints.

pub mod activity;
pub use workstation_hosts::atomic;
pub mod boxidle;
pub mod boxside;
pub mod bringup;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod hosts;
pub mod idle;
pub mod image;
pub mod known_hosts;
pub mod layout;
pub mod lifecycle;
pub mod name;
pub mod onbox;
pub mod paths;
pub mod provider;
pub mod reap;
pub mod remote;
pub mod seed;
pub mod services;
pub mod settings;
pub mod ssh_config;
pub mod stores;
pub mod supervisor;
pub mod sync;
