//! Sending one callback to every target at once, each with its own
//! timeout, once.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use super::Callback;

/// How long one box has to answer. Stripe waits about 10 s for its
/// endpoint; every box is tried at once, so the whole fan-out ends within
/// this.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A box a callback goes to.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    #[serde(rename = "box")]
    pub box_name: String,
    pub address: IpAddr,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn url(&self, query: &str) -> String {
        let host = match self.address {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let query = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("http://{host}:{}{}{query}", self.port, self.path)
    }
}

/// What one box answered.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    #[serde(rename = "box")]
    pub box_name: String,
    /// Its HTTP status, if it answered in time.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub ms: u64,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends `callback` to every target at once, each bounded by `timeout`.
pub async fn deliver(callback: &Callback, targets: &[Target], timeout: Duration) -> Vec<Delivery> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(timeout));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let body = Bytes::from(callback.body.clone());
    let sends = targets.iter().map(|target| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(timeout, send(&client, callback, target, body)).await;
            let (status, error) = match outcome {
                Ok(Ok(status)) => (Some(status), None),
                Ok(Err(e)) => (None, Some(e)),
                Err(_) => (None, Some(format!("no answer within {}", humantime::format_duration(timeout)))),
            };
            Delivery { box_name: target.box_name.clone(), status, error, ms: started.elapsed().as_millis() as u64 }
        }
    });
    futures::future::join_all(sends).await
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn send(client: &HttpClient, callback: &Callback, target: &Target, body: Bytes) -> Result<u16, String> {
    let mut request = hyper::Request::builder().method(callback.method.as_str()).uri(target.url(&callback.query));
    // A header HTTP cannot carry on is left out rather than failing the
    // callback for every box.
    for (name, value) in &callback.headers {
        if let (Ok(name), Ok(value)) = (hyper::header::HeaderName::from_bytes(name.as_bytes()), hyper::header::HeaderValue::from_str(value)) {
            request = request.header(name, value);
        }
    }
    let request = request.body(Full::new(body)).map_err(|e| format!("the callback cannot be sent on: {e}"))?;
    let response = client.request(request).await.map_err(|e| format!("{e:#}"))?;
    Ok(response.status().as_u16())
}
