//! `[services.NAME]`: programs run under supervisord, with their logs and health checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub command: String,
    pub directory: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Variables whose values the box reads when the program starts, from
    /// where each reference says (`STRIPE_KEY = "ssm:/workstation/shared/stripe"`);
    /// never written anywhere (docs/engineer.md, "Secrets").
    #[serde(default)]
    pub secrets: BTreeMap<String, super::SecretRef>,
    pub user: Option<String>,
    #[serde(default = "yes")]
    pub autorestart: bool,
    /// Services started (and healthy) before this one.
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
    pub health: Option<HealthCheck>,
    #[serde(default)]
    pub logs: ServiceLogs,
    /// Run in the synced checkout on the box when a file matching
    /// `install_on` changed (e.g. "npm ci"), then restart this service.
    pub install: Option<String>,
    /// Globs relative to the checkout, e.g. ["package-lock.json"].
    #[serde(default)]
    pub install_on: Vec<String>,
    /// Globs whose changes restart this service, e.g. ["src/**"].
    #[serde(default)]
    pub restart_on: Vec<String>,
    /// An HTTP proxy (nginx) on the box in front of this service, where
    /// personal intercepts (`intercept --header`, `--mirror`) add routes.
    pub front: Option<Front>,
}

/// The supervisord program of the box's proxy in front of services.
pub const FRONT_PROGRAM: &str = "ws-front";

/// `front = { port = 8080, to = 18080 }`: clients (other services, the
/// laptop's hostnames) use `port`, where the box's proxy listens; the
/// service itself listens on `to`, one of its `ports` (default: its only one).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Front {
    pub port: u16,
    pub to: Option<u16>,
}

impl Service {
    /// The port the front proxies to: `front.to`, else the service's only port.
    pub fn front_target(&self) -> Option<(u16, u16)> {
        let front = self.front?;
        let to = front.to.or_else(|| (self.ports.len() == 1).then(|| self.ports[0]))?;
        Some((front.port, to))
    }
}

fn yes() -> bool {
    true
}

/// Where a program's output goes: `<box root>/logs/<name>.log` (stdout and
/// stderr merged, in order), rotated by supervisord.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogs {
    /// Rotate when the log reaches this size.
    #[serde(default = "default_log_max_mb")]
    pub max_mb: u32,
    /// Rotated files kept.
    #[serde(default = "default_log_backups")]
    pub backups: u32,
}

fn default_log_max_mb() -> u32 {
    50
}
fn default_log_backups() -> u32 {
    5
}

impl Default for ServiceLogs {
    fn default() -> Self {
        Self { max_mb: default_log_max_mb(), backups: default_log_backups() }
    }
}

/// Exactly one of `http` (with `port`), `tcp` or `command`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path answered with 2xx, e.g. "/healthz".
    pub http: Option<String>,
    pub port: Option<u16>,
    /// TCP port that accepts connections.
    pub tcp: Option<u16>,
    /// Shell command that exits 0.
    pub command: Option<String>,
}
