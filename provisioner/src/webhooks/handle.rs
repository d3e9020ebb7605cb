//! One callback, end to end: name, targets, fan-out, answer.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{deliver, targets, Delivery, FunctionUrlRequest, FunctionUrlResponse};
use crate::manifest::Manifest;
use crate::provider::Provider;

/// The answer to the third party, and what each box said.
#[derive(Debug, Serialize)]
pub struct Handled {
    pub name: String,
    pub deliveries: Vec<Delivery>,
    #[serde(skip)]
    pub response: FunctionUrlResponse,
}

/// Sends the callback to every running preview and team box. The answer
/// is 200 when a box took it (or none is running: nothing to retry for),
/// 502 when every box failed (the provider retries later, once, on its
/// own schedule), 404 for a name `[webhooks]` does not have.
pub async fn handle(provider: &dyn Provider, manifest: &Manifest, request: FunctionUrlRequest, timeout: Duration) -> Handled {
    let callback = match request.callback() {
        Ok(cb) => cb,
        Err(why) => return answer(String::new(), Vec::new(), 400, json!({"error": why})),
    };
    let name = callback.name.clone();
    if !manifest.webhooks.paths.contains_key(&name) {
        return answer(name.clone(), Vec::new(), 404, json!({"error": format!("no callback {name:?} in the manifest's [webhooks]")}));
    }
    let boxes = match provider.list(None).await {
        Ok(boxes) => boxes,
        Err(e) => return answer(name, Vec::new(), 503, json!({"error": format!("listing the boxes: {e}")})),
    };
    let targets = targets(&boxes, &manifest.webhooks, &name);
    let deliveries = deliver(&callback, &targets, timeout).await;
    let accepted = deliveries.iter().filter(|d| d.accepted()).count();
    let status = if deliveries.is_empty() || accepted > 0 { 200 } else { 502 };
    let body = json!({"targets": deliveries.len(), "accepted": accepted});
    answer(name, deliveries, status, body)
}

fn answer(name: String, deliveries: Vec<Delivery>, status: u16, body: serde_json::Value) -> Handled {
    Handled { name, deliveries, response: FunctionUrlResponse::json(status, &body) }
}
