//! A Lambda function URL request and response (payload format 2.0, as AWS
//! documents it in "Invoking Lambda function URLs"), and the callback it
//! carries.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlRequest {
    pub raw_path: String,
    #[serde(default)]
    pub raw_query_string: String,
    /// Lower-case names; a repeated header's values joined by commas.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// The body is base64 (a binary or non-UTF-8 body).
    #[serde(default)]
    pub is_base64_encoded: bool,
    pub request_context: RequestContext,
}

#[derive(Debug, Deserialize)]
pub struct RequestContext {
    pub http: Http,
}

#[derive(Debug, Deserialize)]
pub struct Http {
    pub method: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl FunctionUrlResponse {
    pub fn json(status_code: u16, body: &serde_json::Value) -> FunctionUrlResponse {
        FunctionUrlResponse { status_code, headers: [("content-type".into(), "application/json".into())].into(), body: body.to_string() }
    }
}

/// A callback as it is sent on: its name, and the request's method, query,
/// headers and exact body bytes.
#[derive(Debug, Clone)]
pub struct Callback {
    pub name: String,
    pub method: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Headers that describe the hop to the function, not the callback: the
/// client sets its own for the hop to the box.
fn is_hop_header(name: &str) -> bool {
    matches!(name, "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive" | "upgrade" | "te" | "trailer" | "expect")
        || name.starts_with("proxy-")
        || name.starts_with("x-forwarded-")
        || name.starts_with("x-amzn-")
}

impl FunctionUrlRequest {
    /// The callback: the name is the path's first segment; the body is
    /// the request's bytes (base64-decoded when the function URL encoded
    /// it), never parsed or re-encoded, so a signature over it still holds.
    pub fn callback(self) -> Result<Callback, String> {
        let name = self.raw_path.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
        let body = match (self.body, self.is_base64_encoded) {
            (None, _) => Vec::new(),
            (Some(text), false) => text.into_bytes(),
            (Some(text), true) => base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("the body is not base64: {e}"))?,
        };
        let headers = self.headers.into_iter().filter(|(k, _)| !is_hop_header(k)).collect();
        Ok(Callback { name, method: self.request_context.http.method, query: self.raw_query_string, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_and_signature_pass_as_they_came() {
        let event = serde_json::json!({
            "version": "2.0",
            "rawPath": "/stripe/extra",
            "rawQueryString": "a=1",
            "headers": {"stripe-signature": "t=1,v1=abc", "host": "x.lambda-url.us-east-1.on.aws", "x-forwarded-for": "1.2.3.4", "content-type": "application/json"},
            "body": base64::engine::general_purpose::STANDARD.encode(b"{\"id\": \"evt_1\",  \"x\":\"\xff\"}"),
            "isBase64Encoded": true,
            "requestContext": {"http": {"method": "POST", "path": "/stripe/extra"}},
        });
        let request: FunctionUrlRequest = serde_json::from_value(event).unwrap();
        let cb = request.callback().unwrap();
        assert_eq!((cb.name.as_str(), cb.method.as_str(), cb.query.as_str()), ("stripe", "POST", "a=1"));
        assert_eq!(cb.body, b"{\"id\": \"evt_1\",  \"x\":\"\xff\"}", "bytes as sent, spacing and all");
        assert_eq!(cb.headers, [("content-type".to_string(), "application/json".to_string()), ("stripe-signature".into(), "t=1,v1=abc".into())]);
    }
}
