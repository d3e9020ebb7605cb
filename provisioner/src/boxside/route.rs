//! The box's side of a personal intercept (`intercept --header`/`--mirror`):
//! `workstation box route`, run as root as the remote command of the
//! intercept's SSH connection. The box's own service keeps running; only
//! the matching requests (or a copy of each) go to the laptop.
//!
//! Protocol, one line each way:
//! 1. it claims the route (a header someone else routes is refused:
//!    `taken <record>`), makes the data branches (`branch <json>` each),
//!    and says `ready`;
//! 2. the laptop forwards a box loopback port to its process and writes
//!    `port N`; the route is recorded, nginx reloaded, and it says `routed`;
//! 3. the laptop writes a line every heartbeat; end of input (the
//!    laptop ended, or was killed) or the lease without a line (asleep,
//!    offline) removes the route (nobody else's changes) and drops the
//!    branches unless `--keep`.
//!
//! A session killed outright leaves a record whose process is gone; the
//! next change of any route removes it ([`super::front::live_routes`]).

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

use super::branch::{self, Branch, BranchSpec};
use super::front::{self, FrontError};
use crate::stack::front::{FrontPaths, Match, Route};

/// How long the laptop may take to set its forward up.
const PORT_TIMEOUT: Duration = Duration::from_secs(60);
/// The exit status when the route is someone else's.
pub const TAKEN: i32 = 3;

pub struct RouteSession {
    pub paths: FrontPaths,
    pub service: String,
    pub by: String,
    pub matches: Match,
    pub branches: Vec<BranchSpec>,
    pub keep: bool,
    /// How long without a renewal ends the route (the intercept's lease).
    pub lease: Duration,
    /// The box's access log, where the route's start and end are recorded.
    pub log: Option<std::path::PathBuf>,
}

impl RouteSession {
    /// Runs the session on this process's stdin and stdout; returns the
    /// exit status.
    pub fn run(self) -> i32 {
        // The connection's end (SIGHUP, sshd's SIGTERM, a closed stdout)
        // must not skip the cleanup: end of input is the signal.
        // SAFETY: setting a signal's disposition to ignored.
        unsafe {
            for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGPIPE, libc::SIGINT] {
                libc::signal(sig, libc::SIG_IGN);
            }
        }
        let lines = stdin_lines();
        let mut route = Route {
            service: self.service.clone(),
            by: self.by.clone(),
            matches: self.matches.clone(),
            port: 0,
            pid: std::process::id(),
            since: chrono::Utc::now(),
            claims: Vec::new(),
            process: front::process_identity(std::process::id()).unwrap_or_default(),
        };
        match self.claim(&route) {
            Ok(None) => {}
            Ok(Some(holder)) => {
                say(&format!("taken {}", serde_json::to_string(&holder).expect("serializable")));
                return TAKEN;
            }
            Err(e) => {
                say(&format!("error: {e}"));
                return 4;
            }
        }
        let mut made: Vec<(BranchSpec, Branch)> = Vec::new();
        let ended = self.serve(&mut route, &lines, &mut made);
        let removed = self.release(&route);
        if route.port != 0 {
            self.note(&format!("intercept of {} ended ({})", self.service, self.matches.describe()));
        }
        if !self.keep {
            for (spec, b) in &made {
                if let Err(e) = branch::drop_branch(spec, b) {
                    eprintln!("workstation: {e}");
                }
            }
        }
        match (ended, removed) {
            (Ok(()), Ok(())) => 0,
            (Err(e), _) | (_, Err(e)) => {
                say(&format!("error: {e}"));
                4
            }
        }
    }

    /// Records the route with no port yet (a claim nginx does not route),
    /// unless a live route takes the same requests: then its record.
    fn claim(&self, route: &Route) -> Result<Option<Route>, FrontError> {
        let _lock = front::lock(&self.paths)?;
        if !front::fronts(&self.paths)?.iter().any(|f| f.service == self.service) {
            return Err(FrontError::NoFronts);
        }
        if let Some(holder) = front::live_routes(&self.paths)?.into_iter().find(|r| r.clashes(route)) {
            return Ok(Some(holder));
        }
        front::record(&self.paths, route)?;
        Ok(None)
    }

    fn serve(&self, route: &mut Route, lines: &mpsc::Receiver<String>, made: &mut Vec<(BranchSpec, Branch)>) -> Result<(), String> {
        for spec in &self.branches {
            // The name is chosen and claimed under the lock (no two
            // sessions share a branch); the copy is made after, so a long
            // dump holds nobody else's route up.
            let name = {
                let _lock = front::lock(&self.paths).map_err(|e| e.to_string())?;
                let prefix = format!("{}=", spec.store);
                let live = front::live_routes(&self.paths).map_err(|e| e.to_string())?;
                let taken: Vec<String> = live.iter().flat_map(|r| &r.claims).filter_map(|c| Some(c.strip_prefix(&prefix)?.to_string())).collect();
                let name = branch::choose(spec, &self.by, &taken).map_err(|e| e.to_string())?;
                route.claims.push(format!("{prefix}{name}"));
                front::record(&self.paths, route).map_err(|e| e.to_string())?;
                name
            };
            let b = branch::make(spec, &name).map_err(|e| e.to_string())?;
            say(&format!("branch {}", serde_json::to_string(&b).expect("serializable")));
            made.push((spec.clone(), b));
        }
        say("ready");
        let line = lines.recv_timeout(PORT_TIMEOUT).map_err(|_| "the laptop sent no port".to_string())?;
        route.port =
            line.strip_prefix("port ").and_then(|p| p.trim().parse().ok()).filter(|p| *p > 0).ok_or_else(|| format!("expected `port N`, got {line:?}"))?;
        {
            let _lock = front::lock(&self.paths).map_err(|e| e.to_string())?;
            front::record(&self.paths, route).map_err(|e| e.to_string())?;
            front::apply(&self.paths).map_err(|e| e.to_string())?;
        }
        say("routed");
        self.note(&format!("intercept of {} for {}", self.service, self.matches.describe()));
        // Renewals until end of input or a lease without one.
        while lines.recv_timeout(self.lease).is_ok() {}
        Ok(())
    }

    /// Records `what` in the access log, if there is one; a log that
    /// cannot be written does not end the intercept.
    fn note(&self, what: &str) {
        let Some(log) = &self.log else { return };
        let entry = super::access::Entry { at: chrono::Utc::now(), who: self.by.clone(), what: what.to_owned(), fingerprint: None };
        if let Err(e) = super::access::record(log, &entry) {
            eprintln!("workstation: cannot record the intercept in {}: {e}", log.display());
        }
    }

    fn release(&self, route: &Route) -> Result<(), String> {
        let _lock = front::lock(&self.paths).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(front::record_path(&self.paths, route.pid));
        front::apply(&self.paths).map_err(|e| e.to_string())
    }
}

/// This process's stdin, a line at a time, from a thread (so reads can
/// time out); the channel closes at end of input.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// One line to the laptop; a closed stdout is ignored (the laptop is gone,
/// and the session goes on to clean up).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
