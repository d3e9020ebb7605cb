//! `[webhooks]`: third-party callbacks (Stripe, GitHub, ...) that reach
//! every running preview and team box through one endpoint
//! (docs/preview.md, provisioner/src/webhooks/).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The box port callbacks go to when `port` is not set (a front's, usually:
/// stack/front.rs). Validation requires a service's port or front.
pub const DEFAULT_PORT: u16 = 80;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Webhooks {
    /// The port on the box that receives the callbacks.
    pub port: Option<u16>,
    /// Each callback's name (the endpoint's first path segment,
    /// `https://ENDPOINT/stripe`) and the path it is sent to on the box.
    #[serde(flatten)]
    pub paths: BTreeMap<String, String>,
}

impl Webhooks {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }
}
