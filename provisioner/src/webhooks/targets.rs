//! Which boxes a callback goes to.

use crate::manifest::Webhooks;
use crate::provider::{BoxInfo, BoxState};

use super::Target;

/// Every running preview and team box, at its private address (the
/// function runs in the VPC) or, without one, its address, on the
/// manifest's port and the callback's path. Engineers' own boxes are not
/// targets: their traffic is their own.
pub fn targets(boxes: &[BoxInfo], webhooks: &Webhooks, name: &str) -> Vec<Target> {
    let Some(path) = webhooks.paths.get(name) else { return Vec::new() };
    let mut out: Vec<Target> = boxes
        .iter()
        .filter(|b| b.state == BoxState::Running && (b.preview.is_some() || b.team.is_some()))
        .filter_map(|b| {
            let address = b.private_address.or(b.address)?;
            Some(Target { box_name: b.name.clone(), address, port: webhooks.port(), path: path.clone() })
        })
        .collect();
    out.sort_by(|a, b| a.box_name.cmp(&b.box_name));
    out
}
