//! The agent's desired state and how it reaches the hosts file. Every
//! change writes the hosts file first and saves the state second, so a
//! crash in between is undone by the reconcile at the next start (the
//! caller got no "ok"), and a crash never leaves stale entries behind.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::block::{self, Entry};
use crate::hostsfile::{HostsError, HostsFile, Written};
use workstation_hosts_protocol::{BlockLine, NameStatus, Status, Target};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointing {
    pub target: Target,
    #[serde(default)]
    pub label: Option<String>,
}

/// What the agent was asked for, saved as JSON in the state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub names: BTreeMap<String, Pointing>,
    /// Last known address of each DNS target, so a restart writes the same
    /// block before the first new answer arrives.
    #[serde(default)]
    pub resolved: BTreeMap<String, IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error("saving the agent state to {path}: {source}")]
    Save { path: String, source: std::io::Error },
    #[error("reading the agent state {path}: {message}; move it aside to start from an empty state")]
    Load { path: String, message: String },
}

pub struct Agent {
    hosts: HostsFile,
    state_file: Option<PathBuf>,
    state: State,
    /// When each DNS target is due to be resolved again (its TTL).
    due: HashMap<String, Instant>,
}

impl Agent {
    /// Opens the agent over `hosts`, with its state in `state_file` (None:
    /// nothing is remembered, as for a one-shot `apply`).
    pub fn open(hosts: HostsFile, state_file: Option<PathBuf>) -> Result<Agent, AgentError> {
        let state = match &state_file {
            Some(path) => load(path)?,
            None => State::default(),
        };
        Ok(Agent { hosts, state_file, state, due: HashMap::new() })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Makes the hosts file match the saved state (crash recovery at start).
    pub fn reconcile(&mut self) -> Result<Written, AgentError> {
        Ok(self.hosts.write(&entries(&self.state))?)
    }

    /// Drops names the config no longer allows (an admin narrowed it).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, AgentError> {
        let mut next = self.state.clone();
        let dropped: Vec<String> = next.names.keys().filter(|n| !keep(n)).cloned().collect();
        next.names.retain(|n, _| keep(n));
        if !dropped.is_empty() {
            self.commit(next)?;
        }
        Ok(dropped)
    }

    /// Points `names` at `target`. For a DNS target, `resolved` is its
    /// address and how long that answer is valid.
    pub fn point(&mut self, names: &[String], target: Target, label: Option<String>, resolved: Option<(IpAddr, Instant)>) -> Result<Written, AgentError> {
        let mut next = self.state.clone();
        for name in names {
            next.names.insert(name.clone(), Pointing { target: target.clone(), label: label.clone() });
        }
        if let (Target::Dns(dns), Some((address, valid_until))) = (&target, resolved) {
            next.resolved.insert(dns.clone(), address);
            self.due.insert(dns.clone(), valid_until);
        }
        self.commit(next)
    }

    /// Stops pointing `names` (None: all of them).
    pub fn clear(&mut self, names: Option<&[String]>) -> Result<Written, AgentError> {
        let mut next = self.state.clone();
        match names {
            Some(names) => names.iter().for_each(|n| {
                next.names.remove(n);
            }),
            None => next.names.clear(),
        }
        self.commit(next)
    }

    /// DNS targets whose answer has expired (or never came).
    pub fn due(&self, now: Instant) -> Vec<String> {
        let mut out: Vec<String> = dns_targets(&self.state).into_iter().filter(|d| self.due.get(d).is_none_or(|t| *t <= now)).collect();
        out.dedup();
        out
    }

    /// Records a fresh answer for `dns`; rewrites the block if it moved.
    pub fn resolved(&mut self, dns: &str, address: IpAddr, valid_until: Instant) -> Result<Option<Written>, AgentError> {
        self.due.insert(dns.to_owned(), valid_until);
        if self.state.resolved.get(dns) == Some(&address) || !dns_targets(&self.state).iter().any(|d| d == dns) {
            return Ok(None);
        }
        let mut next = self.state.clone();
        next.resolved.insert(dns.to_owned(), address);
        self.commit(next).map(Some)
    }

    /// A failed lookup: keep the last address, try again after `retry`.
    pub fn resolve_failed(&mut self, dns: &str, retry: Duration) {
        self.due.insert(dns.to_owned(), Instant::now() + retry);
    }

    /// The names pointed now.
    pub fn pointed(&self) -> std::collections::BTreeSet<String> {
        self.state.names.keys().cloned().collect()
    }

    pub fn status(&self) -> Status {
        let now = Instant::now();
        let names = self
            .state
            .names
            .iter()
            .map(|(name, p)| {
                let (address, resolves_in) = match &p.target {
                    Target::Address(a) => (Some(*a), None),
                    Target::Dns(d) => (self.state.resolved.get(d).copied(), self.due.get(d).map(|t| t.saturating_duration_since(now).as_secs_f64())),
                };
                NameStatus { name: name.clone(), target: p.target.clone(), label: p.label.clone(), address, resolves_in }
            })
            .collect();
        // Read now, not remembered: the file is the truth a resolver sees.
        let block = std::fs::read(self.hosts.path())
            .ok()
            .and_then(|file| crate::block::entries(&file).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|e| BlockLine { address: e.address, names: e.names })
            .collect();
        Status { hosts_file: self.hosts.path().to_owned(), names, block }
    }

    fn commit(&mut self, mut next: State) -> Result<Written, AgentError> {
        let targets = dns_targets(&next);
        next.resolved.retain(|d, _| targets.contains(d));
        self.due.retain(|d, _| targets.contains(d));
        let written = self.hosts.write(&entries(&next))?;
        if let Some(path) = &self.state_file {
            save(path, &next)?;
        }
        self.state = next;
        Ok(written)
    }
}

fn dns_targets(state: &State) -> Vec<String> {
    let mut out: Vec<String> = state
        .names
        .values()
        .filter_map(|p| match &p.target {
            Target::Dns(d) => Some(d.clone()),
            Target::Address(_) => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The block for a state: every name whose address is known.
pub fn entries(state: &State) -> Vec<Entry> {
    block::group(state.names.iter().filter_map(|(name, p)| {
        let address = match &p.target {
            Target::Address(a) => Some(*a),
            Target::Dns(d) => state.resolved.get(d).copied(),
        };
        address.map(|a| (name.as_str(), a))
    }))
}

fn load(path: &Path) -> Result<State, AgentError> {
    let shown = || path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Load { path: shown(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(AgentError::Load { path: shown(), message: e.to_string() }),
    }
}

/// A crash leaves the old state or the new one.
fn save(path: &Path, state: &State) -> Result<(), AgentError> {
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    workstation_hosts_protocol::atomic::write(path, &json, 0o644).map_err(|source| AgentError::Save { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(dir: &Path) -> Agent {
        Agent::open(HostsFile::new(dir.join("hosts")), Some(dir.join("state/state.json"))).unwrap()
    }

    #[test]
    fn state_survives_a_restart_and_reconciles_a_lost_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let mut a = agent(dir.path());
        a.point(&["api.dev".into(), "web.dev".into()], Target::Address("10.0.0.5".parse().unwrap()), Some("me/dev".into()), None).unwrap();
        // Someone restores an old copy of the file: the block is gone.
        std::fs::write(dir.path().join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let mut b = agent(dir.path());
        b.reconcile().unwrap();
        assert_eq!(b.status().names.len(), 2);
        assert_eq!(HostsFile::new(dir.path().join("hosts")).entries().unwrap()[0].names, vec!["api.dev", "web.dev"]);
        b.clear(None).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("hosts")).unwrap(), "127.0.0.1 localhost\n");
    }

    #[test]
    fn dns_targets_follow_their_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = agent(dir.path());
        let soon = Instant::now() + Duration::from_secs(30);
        a.point(&["api.dev".into()], Target::Dns("box.example".into()), None, Some(("10.0.0.1".parse().unwrap(), soon))).unwrap();
        assert!(a.due(Instant::now()).is_empty());
        assert_eq!(a.due(soon), vec!["box.example".to_string()]);
        assert!(a.resolved("box.example", "10.0.0.1".parse().unwrap(), soon).unwrap().is_none(), "same answer, no write");
        assert!(a.resolved("box.example", "10.0.0.2".parse().unwrap(), soon).unwrap().is_some());
        assert_eq!(a.status().names[0].address, Some("10.0.0.2".parse().unwrap()));
        a.point(&["api.dev".into()], Target::Address("10.9.9.9".parse().unwrap()), None, None).unwrap();
        assert!(a.state().resolved.is_empty(), "unused answers are forgotten");
    }
}
