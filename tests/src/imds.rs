//! Instance metadata (IMDSv2) for moto's instances, which moto does not
//! serve: the box-side CLI reads its id, region and own tags there, as on
//! EC2. Like EC2's, it answers each caller about the instance at the
//! caller's address, looked up in moto, and only with a session token.
//! The SDK finds it through `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;

use crate::moto::{block_on, Moto};
use crate::REGION;

const TOKEN: &str = "workstation-tests-imds-token";
/// The instance role's name in metadata.
const ROLE: &str = "workstation-box";

pub struct Imds {
    pub url: String,
    stop: Arc<AtomicBool>,
}

impl Imds {
    /// Serves on `host` (the bridge's gateway, where boxes reach moto).
    pub fn start_on(host: &str, moto: &Moto) -> Imds {
        let listener = TcpListener::bind((host, 0)).expect("the metadata server binds");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let (client, stopped) = (moto.client(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    // One thread per caller: a slow answer from moto must
                    // not hold up another box's request.
                    let client = client.clone();
                    std::thread::spawn(move || {
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = serve(conn, &client);
                    });
                }
            }
        });
        Imds { url, stop }
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve(mut conn: TcpStream, client: &aws_sdk_ec2::Client) -> std::io::Result<()> {
    let caller = conn.peer_addr()?.ip().to_string();
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    let mut token = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("x-aws-ec2-metadata-token") {
                token = Some(value.trim().to_string());
            }
        }
    }
    let (status, body) = match (method.as_str(), path.as_str()) {
        ("PUT", "/latest/api/token") => (200, TOKEN.to_string()),
        _ if token.as_deref() != Some(TOKEN) => (401, String::new()),
        ("GET", path) => match answer(client, &caller, path) {
            Some(body) => (200, body),
            None => (404, String::new()),
        },
        _ => (405, String::new()),
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    // A token's answer says how long it lives, as EC2's does (the SDK
    // refuses one without).
    let ttl = if method == "PUT" { "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n" } else { "" };
    write!(conn, "HTTP/1.1 {status} {reason}\r\n{ttl}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    conn.flush()
}

/// The metadata of the instance at `caller`'s address.
fn answer(client: &aws_sdk_ec2::Client, caller: &str, path: &str) -> Option<String> {
    let out = block_on(client.describe_instances().filters(Filter::builder().name("private-ip-address").values(caller).build()).send()).ok()?;
    let instance = out.reservations().iter().flat_map(|r| r.instances()).next()?.clone();
    match path.strip_prefix("/latest/meta-data/")? {
        "instance-id" => instance.instance_id().map(String::from),
        "placement/region" => Some(REGION.to_string()),
        // The instance role's credentials, as EC2 serves a profile's (moto
        // takes any): what a box's SDK signs its own calls with.
        "iam/security-credentials/" | "iam/security-credentials" => Some(ROLE.to_string()),
        role if role.strip_prefix("iam/security-credentials/") == Some(ROLE) => {
            let expires = chrono::Utc::now() + chrono::Duration::hours(6);
            let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            Some(
                serde_json::json!({
                    "Code": "Success", "Type": "AWS-HMAC", "LastUpdated": stamp(chrono::Utc::now()),
                    "AccessKeyId": "testing", "SecretAccessKey": "testing", "Token": "testing-instance-role", "Expiration": stamp(expires),
                })
                .to_string(),
            )
        }
        tag => {
            let key = tag.strip_prefix("tags/instance/")?;
            // As on EC2: tags are there only if the launch allowed them.
            let allowed = instance.metadata_options().and_then(|m| m.instance_metadata_tags()).map(|t| t.as_str()) == Some("enabled");
            if !allowed {
                return None;
            }
            instance.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(String::from)
        }
    }
}
