//! workstation-hosts: the privileged laptop daemon that owns workstation's
//! block in /etc/hosts, and the protocol the `workstation` CLI speaks to it.
//!
//! `block` is the pure text splice, `hostsfile` the crash-safe write,
//! `agent` the desired state, `server` the socket and DNS following.

pub mod agent;
pub mod atomic;
pub mod block;
pub mod config;
pub mod flush;
pub mod hostsfile;
pub mod install;
pub mod names;
pub mod protocol;
pub mod resolve;
pub mod server;
