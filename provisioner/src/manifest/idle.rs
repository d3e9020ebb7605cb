//! `[idle]`: when the box stops itself, and the cron schedules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdlePolicy {
    /// Stop after this long without activity.
    #[serde(with = "humantime_serde", default = "default_idle_timeout")]
    pub timeout: Duration,
    /// Warn logged-in users this long before stopping.
    #[serde(with = "humantime_serde", default = "default_warning")]
    pub warning: Duration,
    /// Longest `workstation keep --for` accepted.
    #[serde(with = "humantime_serde", default = "default_max_keep")]
    pub max_keep: Duration,
    /// CPU use (percent of one core) that counts as activity.
    #[serde(default = "default_cpu_threshold")]
    pub cpu_percent: f64,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
}

/// 45 minutes: the shortest timeout that keeps wakes under two a day in
/// bench/idle-month.sh's month (docs/idle.md has the table).
fn default_idle_timeout() -> Duration {
    Duration::from_secs(45 * 60)
}
fn default_warning() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_max_keep() -> Duration {
    Duration::from_secs(12 * 60 * 60)
}
fn default_cpu_threshold() -> f64 {
    25.0
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self {
            timeout: default_idle_timeout(),
            warning: default_warning(),
            max_keep: default_max_keep(),
            cpu_percent: default_cpu_threshold(),
            schedules: Vec::new(),
        }
    }
}

/// `stop` at each cron tick, `keep` the box up for `duration` from each
/// tick (a demo window), or `start` it at each tick and keep it up for
/// `duration` (team boxes' working hours, `[team_idle]` only: reap starts
/// a stopped team box inside such a window).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub action: ScheduleAction,
    /// Seconds-first cron expression, e.g. "0 0 20 * * Mon-Fri".
    pub cron: String,
    /// IANA zone, e.g. "Europe/Paris".
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(with = "humantime_serde", default)]
    pub duration: Option<Duration>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleAction {
    Stop,
    Keep,
    Start,
}

impl ScheduleAction {
    /// Keeps the box up for its duration from each tick.
    pub fn is_window(self) -> bool {
        matches!(self, ScheduleAction::Keep | ScheduleAction::Start)
    }
}
