//! What an intercept connects, decided before anything is touched:
//! - incoming: each port the manifest declares for the service, on the box,
//!   reaches a local port (the same one unless `--port BOX:LOCAL` says);
//! - outgoing: each other service's and each store's port on the box is
//!   reachable on the laptop's loopback through a local forward, at the
//!   same port when it is free there, else at a free one, and then the
//!   service's environment is rewritten to match (`127.0.0.1:6379` and
//!   `localhost:6379` become `127.0.0.1:<local>`, and a value that is just
//!   `6379` becomes `<local>`). Forwards, rather than
//!   rewriting every address to the box's, because the box's stores listen
//!   on its loopback only: nothing else can reach them.

use std::collections::BTreeMap;

use crate::manifest::Manifest;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Incoming {
    pub box_port: u16,
    pub local_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outgoing {
    /// The service or store on the box.
    pub program: String,
    pub box_port: u16,
    pub local_port: u16,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub service: String,
    pub incoming: Vec<Incoming>,
    pub outgoing: Vec<Outgoing>,
    /// The service's environment from the manifest, rewritten for the
    /// outgoing forwards, plus WORKSTATION_INTERCEPT=<service>.
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Unknown(#[from] crate::manifest::UnknownName),
    #[error("--port {box_port}:{local}: {box_port} is not a port of {service} on the box (its ports: {ports}); --port maps one of them to a local port")]
    NotAPort { service: String, box_port: u16, local: u16, ports: String },
    #[error("{service} declares no ports in the manifest: nothing on the box could reach the laptop's process (add `ports = [...]` to [services.{service}])")]
    NoPorts { service: String },
}

/// The plan for `service`; `is_free(port)` says whether a local port can
/// be listened on, `free_port()` finds one that can.
pub fn plan(
    manifest: &Manifest,
    service: &str,
    overrides: &[(u16, u16)],
    is_free: impl Fn(u16) -> bool,
    mut free_port: impl FnMut() -> std::io::Result<u16>,
) -> Result<Plan, PlanError> {
    manifest.check_service(service)?;
    let svc = &manifest.services[service];
    if svc.ports.is_empty() {
        return Err(PlanError::NoPorts { service: service.into() });
    }
    let ports_text = || svc.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    if let Some((b, l)) = overrides.iter().find(|(b, _)| !svc.ports.contains(b)) {
        return Err(PlanError::NotAPort { service: service.into(), box_port: *b, local: *l, ports: ports_text() });
    }
    let incoming: Vec<Incoming> =
        svc.ports.iter().map(|p| Incoming { box_port: *p, local_port: overrides.iter().rev().find(|(b, _)| b == p).map_or(*p, |(_, l)| *l) }).collect();

    let others = manifest
        .services
        .iter()
        .filter(|(name, _)| name.as_str() != service)
        // A service's front port too: the addresses the others use.
        .flat_map(|(name, s)| s.ports.iter().copied().chain(s.front.map(|f| f.port)).map(move |p| (name.clone(), p)))
        .chain(manifest.stores.iter().map(|(name, s)| (name.clone(), s.port())));
    let mut outgoing: Vec<Outgoing> = Vec::new();
    for (program, box_port) in others {
        if outgoing.iter().any(|o| o.box_port == box_port) {
            continue;
        }
        let taken = |p: u16| incoming.iter().any(|i| i.local_port == p) || outgoing.iter().any(|o| o.local_port == p);
        let local_port = if !taken(box_port) && is_free(box_port) {
            box_port
        } else {
            // A free port a listener of ours could not already hold.
            std::iter::repeat_with(&mut free_port).filter_map(Result::ok).find(|p| !taken(*p)).expect("the system hands out free ports")
        };
        outgoing.push(Outgoing { program, box_port, local_port });
    }

    let mut environment: BTreeMap<String, String> = svc.environment.iter().map(|(k, v)| (k.clone(), rewrite(v, &outgoing))).collect();
    environment.insert("WORKSTATION_INTERCEPT".into(), service.into());
    Ok(Plan { service: service.into(), incoming, outgoing, environment })
}

/// `value` with each loopback address of a box port that moved locally
/// pointing at its local port.
fn rewrite(value: &str, outgoing: &[Outgoing]) -> String {
    // A value that is only the port (`REDIS_PORT = "6379"`).
    if let Some(o) = outgoing.iter().find(|o| o.local_port != o.box_port && value == o.box_port.to_string()) {
        return o.local_port.to_string();
    }
    let mut out = value.to_string();
    for o in outgoing.iter().filter(|o| o.local_port != o.box_port) {
        for host in ["127.0.0.1", "localhost"] {
            let from = format!("{host}:{}", o.box_port);
            let mut result = String::with_capacity(out.len());
            let mut rest = out.as_str();
            while let Some(i) = rest.find(&from) {
                let after = &rest[i + from.len()..];
                result.push_str(&rest[..i]);
                // `:63790` is another port.
                if after.starts_with(|c: char| c.is_ascii_digit()) {
                    result.push_str(&from);
                } else {
                    result.push_str(&format!("127.0.0.1:{}", o.local_port));
                }
                rest = after;
            }
            result.push_str(rest);
            out = result;
        }
    }
    out
}

/// Whether this machine's loopback has `port` free to listen on.
pub fn loopback_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port the system considers free on loopback now.
pub fn loopback_any() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-12c6146b"
[stores.cache]
kind = "redis"
port = 6379
[stores.main]
kind = "postgres"
[services.api]
command = "./api"
ports = [8080, 8081]
environment = { REDIS_URL = "redis://127.0.0.1:6379/0", DATABASE_URL = "postgres://postgres@localhost:5432/app", OTHER = "127.0.0.1:63790", WEB = "http://127.0.0.1:3000", REDIS_PORT = "6379", WORKERS = "8" }
[services.web]
command = "./web"
ports = [3000]
"#,
        )
        .unwrap()
    }

    #[test]
    fn ports_map_and_the_environment_follows_moved_ones() {
        let m = manifest();
        let mut next = 40000;
        // 6379 is taken on the laptop (its own redis); the rest are free.
        let plan = plan(
            &m,
            "api",
            &[(8081, 18081)],
            |p| p != 6379,
            || {
                next += 1;
                Ok(next)
            },
        )
        .unwrap();
        assert_eq!(plan.incoming, [Incoming { box_port: 8080, local_port: 8080 }, Incoming { box_port: 8081, local_port: 18081 }]);
        let out: Vec<(&str, u16, u16)> = plan.outgoing.iter().map(|o| (o.program.as_str(), o.box_port, o.local_port)).collect();
        assert_eq!(out, [("web", 3000, 3000), ("cache", 6379, 40001), ("main", 5432, 5432)]);
        assert_eq!(plan.environment["REDIS_URL"], "redis://127.0.0.1:40001/0");
        assert_eq!(plan.environment["DATABASE_URL"], "postgres://postgres@localhost:5432/app", "unmoved: unchanged");
        assert_eq!(plan.environment["OTHER"], "127.0.0.1:63790", "another port");
        assert_eq!((plan.environment["REDIS_PORT"].as_str(), plan.environment["WORKERS"].as_str()), ("40001", "8"));
        assert_eq!(plan.environment["WORKSTATION_INTERCEPT"], "api");
    }

    #[test]
    fn bad_requests_name_the_fix() {
        let m = manifest();
        let err = plan(&m, "nope", &[], |_| true, || Ok(1)).unwrap_err().to_string();
        assert!(err.contains("no service \"nope\"") && err.contains("api, web"), "{err}");
        let err = plan(&m, "api", &[(9999, 1)], |_| true, || Ok(1)).unwrap_err().to_string();
        assert!(err.contains("9999 is not a port of api") && err.contains("8080, 8081"), "{err}");
    }
}
