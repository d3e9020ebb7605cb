//! What the `workstation` binary does when it runs on the box itself:
//! publish the host key at first boot, the per-minute idle check with the
//! activity signals it reads (both act on the box through one client,
//! [`self_api::SelfApi`]), start programs with their secrets, and run the
//! HTTP proxy in front of services with its personal routes and data branches,
//! admit (and record) the keys engineers push to a team box, make a
//! local box's queues in its SQS server, load a mysql seed on several
//! sessions, and prepare it to hibernate.

pub mod access;
pub mod activity;
pub mod branch;
pub mod front;
pub mod held;
pub mod hibernation;
pub mod host_key;
pub mod idle_check;
pub mod launch;
pub mod mysql_load;
pub mod queues;
pub mod route;
pub mod secret_read;
pub mod self_api;

#[derive(Debug, thiserror::Error)]
pub enum BoxSideError {
    #[error("cannot read host key {path}; is sshd's key generated yet?")]
    ReadKey {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an OpenSSH public key")]
    BadKey { path: std::path::PathBuf },
    #[error("cannot ask the instance metadata service for {what} (IMDSv2): {message}")]
    Metadata { what: &'static str, message: String },
    #[error("tagging instance {id} with its host key failed: {message}")]
    Tag { id: String, message: String },
    #[error("EC2 {operation} for this instance failed: {message}")]
    Api { operation: &'static str, message: String },
    #[error("{0}")]
    Io(String),
}
