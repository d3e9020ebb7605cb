//! Client of the hosts agent (`hosts-agent/`, a root daemon on the laptop):
//! points the manifest's hostnames at a box. `create` and `start` point them
//! at your box when the agent is installed (and say how to install it when
//! not); `share` points them at a colleague's box and needs the agent.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;
use workstation_hosts_protocol::{self as protocol, Request, DEFAULT_SOCKET};
pub use workstation_hosts_protocol::{ClientError, Flushed, NameStatus, Response, Status, Target};

pub struct HostsAgent {
    socket: PathBuf,
}

/// What pointing the hostnames did, for create/start reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Pointed {
    Pointed {
        names: Vec<String>,
        address: IpAddr,
        label: String,
        changed: bool,
        flushed: Vec<Flushed>,
    },
    /// The manifest lists no hostnames.
    NoHostnames,
    /// The agent was unreachable or refused; the box itself is fine.
    Skipped {
        reason: String,
    },
}

/// The label the agent shows for a box: "owner/name".
pub fn label(owner: &str, name: &str) -> String {
    format!("{owner}/{name}")
}

/// Names another agent's socket (tests, a second agent).
pub const SOCKET_ENV: &str = "WORKSTATION_HOSTS_SOCKET";

impl HostsAgent {
    /// `WORKSTATION_HOSTS_SOCKET`, else the agent's default socket.
    pub fn from_env() -> Self {
        HostsAgent { socket: std::env::var_os(SOCKET_ENV).map_or_else(|| DEFAULT_SOCKET.into(), PathBuf::from) }
    }

    pub async fn point(&self, names: &[String], address: IpAddr, label: &str) -> Result<Pointed, ClientError> {
        let request = Request::Point { names: names.to_vec(), to: Target::Address(address), label: Some(label.to_owned()) };
        let r = protocol::call(&self.socket, &request).await?;
        Ok(Pointed::Pointed { names: names.to_vec(), address, label: label.to_owned(), changed: r.changed, flushed: r.flushed })
    }

    pub async fn clear(&self, names: &[String]) -> Result<Response, ClientError> {
        protocol::call(&self.socket, &Request::Clear { names: Some(names.to_vec()) }).await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        Ok(protocol::call(&self.socket, &Request::Status).await?.status.unwrap_or_default())
    }

    /// Points `names` at a box for create/start: never an error, since the
    /// box is usable without it.
    pub async fn point_best_effort(&self, names: &[String], address: Option<IpAddr>, label: &str) -> Pointed {
        let Some(address) = address else {
            return Pointed::Skipped { reason: "the box has no address".into() };
        };
        if names.is_empty() {
            return Pointed::NoHostnames;
        }
        self.point(names, address, label).await.unwrap_or_else(|e| Pointed::Skipped { reason: e.to_string() })
    }

    /// Clears the names currently pointed at the box labelled `label`.
    pub async fn unpoint(&self, label: &str) -> Result<Vec<String>, ClientError> {
        let names: Vec<String> = self.status().await?.names.into_iter().filter(|n| n.label.as_deref() == Some(label)).map(|n| n.name).collect();
        if !names.is_empty() {
            self.clear(&names).await?;
        }
        Ok(names)
    }
}
