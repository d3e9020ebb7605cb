//! workstation-hosts: the privileged laptop daemon that owns workstation's
//! block in /etc/hosts. What it speaks is `workstation-hosts-protocol`.
//!
//! `block` is the pure text splice, `hostsfile` the crash-safe write,
//! `agent` the desired state, `server` the socket and DNS following.

pub mod agent;
pub mod block;
pub mod config;
pub mod flush;
pub mod hostsfile;
pub mod install;
pub mod lease;
pub mod names;
pub mod resolve;
pub mod server;
