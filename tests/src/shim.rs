//! `tests/support/throttle_shim.py` in front of moto: throttles like EC2
//! (the first N calls, or token buckets per action on a real or simulated
//! clock), records what moto was asked.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use crate::TestEnv;

pub struct Shim {
    pub url: String,
    child: Child,
}

/// One action's token bucket: capacity, tokens refilled a second.
pub struct Bucket<'a> {
    pub action: &'a str,
    pub capacity: f64,
    pub refill: f64,
}

impl Shim {
    /// Answers the first `throttle` calls with RequestLimitExceeded, then
    /// throttles each action in `buckets` by its bucket.
    pub fn start(upstream: &str, throttle: u32, buckets: &[Bucket]) -> Shim {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/throttle_shim.py");
        let mut args = vec![script.to_string(), upstream.to_string(), throttle.to_string()];
        args.extend(buckets.iter().map(|b| format!("{}={}/{}", b.action, b.capacity, b.refill)));
        let mut child = Command::new("python3").args(&args).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let host = upstream.split("://").nth(1).and_then(|h| h.split(':').next()).unwrap();
        Shim { url: format!("http://{host}:{}", line.trim()), child }
    }

    /// A shim in front of `env`'s moto, which `env`'s commands then call.
    pub fn in_front_of(env: &mut TestEnv, throttle: u32) -> Shim {
        let shim = Shim::start(&env.moto.as_ref().unwrap().url.clone(), throttle, &[]);
        env.set_endpoint(&shim.url);
        shim
    }

    /// Buckets refill by this clock (epoch seconds) from now on.
    pub fn set_clock(&self, epoch_seconds: f64) {
        self.http("POST", "/__clock", &epoch_seconds.to_string());
    }

    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.http("GET", "/__stats", "")).unwrap()
    }

    /// The parameters of each forwarded call to `action` (first-N mode).
    pub fn requests(&self, action: &str) -> Vec<serde_json::Value> {
        let all: serde_json::Value = serde_json::from_str(&self.http("GET", "/__requests", "")).unwrap();
        all.as_array().unwrap().iter().filter(|r| r["Action"] == action).cloned().collect()
    }

    /// The next `count` calls of `action` fail with EC2's error `code`.
    pub fn fail(&self, action: &str, code: &str, count: u32) {
        self.http("POST", "/__fail", &serde_json::json!({ "action": action, "code": code, "count": count }).to_string());
    }

    /// The next `count` calls of `action` take effect, and their answers
    /// are lost (the connection drops).
    pub fn lose(&self, action: &str, count: u32) {
        self.http("POST", "/__fail", &serde_json::json!({ "action": action, "lose": count }).to_string());
    }

    /// What is made from now on (instances, volumes, key pairs, tags) is
    /// not visible for `seconds` (EC2's eventual consistency; 0: off).
    pub fn invisible_after_create(&self, seconds: f64) {
        self.http("POST", "/__fail", &serde_json::json!({ "invisible": seconds }).to_string());
    }

    /// EC2 has no capacity in `zones` or for `types` until told otherwise
    /// (empty lists: capacity everywhere again).
    pub fn no_capacity(&self, zones: &[&str], types: &[&str]) {
        self.http("POST", "/__fail", &serde_json::json!({ "capacity": { "zones": zones, "types": types } }).to_string());
    }

    /// The Price List API's catalogue (tests/support/shim_pricing.py):
    /// `[{"attributes": {...}, "usd": "0.0416"}, ...]`.
    pub fn set_prices(&self, products: serde_json::Value) {
        self.http("POST", "/__prices", &serde_json::json!({ "products": products }).to_string());
    }

    /// The next root volume replacement task fails (the old root stays).
    pub fn fail_next_root_task(&self) {
        self.http("POST", "/__fail", r#"{"task": "fail"}"#);
    }

    /// The root volume replacement tasks the shim answered for.
    pub fn root_tasks(&self) -> Vec<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.http("GET", "/__root_tasks", "")).unwrap().as_array().cloned().unwrap_or_default()
    }

    fn http(&self, method: &str, path: &str, body: &str) -> String {
        control(&self.url, method, path, body).unwrap()
    }
}

/// One HTTP/1.1 exchange with the shim at `url`'s control endpoints; the
/// body. An error (not a panic) for the fleet, whose shim may be gone.
pub fn control(url: &str, method: &str, path: &str, body: &str) -> Result<String, String> {
    let addr = url.trim_start_matches("http://");
    let fail = |e: std::io::Error| format!("{method} {path}: {e}");
    let mut stream = TcpStream::connect(addr).map_err(fail)?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 2") {
        return Err(format!("{method} {path}: {head}"));
    }
    Ok(body.to_string())
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
