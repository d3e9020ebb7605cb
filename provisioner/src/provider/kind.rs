//! Which provider, and the settings each provider is handed (the laptop's
//! settings file holds them: `laptop::settings`).

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// EC2 instances through the AWS API.
    Aws,
    /// Network namespaces on this machine (needs root).
    Local,
}

/// Which of an instance's addresses the laptop connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    /// The public IPv4 address, falling back to the private one.
    #[default]
    Public,
    /// The private address (laptop on the VPC through a VPN).
    Private,
}

/// The local provider's network: one bridge that owns `network`, so no
/// packet to those addresses leaves the machine; boxes get addresses from
/// `subnet` (inside `network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNetwork {
    pub bridge: String,
    pub network: Ipv4Net,
    pub subnet: Ipv4Net,
}

impl Default for LocalNetwork {
    fn default() -> Self {
        let network: Ipv4Net = "10.77.0.0/16".parse().expect("constant");
        Self { bridge: "wsbr0".into(), network, subnet: "10.77.1.0/24".parse().expect("constant") }
    }
}
