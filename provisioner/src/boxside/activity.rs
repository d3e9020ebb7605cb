//! Is someone using the box? Two samples of what is the box's own (its
//! network namespace's TCP connections with their counters, the CPU time of
//! its processes, the sync marker), a minute apart, answer it. Open
//! connections alone never count: a forgotten SSH session sends keepalives
//! forever, so a session counts only when it carried more than keepalives.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::IdlePolicy;

/// Data segments an SSH client sends per minute with nobody typing
/// (ServerAliveInterval keepalives, at most one every 30 s in practice).
const SSH_KEEPALIVE_SEGMENTS: u64 = 2;

/// Counters of one TCP connection, from `ss -ti`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    pub data_segs_in: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// SSH connections by peer address.
    pub ssh: BTreeMap<String, Conn>,
    /// Connections to the manifest's service ports, by local:peer.
    pub service: BTreeMap<String, Conn>,
    /// CPU seconds used so far by the box's processes.
    pub cpu_seconds: f64,
    /// Last `workstation sync` upload.
    pub sync_at: Option<DateTime<Utc>>,
}

/// Why the box counts as in use between `prev` and `now` (empty: idle).
pub fn reasons(policy: &IdlePolicy, prev: &Sample, now: &Sample) -> Vec<String> {
    let mut out = Vec::new();
    let typed: Vec<&String> = now
        .ssh
        .iter()
        .filter(|(peer, c)| c.data_segs_in > prev.ssh.get(*peer).map_or(0, |p| p.data_segs_in) + SSH_KEEPALIVE_SEGMENTS)
        .map(|(peer, _)| peer)
        .collect();
    if !typed.is_empty() {
        out.push(format!("SSH traffic from {}", join(&typed)));
    }
    let served: Vec<&String> =
        now.service.iter().filter(|(k, c)| prev.service.get(*k).is_none_or(|p| c.bytes_received > p.bytes_received)).map(|(k, _)| k).collect();
    if !served.is_empty() {
        out.push(format!("service traffic on {}", join(&served)));
    }
    let seconds = (now.at - prev.at).num_milliseconds() as f64 / 1000.0;
    if seconds > 0.0 {
        let percent = (now.cpu_seconds - prev.cpu_seconds) / seconds * 100.0;
        if percent >= policy.cpu_percent {
            out.push(format!("CPU at {percent:.0}% of a core"));
        }
    }
    if now.sync_at.is_some_and(|s| s > prev.at) {
        out.push("workstation sync".into());
    }
    out
}

fn join(items: &[&String]) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(|s| s.as_str()).collect();
    if items.len() > 3 {
        format!("{} and {} more", shown.join(", "), items.len() - 3)
    } else {
        shown.join(", ")
    }
}

/// Established connections from `ss -tinH state established` output:
/// (local port, local:peer, counters).
pub fn parse_ss(text: &str) -> Vec<(u16, String, Conn)> {
    let mut out = Vec::new();
    let mut pending: Option<(u16, String)> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            // Recv-Q Send-Q Local Peer (with `state established`, no state column).
            let fields: Vec<&str> = line.split_whitespace().collect();
            pending = match fields.as_slice() {
                [.., local, peer] if local.contains(':') => local.rsplit(':').next().and_then(|p| p.parse().ok()).map(|port| (port, format!("{local}-{peer}"))),
                _ => None,
            };
        } else if let Some((port, key)) = pending.take() {
            let value = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix(':')?.parse().ok()).unwrap_or(0);
            out.push((port, key, Conn { data_segs_in: value("data_segs_in"), bytes_received: value("bytes_received") }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn sample(minute: i64, ssh_segs: u64, http_bytes: Option<u64>, cpu: f64) -> Sample {
        let mut s = Sample { at: DateTime::UNIX_EPOCH + Duration::minutes(minute), cpu_seconds: cpu, ..Default::default() };
        s.ssh.insert("10.0.0.9:50000".into(), Conn { data_segs_in: ssh_segs, bytes_received: ssh_segs * 100 });
        if let Some(b) = http_bytes {
            s.service.insert("10.0.0.5:8080-10.0.0.7:41000".into(), Conn { data_segs_in: 1, bytes_received: b });
        }
        s
    }

    #[test]
    fn an_open_ssh_session_with_only_keepalives_is_idle() {
        let p = IdlePolicy::default();
        assert!(reasons(&p, &sample(0, 100, None, 0.0), &sample(1, 102, None, 1.0)).is_empty());
        let typing = reasons(&p, &sample(0, 100, None, 0.0), &sample(1, 140, None, 1.0));
        assert_eq!(typing, vec!["SSH traffic from 10.0.0.9:50000"]);
    }

    #[test]
    fn service_traffic_cpu_and_sync_count() {
        let p = IdlePolicy::default();
        // A colleague's browser: a new connection, then bytes on it.
        assert!(reasons(&p, &sample(0, 0, None, 0.0), &sample(1, 0, Some(500), 0.0))[0].starts_with("service traffic on 10.0.0.5:8080"));
        assert!(!reasons(&p, &sample(0, 0, Some(500), 0.0), &sample(1, 0, Some(900), 0.0)).is_empty());
        assert!(reasons(&p, &sample(0, 0, Some(500), 0.0), &sample(1, 0, Some(500), 0.0)).is_empty());
        // A build: 45 of 60 CPU seconds is 75% of a core (threshold 25%).
        assert_eq!(reasons(&p, &sample(0, 0, None, 0.0), &sample(1, 0, None, 45.0)), vec!["CPU at 75% of a core"]);
        let mut synced = sample(1, 0, None, 0.0);
        synced.sync_at = Some(DateTime::UNIX_EPOCH + Duration::seconds(90));
        assert_eq!(reasons(&p, &sample(1, 0, None, 0.0), &synced), vec!["workstation sync"]);
    }

    #[test]
    fn parses_ss_output() {
        let text = "0      0      10.78.1.5:22   10.78.0.1:54321\n\t cubic wscale:7,7 rto:204 bytes_sent:2000 bytes_received:5678 segs_out:20 segs_in:25 data_segs_out:10 data_segs_in:12 lastrcv:304\n0 0 [::ffff:10.78.1.5]:8080 [::ffff:10.78.0.7]:41000\n\t bbr bytes_received:3243 data_segs_in:2\n";
        let conns = parse_ss(text);
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[0], (22, "10.78.1.5:22-10.78.0.1:54321".into(), Conn { data_segs_in: 12, bytes_received: 5678 }));
        assert_eq!(conns[1].0, 8080);
        assert_eq!(conns[1].2.bytes_received, 3243);
    }
}
