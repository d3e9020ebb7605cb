//! workstation-hosts-protocol: what the `workstation` CLI and the hosts
//! agent say to each other, so the CLI links this and not the daemon; and
//! the crash-safe file write both use.
//!
//! The agent's protocol: one JSON object per line over a Unix socket, one
//! request and one response per connection. Every message carries `"v"`; an
//! agent refuses versions it does not speak, and unknown operations or
//! fields, with an error that says so.
//!
//! ```text
//! > {"v":1,"op":"point","names":["api.dev"],"to":{"address":"10.0.0.5"},"label":"alice/dev"}
//! < {"v":1,"ok":true,"changed":true,"write":"renamed","flushed":[],"status":{...}}
//! > {"v":1,"op":"clear"}              (every name; or "names":[...])
//! > {"v":1,"op":"status"}
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

pub mod atomic;

pub const VERSION: u32 = 1;
/// Longest request line the agent reads.
pub const MAX_REQUEST: u64 = 64 * 1024;

#[cfg(target_os = "macos")]
pub const DEFAULT_SOCKET: &str = "/var/run/workstation-hosts/agent.sock";
#[cfg(not(target_os = "macos"))]
pub const DEFAULT_SOCKET: &str = "/run/workstation-hosts/agent.sock";

/// Where names point: a fixed address, or a DNS name the agent resolves
/// and follows (a box whose address changes across stop/start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Target {
    Address(IpAddr),
    Dns(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Address(a) => write!(f, "{a}"),
            Target::Dns(d) => write!(f, "{d} (DNS)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Point `names` at `to`; `label` says whose box it is, for status.
    Point {
        names: Vec<String>,
        to: Target,
        #[serde(default)]
        label: Option<String>,
    },
    /// Stop pointing `names` (all names when absent) anywhere.
    Clear {
        #[serde(default)]
        names: Option<Vec<String>>,
    },
    Status,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the hosts file changed.
    #[serde(default)]
    pub changed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteMode>,
    /// Resolver caches flushed after the change, and how it went.
    #[serde(default)]
    pub flushed: Vec<Flushed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    pub fn error(message: impl Into<String>) -> Self {
        Response { v: VERSION, ok: false, error: Some(message.into()), ..Default::default() }
    }
}

/// How a write reached the hosts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// The file already said this.
    Unchanged,
    /// Temp file + rename.
    Renamed,
    /// Bind-mounted file: padded in-place write.
    InPlace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    pub cache: String,
    /// "ok", or what went wrong.
    pub outcome: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub hosts_file: PathBuf,
    pub names: Vec<NameStatus>,
    /// What the agent's block in the hosts file says now, read at the time
    /// of the answer: someone may have edited it since the agent wrote it.
    #[serde(default)]
    pub block: Vec<BlockLine>,
}

/// One address and its names, as the block in the hosts file has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLine {
    pub address: IpAddr,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameStatus {
    pub name: String,
    pub target: Target,
    #[serde(default)]
    pub label: Option<String>,
    /// What the hosts file says now (None: a DNS target not resolved yet).
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// For DNS targets: seconds until the agent resolves the name again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolves_in: Option<f64>,
}

/// Parses a request line, checking the version first so that a newer
/// client gets "upgrade the agent", not a confusing field error.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("request is not JSON: {e}"))?;
    let object = value.as_object_mut().ok_or("request must be a JSON object")?;
    match object.remove("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "protocol version {v} is not supported: this agent speaks version {VERSION}; install matching workstation and workstation-hosts versions"
            ))
        }
        None => return Err(format!("request has no protocol version: send \"v\": {VERSION}")),
    }
    serde_json::from_value(value).map_err(|e| format!("bad request: {e}"))
}

pub fn encode_request(request: &Request) -> String {
    let mut value = serde_json::to_value(request).expect("requests serialize");
    value.as_object_mut().expect("requests are objects").insert("v".into(), VERSION.into());
    value.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the hosts agent is not running (nothing listens on {socket}); install it with `sudo workstation-hosts install --user $USER`")]
    NotRunning { socket: PathBuf },
    #[error("talking to the hosts agent at {socket}: {source}")]
    Io {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the hosts agent at {socket} did not answer within {0:?}", TIMEOUT)]
    Timeout { socket: PathBuf },
    #[error("the hosts agent sent a response we cannot read ({0}); install matching workstation and workstation-hosts versions")]
    BadResponse(String),
    #[error("hosts agent: {0}")]
    Refused(String),
}

/// How long a client waits for the agent (a DNS target is resolved before
/// the answer, with the resolver's own timeouts).
const TIMEOUT: Duration = Duration::from_secs(15);

/// Sends one request and returns the agent's successful response.
pub async fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let io = |source| ClientError::Io { socket: socket.to_owned(), source };
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => ClientError::NotRunning { socket: socket.to_owned() },
            _ => io(e),
        })?;
        let mut line = encode_request(request);
        line.push('\n');
        stream.write_all(line.as_bytes()).await.map_err(io)?;
        let mut answer = String::new();
        BufReader::new(stream).take(MAX_REQUEST * 16).read_line(&mut answer).await.map_err(io)?;
        Ok::<_, ClientError>(answer)
    };
    let answer = tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| ClientError::Timeout { socket: socket.to_owned() })??;
    let response: Response = serde_json::from_str(&answer).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    if response.v != VERSION {
        return Err(ClientError::BadResponse(format!("protocol version {}", response.v)));
    }
    if !response.ok {
        return Err(ClientError::Refused(response.error.unwrap_or_else(|| "refused without a reason".into())));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_version() {
        let r = Request::Point { names: vec!["a.dev".into()], to: Target::Dns("box.example".into()), label: Some("me/dev".into()) };
        let line = encode_request(&r);
        assert!(line.contains("\"v\":1"), "{line}");
        assert_eq!(parse_request(&line).unwrap(), r);
        assert_eq!(parse_request(r#"{"v":1,"op":"status"}"#).unwrap(), Request::Status);
        assert_eq!(parse_request(r#"{"v":1,"op":"clear"}"#).unwrap(), Request::Clear { names: None });
    }

    #[test]
    fn anything_else_is_refused_clearly() {
        for (line, expect) in [
            (r#"{"v":2,"op":"status"}"#, "version 2 is not supported"),
            (r#"{"op":"status"}"#, "no protocol version"),
            (r#"{"v":1,"op":"write-file","path":"/etc/passwd"}"#, "unknown variant"),
            (r#"{"v":1,"op":"clear","names":[],"extra":1}"#, "unknown field"),
            (r#"{"v":1,"op":"point","names":["a"],"to":{"file":"/x"}}"#, "unknown variant"),
            ("[1]", "JSON object"),
            ("not json", "not JSON"),
        ] {
            let err = parse_request(line).unwrap_err();
            assert!(err.contains(expect), "{line}: {err}");
        }
    }
}
