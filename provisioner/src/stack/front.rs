//! The box's HTTP proxy in front of services (`front = { port, to }`):
//! nginx, configured from the manifest's fronts and the personal routes
//! that intercepts add (`intercept --header x-dev=alice`, `--mirror`).
//!
//! nginx, rather than HAProxy or Envoy: one binary from both nixpkgs and
//! Debian that routes on a header (`map`), copies requests to a second
//! upstream with the original answering (`mirror`, which HAProxy lacks
//! without an external agent), and reloads on SIGHUP without dropping a
//! request in flight (old workers finish theirs), with a configuration
//! small enough to render here and test as text.
//!
//! Rendering is pure; the box side ([`crate::boxside::front`]) writes the
//! file, checks it with `nginx -t` and signals the running nginx.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::Manifest;

pub use crate::manifest::service::FRONT_PROGRAM as PROGRAM;

/// One service's front: nginx listens on `port` and sends to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontSpec {
    pub service: String,
    pub port: u16,
    pub to: u16,
}

impl std::str::FromStr for FrontSpec {
    type Err = String;

    /// `SERVICE=PORT:TO`, as the supervisord launcher passes it.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not SERVICE=PORT:TO (e.g. api=8080:18080)");
        let (service, ports) = s.split_once('=').ok_or_else(bad)?;
        let (listen, to) = ports.split_once(':').ok_or_else(bad)?;
        let number = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
        // A service name (manifest/validate.rs): it names nginx variables.
        if service.is_empty() || !service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
            return Err(bad());
        }
        Ok(FrontSpec { service: service.into(), port: number(listen)?, to: number(to)? })
    }
}

impl std::fmt::Display for FrontSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}:{}", self.service, self.port, self.to)
    }
}

/// The manifest's fronts, by service name.
pub fn fronts(manifest: &Manifest) -> Vec<FrontSpec> {
    manifest.services.iter().filter_map(|(name, svc)| svc.front_target().map(|(port, to)| FrontSpec { service: name.clone(), port, to })).collect()
}

/// What a personal route does with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Match {
    /// Requests carrying header `name` with `value` go to the laptop.
    Header { name: String, value: String },
    /// Every request is answered by the box; the laptop gets a copy.
    Mirror,
}

impl Match {
    /// `NAME=VALUE`, checked and lowercased: nginx matches the header
    /// through a variable (`$http_x_dev`) and a map key, so both stay plain.
    pub fn header(text: &str) -> Result<Match, String> {
        let (name, value) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NAME=VALUE (e.g. x-dev=alice)"))?;
        let name = name.to_ascii_lowercase();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || name.starts_with('-') {
            return Err(format!("header name {name:?}: use letters, digits and '-' (e.g. x-dev), at most 64"));
        }
        if value.is_empty() || value.len() > 128 || !value.chars().all(|c| c.is_ascii_alphanumeric() || "._@:-".contains(c)) {
            return Err(format!("header value {value:?}: use letters, digits and . _ @ : - (e.g. alice), at most 128"));
        }
        // nginx's map compares values without case, and reads these words
        // as its own parameters.
        let value = value.to_ascii_lowercase();
        if ["default", "include", "hostnames", "volatile"].contains(&value.as_str()) {
            return Err(format!("header value {value:?} is a word nginx reserves; choose another (e.g. your name)"));
        }
        Ok(Match::Header { name, value })
    }

    pub fn describe(&self) -> String {
        match self {
            Match::Header { name, value } => format!("{name}: {value}"),
            Match::Mirror => "a copy of every request".into(),
        }
    }
}

/// A personal route, as its box-side session records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub service: String,
    pub by: String,
    #[serde(rename = "match")]
    pub matches: Match,
    /// The box's loopback port of the laptop's forward.
    pub port: u16,
    /// The session's process: a record whose process is gone is stale.
    pub pid: u32,
    pub since: chrono::DateTime<chrono::Utc>,
    /// The data branches the session made (`STORE=NAME`), so that no two
    /// sessions share one.
    #[serde(default)]
    pub claims: Vec<String>,
    /// `<boot id>:<start time>` of the session's process: with `pid`, what
    /// tells a live session from a dead one whose pid was reused.
    #[serde(default)]
    pub process: String,
}

impl Route {
    /// Whether every name in it is what the session accepted: records are
    /// read back into nginx's configuration and onto terminals.
    pub fn is_valid(&self) -> bool {
        let header = match &self.matches {
            Match::Header { name, value } => Match::header(&format!("{name}={value}")).is_ok(),
            Match::Mirror => true,
        };
        header && crate::stack::holds::valid_holder(&self.by) && crate::stack::holds::valid_holder(&self.service)
    }

    /// Whether `self` and `other` would take the same requests.
    pub fn clashes(&self, other: &Route) -> bool {
        self.service == other.service && matches!(self.matches, Match::Header { .. }) && self.matches == other.matches
    }
}

/// Where nginx's files live on the box.
#[derive(Debug, Clone)]
pub struct FrontPaths {
    pub dir: String,
    /// A unix socket answering `/generation` (which configuration runs).
    pub control: String,
}

impl FrontPaths {
    /// Where a box with `layout` keeps them.
    pub fn of(layout: &crate::stack::layout::Layout) -> FrontPaths {
        FrontPaths { dir: format!("{}/front", layout.run_dir()), control: layout.front_socket() }
    }

    pub fn conf(&self) -> String {
        format!("{}/nginx.conf", self.dir)
    }
    pub fn pid(&self) -> String {
        format!("{}/nginx.pid", self.dir)
    }
    pub fn routes(&self) -> String {
        format!("{}/routes", self.dir)
    }
    pub fn temp(&self) -> String {
        format!("{}/tmp", self.dir)
    }
}

/// Prints the records of live, routed sessions, one per line (as root:
/// the records are root's alone).
pub fn list_command(paths: &FrontPaths) -> String {
    format!(
        "for f in {}/*.json; do [ -e \"$f\" ] || continue; kill -0 \"$(basename \"$f\" .json)\" 2>/dev/null || continue; head -c 4096 \"$f\" | tr -d '\\n'; echo; done",
        crate::stack::layout::sh(&paths.routes())
    )
}

/// The records [`list_command`] printed; the box writes them, so each is
/// checked as the session checked it, and a claim without a port yet is
/// left out.
pub fn parse_routes(text: &str) -> Vec<Route> {
    text.lines().filter_map(|l| serde_json::from_str::<Route>(l).ok()).filter(|r| r.port > 0 && r.is_valid()).collect()
}

/// nginx.conf for `fronts` with `routes`, and its generation (a hash of
/// everything else in it, which the control socket answers).
pub fn render(paths: &FrontPaths, fronts: &[FrontSpec], routes: &[Route]) -> (String, String) {
    let mut http = String::new();
    for (k, front) in fronts.iter().enumerate() {
        http.push_str(&server(k, front, routes.iter().filter(|r| r.service == front.service)));
    }
    let temp = paths.temp();
    let body = format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         user nobody nogroup;\n\
         pid {pid};\n\
         error_log stderr warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {temp}/body;\n\
         \x20 proxy_temp_path {temp}/proxy;\n\
         \x20 fastcgi_temp_path {temp}/fastcgi;\n\
         \x20 uwsgi_temp_path {temp}/uwsgi;\n\
         \x20 scgi_temp_path {temp}/scgi;\n\
         \x20 client_max_body_size 0;\n\
         \x20 proxy_http_version 1.1;\n\
         \x20 # Keep-alive to the services, and WebSocket upgrades passed on.\n\
         \x20 map $http_upgrade $ws_connection {{ default upgrade; \"\" \"\"; }}\n\
         \x20 proxy_set_header Upgrade $http_upgrade;\n\
         \x20 proxy_set_header Connection $ws_connection;\n\
         \x20 proxy_set_header Host $http_host;\n\
         \x20 # Server-sent events and long polls reach the client as they come.\n\
         \x20 proxy_buffering off;\n\
         \x20 # A laptop paused at a breakpoint answers late.\n\
         \x20 proxy_read_timeout 1h;\n\
         \x20 proxy_send_timeout 1h;\n\
         {http}}}\n",
        pid = paths.pid(),
    );
    let generation = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    // The control server joins the one http block nginx takes.
    let control = format!("http {{\n  server {{\n    listen unix:{};\n    location = /generation {{ return 200 \"{generation}\\n\"; }}\n  }}\n", paths.control);
    let conf = format!("# Rendered by `workstation box front`; do not edit. Routes: {}/*.json.\n{}", paths.routes(), body.replacen("http {\n", &control, 1));
    (conf, generation)
}

/// The `k`th front's upstreams, header maps and server: its nginx names
/// carry `k`, not the service's name (`a-b` and `a_b` would meet).
fn server<'a>(k: usize, front: &FrontSpec, routes: impl Iterator<Item = &'a Route>) -> String {
    let svc = format!("f{k}");
    let own = format!("ws_{svc}");
    let mut s =
        format!("\n  # {} (front port {} -> {})\n  upstream {own} {{ server 127.0.0.1:{}; keepalive 64; }}\n", front.service, front.port, front.to, front.to);
    let routes: Vec<&Route> = routes.collect();
    for (i, r) in routes.iter().enumerate() {
        s += &format!("  # {} since {}: {}\n", r.by, r.since.format("%Y-%m-%dT%H:%M:%SZ"), r.matches.describe());
        s += &format!("  upstream {own}_r{i} {{ server 127.0.0.1:{}; keepalive 16; }}\n", r.port);
    }
    // One map per header name, each falling through to the next, the last
    // to the box's own service.
    let names: BTreeSet<&str> = routes
        .iter()
        .filter_map(|r| match &r.matches {
            Match::Header { name, .. } => Some(name.as_str()),
            Match::Mirror => None,
        })
        .collect();
    let names: Vec<&str> = names.into_iter().collect();
    for (n, name) in names.iter().enumerate() {
        let next = if n + 1 < names.len() { format!("$ws_{svc}_m{}", n + 1) } else { own.clone() };
        s += &format!("  map $http_{} $ws_{svc}_m{n} {{\n    default {next};\n", name.replace('-', "_"));
        for (i, r) in routes.iter().enumerate() {
            if let Match::Header { name: rn, value } = &r.matches {
                if rn == name {
                    s += &format!("    \"{value}\" {own}_r{i};\n");
                }
            }
        }
        s += "  }\n";
    }
    let target = if names.is_empty() { own.clone() } else { format!("$ws_{svc}_m0") };
    let mirrors: Vec<usize> = routes.iter().enumerate().filter(|(_, r)| r.matches == Match::Mirror).map(|(i, _)| i).collect();
    s += &format!("  server {{\n    listen {};\n    location / {{\n", front.port);
    for i in &mirrors {
        s += &format!("      mirror /_workstation_mirror_{i};\n");
    }
    s += &format!("      proxy_pass http://{target};\n    }}\n");
    for i in &mirrors {
        // A copy's answer is dropped; a slow or gone laptop must not hold
        // the box's answers up for long.
        s += &format!(
            "    location = /_workstation_mirror_{i} {{\n      internal;\n      proxy_connect_timeout 1s;\n      proxy_send_timeout 5s;\n      proxy_read_timeout 5s;\n      proxy_pass http://{own}_r{i}$request_uri;\n    }}\n"
        );
    }
    s + "  }\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(by: &str, matches: Match, port: u16) -> Route {
        Route {
            service: "api".into(),
            by: by.into(),
            matches,
            port,
            pid: 1,
            since: "2026-12-06T10:00:00Z".parse().unwrap(),
            claims: vec![],
            process: String::new(),
        }
    }

    fn paths() -> FrontPaths {
        FrontPaths { dir: "/r/run/front".into(), control: "/r/run/front.sock".into() }
    }

    #[test]
    fn routes_render_as_maps_falling_through_to_the_box() {
        let fronts = [FrontSpec { service: "api".into(), port: 8080, to: 18080 }, "web=3000:13000".parse().unwrap()];
        let (plain, g1) = render(&paths(), &fronts, &[]);
        assert!(plain.contains("upstream ws_f0 { server 127.0.0.1:18080; keepalive 64; }"), "{plain}");
        assert!(plain.contains("listen 8080;") && plain.contains("proxy_pass http://ws_f0;") && plain.contains("proxy_pass http://ws_f1;"), "{plain}");
        assert!(plain.contains(&format!("return 200 \"{g1}\\n\"")) && plain.contains("listen unix:/r/run/front.sock;"), "{plain}");

        let routes = [
            route("alice@mac", Match::header("X-Dev=alice").unwrap(), 40001),
            route("bob@mac", Match::header("x-dev=bob").unwrap(), 40002),
            route("carol@mac", Match::header("x-user=carol").unwrap(), 40003),
            route("dan@mac", Match::Mirror, 40004),
        ];
        let (conf, g2) = render(&paths(), &fronts, &routes);
        assert_ne!(g1, g2, "a new generation");
        for want in [
            "upstream ws_f0_r0 { server 127.0.0.1:40001; keepalive 16; }",
            "map $http_x_dev $ws_f0_m0 {\n    default $ws_f0_m1;\n    \"alice\" ws_f0_r0;\n    \"bob\" ws_f0_r1;\n  }",
            "map $http_x_user $ws_f0_m1 {\n    default ws_f0;\n    \"carol\" ws_f0_r2;\n  }",
            "mirror /_workstation_mirror_3;",
            "proxy_pass http://$ws_f0_m0;",
            "proxy_pass http://ws_f0_r3$request_uri;",
            "proxy_pass http://ws_f1;",
        ] {
            assert!(conf.contains(want), "missing {want:?} in\n{conf}");
        }
        assert_eq!(render(&paths(), &fronts, &routes), (conf, g2), "pure");
    }

    #[test]
    fn headers_and_specs_are_checked() {
        assert_eq!(Match::header("X-Dev=Alice").unwrap(), Match::Header { name: "x-dev".into(), value: "alice".into() });
        for bad in ["x-dev=default", "x-dev=Include", "x-dev", "=alice", "x dev=alice", "x-dev=", "x-dev=a\"b", "x-dev=a;b", "x_dev=alice", "-x=a"] {
            assert!(Match::header(bad).is_err(), "{bad}");
        }
        assert_eq!("api=8080:18080".parse::<FrontSpec>().unwrap().to_string(), "api=8080:18080");
        for bad in ["api", "api=8080", "a;b=1:2", "api=0:1", "api=1:x"] {
            assert!(bad.parse::<FrontSpec>().is_err(), "{bad}");
        }
        // Records the box wrote are checked where they are read.
        let good = serde_json::to_string(&route("alice@mac", Match::header("x-dev=alice").unwrap(), 40001)).unwrap();
        let forged = good.replace("alice@mac", "\\u001b]0;pwned");
        let header = good.replace("\"alice\"", "\"a;b\"");
        let claim = good.replace("40001", "0");
        assert_eq!(parse_routes(&[good.as_str(), &forged, &header, &claim, "junk"].join("\n")).len(), 1);
        let a = route("a", Match::header("x-dev=alice").unwrap(), 1);
        assert!(a.clashes(&route("b", Match::header("x-dev=alice").unwrap(), 2)));
        assert!(!a.clashes(&route("b", Match::header("x-dev=bob").unwrap(), 2)));
        assert!(!route("a", Match::Mirror, 1).clashes(&route("b", Match::Mirror, 2)), "mirrors add up");
    }
}
