//! `[idle]`: when the box stops itself, and the cron schedules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdlePolicy {
    /// Stop after this long without activity. Unset, the parsed manifest
    /// holds [`default_idle_timeout`] for its box (see [`IdlePolicy::timeout`]).
    #[serde(with = "humantime_serde", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
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

/// The month of bench/idle-month.sh chooses (docs/idle.md has the table,
/// tests/tests/idle_month.rs checks these are its choices): the timeout
/// that bills least while no box stops at its engineer, cold wakes stay
/// under two a day and warnings at most five. That is 45 minutes for a box
/// that boots when woken (shorter ones wake it more often), and 20 for one
/// that resumes from hibernation (`box.hibernate`: no wake is cold, and
/// shorter ones warn too often).
pub fn default_idle_timeout(hibernate: bool) -> Duration {
    Duration::from_secs(if hibernate { HIBERNATING_MIN } else { 45 } * 60)
}
const HIBERNATING_MIN: u64 = 20;
fn default_warning() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_max_keep() -> Duration {
    Duration::from_secs(12 * 60 * 60)
}
fn default_cpu_threshold() -> f64 {
    25.0
}

impl IdlePolicy {
    /// The idle timeout: the manifest's, else the default of a box that
    /// boots when woken (a parsed manifest has filled in its box's).
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or_else(|| default_idle_timeout(false))
    }
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self { timeout: None, warning: default_warning(), max_keep: default_max_keep(), cpu_percent: default_cpu_threshold(), schedules: Vec::new() }
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
