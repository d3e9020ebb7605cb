//! What runs on a box: supervisord's view of every program (state, pid,
//! uptime, unexpected exits) and each one's health check, run in parallel
//! over one SSH connection.

use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::manifest::{HealthCheck, Manifest};
use crate::poll::{self, Backoff};
use crate::stack::front;
use crate::stack::holds::{self, Holder};
use crate::stack::layout::{sh, StoreRunner};
use crate::stack::shell::{BoxShell, ShellError};
use crate::stack::stores;

/// One health check's budget: a service slower than this is not healthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct ProgramStatus {
    pub name: String,
    /// "service", "store" or "proxy" (the front of services).
    pub kind: &'static str,
    /// supervisord's state: RUNNING, STARTING, BACKOFF, FATAL, STOPPED, ...
    pub state: String,
    pub pid: Option<u32>,
    pub uptime: Option<String>,
    /// Times the program exited when it was not expected to (supervisord
    /// restarts it; a count that grows means a crash loop).
    pub unexpected_exits: u32,
    pub health: Health,
    /// Held by `workstation intercept`: it runs on someone's laptop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intercepted: Option<Holder>,
    /// Personal intercepts: requests its front sends to someone's laptop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<front::Route>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "kebab-case")]
pub enum Health {
    Healthy,
    Unhealthy(String),
    NoCheck,
}

impl Health {
    pub fn as_str(&self) -> String {
        match self {
            Health::Healthy => "healthy".into(),
            Health::Unhealthy(why) => format!("unhealthy: {why}"),
            Health::NoCheck => "-".into(),
        }
    }
}

impl ProgramStatus {
    /// Running and passing its check (or having none).
    /// Running, or starting and already passing its health check:
    /// supervisord calls a program RUNNING only `startsecs` (1 s) after its
    /// start, but a program that answers its check is serving, and waiting
    /// out that second would make every bring-up a second slower.
    pub fn is_up(&self) -> bool {
        matches!((&self.health, self.state.as_str()), (_, INTERCEPTED) | (Health::Healthy, "RUNNING" | "STARTING") | (Health::NoCheck, "RUNNING"))
    }

    /// supervisord gave up on it: waiting longer will not help.
    pub fn has_failed(&self) -> bool {
        matches!(self.state.as_str(), "FATAL" | "EXITED" | "STOPPED" | "UNKNOWN" | "MISSING")
    }
}

/// The state shown for a service `workstation intercept` holds.
pub const INTERCEPTED: &str = "INTERCEPTED";

/// One line of `supervisorctl status`: name, state, and the rest.
#[derive(Debug, PartialEq, Eq)]
pub struct StatusLine {
    pub name: String,
    pub state: String,
    pub pid: Option<u32>,
    pub uptime: Option<String>,
}

/// supervisord's view of its programs, asked over its control socket's
/// XML-RPC with curl: what `supervisorctl status` prints (its `description`
/// is that line's tail), without starting a Python interpreter per look,
/// which took 0.25 s here and made every health-check round of `up` as
/// slow. No answer (supervisord not up) is no programs, as before.
async fn supervisor_status(onbox: &BoxShell) -> Result<Vec<StatusLine>, ShellError> {
    const CALL: &str = "<?xml version=\"1.0\"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>";
    let curl = format!(
        "curl -sS --max-time 10 --unix-socket {} -H 'Content-Type: text/xml' --data-binary {} http://localhost/RPC2",
        sh(&onbox.layout.socket()),
        sh(CALL)
    );
    Ok(parse_process_info(&onbox.output(&curl).await?))
}

/// Asking supervisord while a woken box's programs start.
const SETTLE_POLL: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));

/// Waits (at most `timeout`) until none of supervisord's programs is
/// still starting, for a box woken without its manifest (whose health
/// checks are unknown); returns those still starting ("supervisord" when
/// it never made its socket). A box never brought up has nothing to wait
/// for.
pub async fn settle(onbox: &BoxShell, timeout: Duration) -> Result<Vec<String>, ShellError> {
    let mut starting = Vec::new();
    let settled = poll::until(timeout, SETTLE_POLL, async || {
        // supervisord may not have made its socket yet (its unit starts
        // after the stores'); with no configuration it never will.
        if !onbox.check(&format!("test -S {}", sh(&onbox.layout.socket()))).await? {
            if !onbox.check(&format!("test -e {}", sh(&onbox.layout.conf()))).await? {
                return Ok(Some(Vec::new()));
            }
            starting = vec!["supervisord".into()];
            return Ok(None);
        }
        starting = supervisor_status(onbox).await?.into_iter().filter(|l| matches!(l.state.as_str(), "STARTING" | "BACKOFF")).map(|l| l.name).collect();
        Ok::<_, ShellError>(starting.is_empty().then(Vec::new))
    })
    .await?;
    Ok(settled.unwrap_or(starting))
}

/// The `getAllProcessInfo` answer: one `<struct>` per program with
/// `name`, `statename`, `pid` and `description` members.
pub fn parse_process_info(xml: &str) -> Vec<StatusLine> {
    fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
        let start = text.find(open)? + open.len();
        Some(&text[start..start + text[start..].find(close)?])
    }
    // `<string>x</string>`, `<int>1</int>`, or a bare string.
    fn scalar(value: &str) -> String {
        let v = value.trim();
        let inner = match v.strip_prefix('<').and_then(|r| r.split_once('>')) {
            Some((_, rest)) => rest.rsplit_once("</").map_or(rest, |(x, _)| x),
            None => v,
        };
        inner.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
    }
    xml.split("<struct>")
        .skip(1)
        .filter_map(|st| {
            let st = st.split("</struct>").next()?;
            let mut name = None;
            let (mut state, mut pid, mut description) = (String::new(), None, String::new());
            for member in st.split("<member>").skip(1) {
                let value = scalar(between(member, "<value>", "</value>")?);
                match between(member, "<name>", "</name>")?.trim() {
                    "name" => name = Some(value),
                    "statename" => state = value,
                    "pid" => pid = value.parse::<u32>().ok().filter(|p| *p > 0),
                    "description" => description = value,
                    _ => {}
                }
            }
            let uptime = description.split_once("uptime ").map(|(_, u)| u.trim().to_string());
            Some(StatusLine { name: name?, state, pid, uptime })
        })
        .collect()
}

/// Restarts a service (supervisorctl) or store (supervisorctl, or systemctl
/// for a store systemd runs); returns what the tool printed.
pub async fn restart(onbox: &BoxShell, manifest: &Manifest, program: &str) -> Result<String, ShellError> {
    if let Some(h) = holds::holders(onbox).await?.into_iter().find(|h| h.service == program) {
        return Err(ShellError::Intercepted { service: h.service, by: h.by });
    }
    onbox.run(&format!("restarting {program}"), &onbox.control("restart", program, manifest.stores.get(program))).await
}

/// Streams the last `lines` lines of a program's output to this process's
/// stdout and stderr (and new ones, with `follow`); returns the exit status.
pub async fn logs(onbox: &BoxShell, manifest: &Manifest, program: &str, lines: u32, follow: bool) -> Result<u32, ShellError> {
    let command = onbox.log_command(program, manifest.stores.get(program), lines, follow);
    Ok(onbox.session.exec(&onbox.wrap(&command), &mut tokio::io::stdout(), &mut tokio::io::stderr()).await?)
}

/// Every program in the manifest (or only `only`), with health.
pub async fn status(onbox: &BoxShell, manifest: &Manifest, only: Option<&str>) -> Result<Vec<ProgramStatus>, ShellError> {
    // supervisorctl exits non-zero when any program is not running; its
    // output is still the answer.
    let mut lines = supervisor_status(onbox).await?;
    let mut exits = unexpected_exits(onbox).await?;
    let units: Vec<(String, String)> = manifest
        .stores
        .iter()
        .filter(|(_, s)| stores::runner(s, &onbox.layout) == Some(StoreRunner::Systemd))
        .map(|(name, store)| (name.clone(), stores::system_unit(name, store.kind)))
        .collect();
    if !units.is_empty() {
        let list: Vec<String> = units.iter().map(|(_, u)| sh(u)).collect();
        let show = format!("systemctl show --property=Id,ActiveState,MainPID,NRestarts {}", list.join(" "));
        for (unit, line, restarts) in parse_systemctl_show(&onbox.output(&show).await?) {
            if let Some((name, _)) = units.iter().find(|(_, u)| *u == unit) {
                lines.push(StatusLine { name: name.clone(), ..line });
                exits.extend(std::iter::repeat_n(name.clone(), restarts as usize));
            }
        }
    }

    // The proxy in front of services, when the manifest gives any a front.
    let fronted: Vec<String> = manifest.services.values().any(|s| s.front.is_some()).then(|| front::PROGRAM.to_string()).into_iter().collect();
    // An sqs store of a box in AWS is SQS's, not a program of the box.
    let names: Vec<(&String, &'static str)> = manifest
        .stores
        .iter()
        .filter(|(_, s)| stores::runner(s, &onbox.layout).is_some())
        .map(|(n, _)| (n, "store"))
        .chain(manifest.services.keys().map(|n| (n, "service")))
        .chain(fronted.iter().map(|n| (n, "proxy")))
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        .collect();
    // An intercepted service is stopped under supervisord: only then is
    // there anyone to ask about (saves a command per health round of `up`).
    let stopped = manifest.services.keys().any(|n| lines.iter().any(|l| &l.name == n && l.state == "STOPPED"));
    let holders = if stopped { holds::holders(onbox).await? } else { Vec::new() };
    let routes =
        if fronted.is_empty() { Vec::new() } else { front::parse_routes(&onbox.output(&front::list_command(&front::FrontPaths::of(&onbox.layout))).await?) };
    let (lines, exits, holders, routes) = (&lines, &exits, &holders, &routes);
    let checks = names.iter().map(|(name, kind)| async move {
        let line = lines.iter().find(|l| &l.name == *name);
        let intercepted = holders.iter().find(|h| &h.service == *name && *kind == "service").cloned();
        let state = match (&intercepted, line) {
            (Some(_), _) => INTERCEPTED.to_string(),
            (None, Some(l)) => l.state.clone(),
            (None, None) => "MISSING".into(),
        };
        // A starting program is checked too: answering its check is what
        // makes it up (see ProgramStatus::is_up).
        let health = if intercepted.is_some() {
            Health::NoCheck
        } else if state != "RUNNING" && state != "STARTING" {
            Health::Unhealthy(format!("not running ({})", state.to_lowercase()))
        } else if *kind == "proxy" {
            Health::NoCheck
        } else if *kind == "store" {
            check_command(onbox, &stores::ready_command(name, &manifest.stores[*name], &onbox.layout), None).await
        } else {
            match &manifest.services[*name].health {
                None => Health::NoCheck,
                Some(h) => check(onbox, h, manifest.services[*name].directory.as_deref()).await,
            }
        };
        ProgramStatus {
            name: name.to_string(),
            kind,
            state,
            pid: line.and_then(|l| l.pid),
            uptime: line.and_then(|l| l.uptime.clone()),
            unexpected_exits: exits.iter().filter(|e| e == name).count() as u32,
            health,
            intercepted,
            routes: routes.iter().filter(|r| r.service == **name && *kind == "service").cloned().collect(),
        }
    });
    Ok(futures::future::join_all(checks).await)
}

/// Parses `systemctl show --property=Id,ActiveState,MainPID,NRestarts`
/// (one block per unit, blank-line separated) into supervisord's terms:
/// (unit, status line, restarts).
pub fn parse_systemctl_show(out: &str) -> Vec<(String, StatusLine, u32)> {
    out.split("\n\n")
        .filter_map(|block| {
            let field = |k: &str| block.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(str::trim);
            let unit = field("Id")?.to_string();
            let state = match field("ActiveState")? {
                "active" => "RUNNING",
                "activating" | "reloading" => "STARTING",
                "failed" => "FATAL",
                _ => "STOPPED",
            };
            let pid = field("MainPID").and_then(|p| p.parse().ok()).filter(|p: &u32| *p != 0);
            let restarts = field("NRestarts").and_then(|n| n.parse().ok()).unwrap_or(0);
            Some((unit.clone(), StatusLine { name: unit, state: state.into(), pid, uptime: None }, restarts))
        })
        .collect()
}

/// Program names from supervisord's log lines "exited: NAME (...; not
/// expected)", once per unexpected exit since supervisord last started: a
/// box that was stopped (its processes killed) starts from zero.
async fn unexpected_exits(onbox: &BoxShell) -> Result<Vec<String>, ShellError> {
    let log = format!("{}/supervisord.log", onbox.layout.logs());
    let grep = format!("grep -h -e 'not expected)' -e 'supervisord started with pid' {} 2>/dev/null || true", sh(&log));
    Ok(exits_since_start(&onbox.run("reading supervisord's log", &grep).await?))
}

fn exits_since_start(log: &str) -> Vec<String> {
    let mut exits = Vec::new();
    for line in log.lines() {
        if line.contains("supervisord started with pid") {
            exits.clear();
        } else if let Some(name) = line.split_once("exited: ").and_then(|(_, r)| r.split_whitespace().next()) {
            exits.push(name.to_string());
        }
    }
    exits
}

async fn check(onbox: &BoxShell, health: &HealthCheck, directory: Option<&str>) -> Health {
    if let Some(cmd) = &health.command {
        check_command(onbox, cmd, directory).await
    } else if let Some(port) = health.tcp {
        match tokio::time::timeout(CHECK_TIMEOUT, onbox.session.tcp(port)).await {
            Ok(Ok(_)) => Health::Healthy,
            Ok(Err(_)) => Health::Unhealthy(format!("nothing accepts connections on port {port}")),
            Err(_) => Health::Unhealthy(format!("port {port} did not answer within {CHECK_TIMEOUT:?}")),
        }
    } else if let (Some(path), Some(port)) = (&health.http, health.port) {
        match tokio::time::timeout(CHECK_TIMEOUT, http_status(onbox, port, path)).await {
            Ok(Ok(code)) if (200..300).contains(&code) => Health::Healthy,
            Ok(Ok(code)) => Health::Unhealthy(format!("GET {path} on port {port} answered {code}")),
            Ok(Err(why)) => Health::Unhealthy(format!("GET {path} on port {port}: {why}")),
            Err(_) => Health::Unhealthy(format!("GET {path} on port {port} did not answer within {CHECK_TIMEOUT:?}")),
        }
    } else {
        Health::NoCheck
    }
}

async fn check_command(onbox: &BoxShell, command: &str, directory: Option<&str>) -> Health {
    let cd = directory.map(|d| format!("cd {} && ", sh(d))).unwrap_or_default();
    let secs = CHECK_TIMEOUT.as_secs();
    match onbox.check(&format!("{cd}timeout {secs} sh -c {} >/dev/null 2>&1", sh(command))).await {
        Ok(true) => Health::Healthy,
        Ok(false) => Health::Unhealthy(format!("`{command}` failed")),
        Err(e) => Health::Unhealthy(e.to_string()),
    }
}

/// The status code of `GET path` on the box's loopback, through SSH.
async fn http_status(onbox: &BoxShell, port: u16, path: &str) -> Result<u16, String> {
    let mut stream = onbox.session.tcp(port).await.map_err(|_| "connection refused".to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: workstation-health\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    line.split_whitespace().nth(1).filter(|_| line.starts_with("HTTP/")).and_then(|c| c.parse().ok()).ok_or_else(|| {
        if line.is_empty() {
            "connection closed without an answer".into()
        } else {
            format!("not an HTTP answer: {line:?}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisord_answers_over_xml_rpc_as_supervisorctl_prints() {
        let xml = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n\
            <value><struct>\n<member>\n<name>description</name>\n<value><string>pid 4242, uptime 0:01:02</string></value>\n</member>\n\
            <member>\n<name>name</name>\n<value><string>api</string></value>\n</member>\n\
            <member>\n<name>pid</name>\n<value><int>4242</int></value>\n</member>\n\
            <member>\n<name>statename</name>\n<value><string>RUNNING</string></value>\n</member>\n</struct></value>\n\
            <value><struct>\n<member>\n<name>description</name>\n<value><string>Exited too quickly (process log may have details)</string></value>\n</member>\n\
            <member>\n<name>name</name>\n<value><string>worker&amp;co</string></value>\n</member>\n\
            <member>\n<name>pid</name>\n<value><int>0</int></value>\n</member>\n\
            <member>\n<name>statename</name>\n<value><string>FATAL</string></value>\n</member>\n</struct></value>\n\
            </data></array></value>\n</param>\n</params>\n</methodResponse>\n";
        let lines = parse_process_info(xml);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].name.as_str(), lines[0].state.as_str(), lines[0].pid, lines[0].uptime.as_deref()),
            ("api", "RUNNING", Some(4242), Some("0:01:02"))
        );
        assert_eq!((lines[1].name.as_str(), lines[1].state.as_str(), lines[1].pid, lines[1].uptime.as_deref()), ("worker&co", "FATAL", None, None));
        assert!(parse_process_info("curl: (7) Couldn't connect to server").is_empty());
    }

    #[test]
    fn exits_count_from_the_last_start() {
        let log = "2026-12-02 10:00:00,000 INFO supervisord started with pid 10\n\
                   2026-12-02 10:01:00,000 WARN exited: api (terminated by SIGTERM; not expected)\n\
                   2026-12-02 11:00:00,000 INFO supervisord started with pid 99\n\
                   2026-12-02 11:05:00,000 WARN exited: worker (exit status 1; not expected)\n";
        assert_eq!(exits_since_start(log), ["worker"]);
    }

    #[test]
    fn systemd_units_read_as_supervisord_states() {
        let out = "Id=redis-cache.service\nActiveState=active\nMainPID=812\nNRestarts=2\n\n\
                   Id=postgresql.service\nActiveState=failed\nMainPID=0\nNRestarts=0\n";
        let got = parse_systemctl_show(out);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.as_str(), got[0].1.state.as_str(), got[0].1.pid, got[0].2), ("redis-cache.service", "RUNNING", Some(812), 2));
        assert_eq!((got[1].1.state.as_str(), got[1].1.pid), ("FATAL", None));
    }
}
