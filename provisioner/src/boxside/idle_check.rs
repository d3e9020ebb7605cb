//! `workstation box idle-check`, run on the box every minute by a timer:
//! measure what is the box's own, decide with [`crate::idle::policy`], report
//! `workstation:last-active` when reap needs it ([`crate::idle::report`]),
//! warn logged-in users, stop the instance.
//!
//! Everything is measured through the box's network namespace, so one
//! implementation serves an EC2 box (where the namespace is the machine's)
//! and a local-provider box (a namespace on a shared machine):
//! - SSH sessions: per-connection counters from `ss -ti` (keepalives of a
//!   forgotten session do not count, see [`crate::boxside::activity`]);
//! - service traffic: an nftables counter of new connections (SYNs) to the manifest's
//!   service ports from outside the box (short HTTP requests between two
//!   checks count too), plus open connections on those ports;
//! - CPU: the CPU time of the processes in the namespace;
//! - `workstation sync`: the mtime of `<root>/run/sync-activity`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::boxside::activity::{self, Conn, Sample};
use crate::boxside::self_api::SelfApi;
use crate::boxside::BoxSideError;
use crate::idle::policy::{self, Seen, Verdict};
use crate::idle::report;
use crate::manifest::IdlePolicy;
use crate::provider::tags;
use crate::provider::usage::StoppedBy;

const NFT_TABLE: &str = "workstation";

/// What the check remembers between runs (`<root>/run/idle.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub sample: Option<Sample>,
    pub last_active: Option<DateTime<Utc>>,
    /// The last-active time last written to the tag (what reap sees).
    pub reported: Option<DateTime<Utc>>,
    /// The stop time users were last warned about (warn once per stop).
    pub warned_for: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Checked {
    pub at: DateTime<Utc>,
    pub active: Vec<String>,
    pub verdict: Verdict,
    /// Whether this check reported activity (the last-active tag), and why
    /// it could not.
    pub reported: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_failed: Option<String>,
    pub warned_ttys: usize,
    pub stopped: bool,
}

pub struct Check<'a> {
    pub policy: &'a IdlePolicy,
    pub ports: Vec<u16>,
    /// The box root (`<root>/run/idle.json`, the sync marker).
    pub root: PathBuf,
    pub api: &'a SelfApi,
    /// Hibernate rather than stop (the manifest's box.hibernate).
    pub hibernate: bool,
    /// Decide and report, but do not tag, warn or stop.
    pub dry_run: bool,
}

impl Check<'_> {
    fn state_file(&self) -> PathBuf {
        self.root.join("run/idle.json")
    }

    pub async fn run(&self, now: DateTime<Utc>) -> Result<Checked, BoxSideError> {
        let mut state: State = std::fs::read(self.state_file()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        ensure_counter(&self.ports);
        let (sample, started_at) = collect(&self.ports, &self.root.join("run/sync-activity"), now);
        let active = match &state.sample {
            Some(prev) if prev.at < now => activity::reasons(self.policy, prev, &sample),
            // No earlier sample: the box just booted, or resumed from
            // hibernation (a stop clears it), with processes older than
            // the resume: in use, as a start is.
            None => vec!["started or resumed".to_string()],
            Some(_) => Vec::new(),
        };
        if !active.is_empty() {
            state.last_active = Some(now);
        }
        state.sample = Some(sample);
        // Reported first: it needs neither the policy nor instance
        // metadata, so a slow IMDS does not hold reap's view back.
        let (mut reported, mut report_failed) = (false, None);
        let jitter = report::jitter(self.api.id(), state.reported);
        if let Some(last) = state.last_active.filter(|_| !self.dry_run && report::due(state.reported, started_at, state.last_active, now, jitter)) {
            // A failed report is not the check's failure: it decides from
            // its own data, and the next minute tries again.
            match self.api.tag(tags::LAST_ACTIVE, &rfc3339(last)).await {
                Ok(()) => (state.reported, reported) = (Some(last), true),
                Err(e) => {
                    tracing::warn!("reporting activity (tag {}): {e}; the next check tries again", tags::LAST_ACTIVE);
                    report_failed = Some(e.to_string());
                }
            }
        }
        let keep_until = match self.api.keep_until().await {
            Ok(k) => k,
            Err(e) => {
                // Saved, so the report is not sent again.
                if !self.dry_run {
                    self.save(&state)?;
                }
                return Err(e);
            }
        };
        let seen = Seen { last_active: state.last_active, started_at, keep_until };
        let verdict = policy::decide(self.policy, &seen, now);
        let mut checked = Checked { at: now, active, verdict: verdict.clone(), reported, report_failed, warned_ttys: 0, stopped: false };
        if !self.dry_run {
            match &verdict {
                Verdict::Warn { stop_at, reason } if state.warned_for != Some(*stop_at) => {
                    let minutes = (*stop_at - now).num_minutes().max(1);
                    let message = format!(
                        "\r\n*** workstation: this box stops in {minutes} min ({reason}).\r\n*** Type anything to keep it, or run `workstation keep --for 2h` on your laptop.\r\n"
                    );
                    checked.warned_ttys = warn_ttys(&message);
                    state.warned_for = Some(*stop_at);
                }
                Verdict::Stop { reason, .. } => {
                    self.api.tag(tags::STOPPED_BY, &StoppedBy::IdleCheck.tag(now, reason)).await?;
                    // Saved first: a box that starts again must not see the
                    // old samples as fresh.
                    state.sample = None;
                    self.save(&state)?;
                    self.api.stop(self.hibernate).await?;
                    checked.stopped = true;
                    return Ok(checked);
                }
                _ => {}
            }
            self.save(&state)?;
        }
        Ok(checked)
    }

    fn save(&self, state: &State) -> Result<(), BoxSideError> {
        let path = self.state_file();
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        workstation_hosts_protocol::atomic::write(&path, &json, 0o600).map_err(|e| BoxSideError::Io(format!("writing {}: {e}", path.display())))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An nftables counter of packets from outside the box to its service
/// ports, created once (a missing `nft` leaves the open-connection signal).
fn ensure_counter(ports: &[u16]) {
    if ports.is_empty() || Command::new("nft").args(["list", "counter", "inet", NFT_TABLE, "service"]).output().is_ok_and(|o| o.status.success()) {
        return;
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let script = format!(
        "table inet {NFT_TABLE} {{\n  counter service {{\n  }}\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    iifname != \"lo\" tcp dport {{ {} }} tcp flags & (syn | ack) == syn counter name service\n  }}\n}}\n",
        ports.join(", ")
    );
    let run = Command::new("nft").args(["-f", "-"]).stdin(std::process::Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write;
        c.stdin.take().expect("piped").write_all(script.as_bytes())?;
        c.wait()
    });
    if !run.is_ok_and(|s| s.success()) {
        tracing::warn!("could not create the nftables service counter; short requests between checks will not count");
    }
}

fn nft_bytes() -> Option<u64> {
    let out = Command::new("nft").args(["-j", "list", "counter", "inet", NFT_TABLE, "service"]).output().ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["nftables"].as_array()?.iter().find_map(|o| o["counter"]["bytes"].as_u64())
}

/// A sample of this namespace, and when its oldest process started (the
/// box's boot: a box that just started counts as in use).
fn collect(ports: &[u16], sync_marker: &Path, now: DateTime<Utc>) -> (Sample, Option<DateTime<Utc>>) {
    let mut sample = Sample { at: now, ..Default::default() };
    let ss = Command::new("ss").args(["-tinH", "state", "established"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for (port, key, conn) in activity::parse_ss(&ss) {
        if port == 22 {
            sample.ssh.insert(key, conn);
        } else if ports.contains(&port) {
            sample.service.insert(key, conn);
        }
    }
    if let Some(bytes) = nft_bytes() {
        sample.service.insert("nftables counter".into(), Conn { data_segs_in: 0, bytes_received: bytes });
    }
    let (cpu, started) = namespace_processes();
    sample.cpu_seconds = cpu;
    sample.sync_at = std::fs::metadata(sync_marker).and_then(|m| m.modified()).ok().map(DateTime::<Utc>::from);
    (sample, started)
}

/// Processes sharing this process's network namespace: (CPU seconds used,
/// earliest start time).
fn namespace_processes() -> (f64, Option<DateTime<Utc>>) {
    let Ok(own) = std::fs::read_link("/proc/self/ns/net") else { return (0.0, None) };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok()));
    let (mut cpu, mut earliest) = (0.0, None::<f64>);
    // Not this check itself (nor, through cutime, the ss and nft it ran).
    let me = std::process::id();
    for pid in in_namespace(&own).into_iter().filter(|p| *p != me) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the parenthesised command name (which may hold spaces).
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        // Own time plus that of reaped children: a build's compilers have
        // exited by the next check, but their time is in make's cutime.
        cpu += (field(14) + field(15) + field(16) + field(17)) / ticks;
        let start = field(22) / ticks;
        earliest = Some(earliest.map_or(start, |e| e.min(start)));
    }
    let started = boot.zip(earliest).and_then(|(b, e)| DateTime::<Utc>::from_timestamp(b + e as i64, 0));
    (cpu, started)
}

fn in_namespace(own: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|ns| ns == own))
        .collect()
}

/// Writes `message` to the terminal of every session in this namespace
/// (what `wall` does, limited to this box's sessions). Returns how many.
fn warn_ttys(message: &str) -> usize {
    let Ok(own) = std::fs::read_link("/proc/self/ns/net") else { return 0 };
    let ttys: BTreeMap<PathBuf, ()> = in_namespace(&own)
        .into_iter()
        .filter_map(|pid| std::fs::read_link(format!("/proc/{pid}/fd/0")).ok())
        .filter(|t| t.starts_with("/dev/pts/"))
        .map(|t| (t, ()))
        .collect();
    ttys.keys()
        .filter(|t| std::fs::OpenOptions::new().write(true).open(t).and_then(|mut f| std::io::Write::write_all(&mut f, message.as_bytes())).is_ok())
        .count()
}
