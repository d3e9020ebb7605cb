//! SSH to boxes: pinned host keys, the russh session, and the OpenSSH
//! configuration that lets plain `ssh`, rsync and editors use the same pins.

pub mod known_hosts;
pub mod remote;
pub mod ssh_config;
