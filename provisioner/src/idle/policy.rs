//! When a box stops itself: the idle policy as a pure function of the
//! manifest's `[idle]` section, what was last seen of the box, and the time.
//! The box's minute timer, `workstation reap` and `workstation status` all
//! ask the same question here, so they can never disagree, and the tests
//! drive it with a simulated clock.
//!
//! The rules:
//! - A box stops `timeout` after its last activity.
//! - A `stop` schedule tick T stops a box that has been idle since
//!   `T - warning` (in use at 20:00 means not stopped at 20:00; the idle
//!   timeout still applies later).
//! - Nothing stops a box inside a `keep` or `start` window or before its keep-until
//!   (`workstation keep --for`); a stop that falls there moves to the end.
//! - Logged-in users are warned `warning` before the stop.
//! - Tags are claims a box or an engineer can write, not facts: a
//!   last-active time in the future (beyond a small clock skew) is not
//!   activity, and a keep-until beyond now + `max_keep` is ignored.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::manifest::{IdlePolicy, Schedule, ScheduleAction};

/// What is known about a box when deciding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// Last activity the box recorded (the `workstation:last-active` tag).
    pub last_active: Option<DateTime<Utc>>,
    /// When the box was (re)started: a box that just started is in use.
    pub started_at: Option<DateTime<Utc>>,
    /// `workstation keep --for` (the `workstation:keep-until` tag).
    pub keep_until: Option<DateTime<Utc>>,
}

impl Seen {
    /// What the box's tags (or local record) say.
    pub fn of(info: &crate::provider::BoxInfo) -> Seen {
        Seen { last_active: info.last_active, started_at: info.launched_at, keep_until: info.keep_until }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Keep running; it would stop at `stop_at`.
    Keep { stop_at: DateTime<Utc>, reason: String },
    /// Warn logged-in users: it stops at `stop_at`.
    Warn { stop_at: DateTime<Utc>, reason: String },
    /// Stop: it should have stopped at `since`.
    Stop { since: DateTime<Utc>, reason: String },
}

impl Verdict {
    pub fn is_stop(&self) -> bool {
        matches!(self, Verdict::Stop { .. })
    }

    /// When the box stops (or should have stopped) if nothing new is seen.
    pub fn stop_at(&self) -> DateTime<Utc> {
        match self {
            Verdict::Keep { stop_at, .. } | Verdict::Warn { stop_at, .. } => *stop_at,
            Verdict::Stop { since, .. } => *since,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC");
        match self {
            Verdict::Keep { stop_at, reason } => write!(f, "keep until {} ({reason})", at(stop_at)),
            Verdict::Warn { stop_at, reason } => write!(f, "warn: stops at {} ({reason})", at(stop_at)),
            Verdict::Stop { reason, .. } => write!(f, "stop ({reason})"),
        }
    }
}

/// How far ahead of the deciding clock a box's clock may run: a last-active
/// time further in the future than this is not believed.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Longest chain of windows a stop is pushed through (keep windows that
/// touch each other); past it the policy keeps the box, which is safe.
const MAX_DEFERRALS: usize = 64;

pub fn decide(policy: &IdlePolicy, seen: &Seen, now: DateTime<Utc>) -> Verdict {
    let warning = dur(policy.warning);
    let believed = |t: &DateTime<Utc>| *t <= now + CLOCK_SKEW;
    let last_active = seen.last_active.filter(believed);
    let started_at = seen.started_at.filter(believed);
    // `keep --for` caps itself, but anyone who may tag the box could write
    // a keep-until years away.
    let keep_until = seen.keep_until.filter(|k| *k <= now + dur(policy.max_keep));
    let last = last_active.max(started_at).unwrap_or(now);
    let idle_stop = last + dur(policy.timeout());
    let (mut stop_at, mut why) = (idle_stop, format!("idle since {} (timeout {})", hm(last), humantime::format_duration(policy.timeout())));
    if let Some(tick) = policy.schedules.iter().filter(|s| s.action == ScheduleAction::Stop).filter_map(|s| next_tick(s, last + warning)).min() {
        if tick < stop_at {
            (stop_at, why) = (tick, format!("scheduled stop at {} and idle since {}", hm(tick), hm(last)));
        }
    }
    for _ in 0..MAX_DEFERRALS {
        if let Some(end) = policy.schedules.iter().filter(|s| s.action.is_window()).filter_map(|s| window_containing(s, stop_at)).max() {
            (stop_at, why) = (end, format!("{why}; kept through a keep window until {}", hm(end)));
        } else if let Some(keep) = keep_until.filter(|k| *k > stop_at) {
            (stop_at, why) = (keep, format!("{why}; kept until {} by `workstation keep`", hm(keep)));
        } else {
            return if now >= stop_at {
                Verdict::Stop { since: stop_at, reason: why }
            } else if now >= stop_at - warning {
                Verdict::Warn { stop_at, reason: why }
            } else {
                Verdict::Keep { stop_at, reason: why }
            };
        }
    }
    Verdict::Keep { stop_at, reason: format!("{why}; keep windows chain past {MAX_DEFERRALS} deferrals") }
}

/// Since when `at` has been inside a `start` window, if it is (the
/// earliest start among overlapping windows): a team box stopped since
/// then, and not started since, is started (reap).
pub fn start_window(policy: &IdlePolicy, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    policy
        .schedules
        .iter()
        .filter(|s| s.action == ScheduleAction::Start)
        .filter_map(|s| window_containing(s, at).map(|end| end - dur(s.duration.unwrap_or_default())))
        .min()
}

fn dur(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

fn hm(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The schedule's first tick strictly after `after`, in its own zone (so
/// "20:00 Europe/Paris" is 20:00 on both sides of a DST change).
fn next_tick(s: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let schedule = cron::Schedule::from_str(&s.cron).ok()?;
    let tz: chrono_tz::Tz = s.timezone.parse().ok()?;
    schedule.after(&after.with_timezone(&tz)).next().map(|t| t.with_timezone(&Utc))
}

/// The end of this keep window if `at` falls inside one of its windows.
fn window_containing(s: &Schedule, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let length = dur(s.duration?);
    let schedule = cron::Schedule::from_str(&s.cron).ok()?;
    let tz: chrono_tz::Tz = s.timezone.parse().ok()?;
    // Every tick in (at - length, at] starts a window containing `at`;
    // the latest one's lasts longest (windows may overlap when ticks come
    // more often than a window lasts).
    let start = schedule.after(&(at - length).with_timezone(&tz)).map(|t| t.with_timezone(&Utc)).take_while(|t| *t <= at).last()?;
    Some(start + length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy(schedules: &str) -> IdlePolicy {
        let text = format!("timeout = \"45m\"\nwarning = \"10m\"\n{schedules}");
        toml::from_str(&text).unwrap()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// Runs a day minute by minute: `active(t)` says whether the box saw
    /// activity in that minute. Returns when it stopped and the warnings.
    fn simulate(
        p: &IdlePolicy,
        from: DateTime<Utc>,
        minutes: i64,
        keep_until: Option<DateTime<Utc>>,
        active: impl Fn(DateTime<Utc>) -> bool,
    ) -> (Option<DateTime<Utc>>, Vec<DateTime<Utc>>) {
        let mut seen = Seen { started_at: Some(from), keep_until, ..Default::default() };
        let mut warnings = Vec::new();
        for m in 0..minutes {
            let now = from + Duration::minutes(m);
            if active(now) {
                seen.last_active = Some(now);
            }
            match decide(p, &seen, now) {
                Verdict::Stop { .. } => return (Some(now), warnings),
                Verdict::Warn { .. } => warnings.push(now),
                Verdict::Keep { .. } => {}
            }
        }
        (None, warnings)
    }

    #[test]
    fn tags_in_the_future_are_claims_not_activity() {
        let p = policy("");
        let launched = at(2026, 3, 2, 9, 0);
        let now = at(2026, 3, 2, 10, 0);
        let year_2099 = Some(at(2099, 1, 1, 0, 0));
        // Active "in 2099": idle since its launch, so stopped an hour later.
        let forged = Seen { last_active: year_2099, started_at: Some(launched), keep_until: None };
        assert!(decide(&p, &forged, now).is_stop(), "{:?}", decide(&p, &forged, now));
        // A minute ahead is clock skew, and counts.
        let skewed = Seen { last_active: Some(now + Duration::minutes(1)), ..forged };
        assert!(!decide(&p, &skewed, now).is_stop());
        // Kept "until 2099": beyond max_keep, ignored; within it, honoured.
        let kept = |until| Seen { last_active: None, started_at: Some(launched), keep_until: Some(until) };
        assert!(decide(&p, &kept(at(2099, 1, 1, 0, 0)), now).is_stop());
        assert!(!decide(&p, &kept(now + Duration::hours(1)), now).is_stop());
    }

    #[test]
    fn lunch_break_with_a_silent_ssh_session_stops_after_the_timeout() {
        // Typing until 12:00; the session stays open but carries nothing
        // (the activity check does not count keepalives).
        let p = policy("");
        let (stopped, warnings) = simulate(&p, at(2026, 6, 3, 9, 0), 8 * 60, None, |t| t < at(2026, 6, 3, 12, 0));
        assert_eq!(stopped, Some(at(2026, 6, 3, 12, 44)));
        assert_eq!(warnings.first(), Some(&at(2026, 6, 3, 12, 34)), "warned 10 minutes ahead");
    }

    #[test]
    fn a_long_build_or_a_demo_keeps_it() {
        // CPU above the threshold or HTTP traffic every few minutes.
        let p = policy("");
        let (stopped, _) = simulate(&p, at(2026, 6, 3, 9, 0), 10 * 60, None, |t| t.timestamp() / 60 % 7 == 0);
        assert_eq!(stopped, None);
    }

    #[test]
    fn keep_alive_holds_then_expires() {
        let p = policy("");
        let keep = at(2026, 6, 3, 14, 0);
        let (stopped, _) = simulate(&p, at(2026, 6, 3, 9, 0), 8 * 60, Some(keep), |t| t < at(2026, 6, 3, 10, 0));
        assert_eq!(stopped, Some(keep), "stops when the keep-alive ends, not at 10:44");
    }

    #[test]
    fn scheduled_stop_spares_a_box_in_use_and_stops_an_idle_one() {
        let p = policy("[[schedules]]\naction = \"stop\"\ncron = \"0 0 20 * * Mon-Fri\"\ntimezone = \"Europe/Paris\"\n");
        // Idle since 19:20 Paris (17:20Z in June): 20:00 Paris comes
        // before the 45m timeout would.
        let (stopped, _) = simulate(&p, at(2026, 6, 3, 15, 0), 5 * 60, None, |t| t < at(2026, 6, 3, 17, 20));
        assert_eq!(stopped, Some(at(2026, 6, 3, 18, 0)), "20:00 Paris is 18:00Z in June");
        // Idle since 18:00 Paris: the timeout comes first.
        let (stopped, _) = simulate(&p, at(2026, 6, 3, 15, 0), 5 * 60, None, |t| t < at(2026, 6, 3, 16, 0));
        assert_eq!(stopped, Some(at(2026, 6, 3, 16, 44)));
        // In use at 19:56 Paris: 20:00 does not stop it (a 4h timeout later would).
        let mut long = p.clone();
        long.timeout = Some(std::time::Duration::from_secs(4 * 3600));
        let (stopped, _) = simulate(&long, at(2026, 6, 3, 15, 0), 5 * 60, None, |t| t < at(2026, 6, 3, 17, 57));
        assert_eq!(stopped, None);
    }

    #[test]
    fn schedules_follow_daylight_saving_time() {
        let mut p = policy("[[schedules]]\naction = \"stop\"\ncron = \"0 0 20 * * *\"\ntimezone = \"Europe/Paris\"\n");
        p.timeout = Some(std::time::Duration::from_secs(24 * 3600));
        // Paris leaves summer time on 2026-10-25: 20:00 is 18:00Z on the
        // 24th and 19:00Z on the 25th.
        let idle_since = Seen { started_at: Some(at(2026, 10, 24, 8, 0)), ..Default::default() };
        assert!(decide(&p, &idle_since, at(2026, 10, 24, 18, 0)).is_stop());
        assert!(!decide(&p, &idle_since, at(2026, 10, 24, 17, 59)).is_stop());
        let next_day = Seen { started_at: Some(at(2026, 10, 25, 8, 0)), ..Default::default() };
        assert!(!decide(&p, &next_day, at(2026, 10, 25, 18, 30)).is_stop());
        assert!(decide(&p, &next_day, at(2026, 10, 25, 19, 0)).is_stop());
    }

    #[test]
    fn keep_windows_defer_stops_to_their_end() {
        // Demo days: never stop 09:00-12:00 Tuesdays (New York).
        let p = policy("[[schedules]]\naction = \"keep\"\ncron = \"0 0 9 * * Tue\"\ntimezone = \"America/New_York\"\nduration = \"3h\"\n");
        // 2026-06-02 is a Tuesday; 09:00 EDT is 13:00Z. Idle from 13:00Z.
        let seen = Seen { started_at: Some(at(2026, 6, 2, 13, 0)), ..Default::default() };
        assert!(!decide(&p, &seen, at(2026, 6, 2, 15, 59)).is_stop());
        match decide(&p, &seen, at(2026, 6, 2, 15, 55)) {
            Verdict::Warn { stop_at, reason } => {
                assert_eq!(stop_at, at(2026, 6, 2, 16, 0));
                assert!(reason.contains("keep window"), "{reason}");
            }
            v => panic!("expected a warning before the window ends: {v:?}"),
        }
        assert!(decide(&p, &seen, at(2026, 6, 2, 16, 0)).is_stop());
        // Wednesday has no window.
        let wed = Seen { started_at: Some(at(2026, 6, 3, 13, 0)), ..Default::default() };
        assert!(decide(&p, &wed, at(2026, 6, 3, 13, 45)).is_stop());
    }
}
