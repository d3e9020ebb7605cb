//! When a box reports its activity (the `workstation:last-active` tag):
//! only when reap could otherwise act on an old report.
//!
//! The box decides its own stop on fresh data every minute; the tag exists
//! for `reap`, the backstop for boxes whose check does not run, which stops a
//! box [`crate::idle::reap::GRACE`] after the tags say it should have
//! stopped. Whatever the policy (reap's copy of the manifest may differ
//! from the box's), a box never should have stopped before its last
//! report, so reap never acts on a box sooner than `GRACE` after it: a box
//! in use renews its report [`LEAD`] before that, earlier by a jitter of up
//! to [`SPREAD`] so that a fleet started together does not report together.
//! It also reports at its first activity after each boot: reap counts the
//! start from EC2's LaunchTime, which a reboot does not move, and which the
//! box cannot read.
//!
//! A box in use reports about every `GRACE - LEAD - SPREAD / 2` (90 min),
//! plus once a boot. At 10,000 boxes all in use that is about 1.9
//! CreateTags a second, against the 10 a second that refill CreateTags'
//! own bucket of 100 (EC2's request throttling, cited in docs/idle.md);
//! reporting every 5 minutes was 33 a second.

use std::hash::{Hash, Hasher};

use chrono::{DateTime, Duration, Utc};

use crate::idle::reap::GRACE;

/// The latest a report is sent before reap could act on the old one: 15
/// checks, so a report that fails (throttled, the API unreachable, a busy
/// box) is retried 14 times.
pub const LEAD: Duration = Duration::minutes(15);

/// How much earlier than that a report may go, chosen per box and report.
pub const SPREAD: Duration = Duration::minutes(30);

/// Whether a box whose last activity is `last_active` (its own, fresh)
/// must report it now, given the last-active it last reported and when
/// this boot began. `jitter` is in [0, 1): see [`jitter`].
pub fn due(reported: Option<DateTime<Utc>>, booted: Option<DateTime<Utc>>, last_active: Option<DateTime<Utc>>, now: DateTime<Utc>, jitter: f64) -> bool {
    let Some(last) = last_active else { return false };
    match reported {
        // Nothing newer to say.
        Some(r) if r >= last => false,
        // Not since this boot: reap's idea of the start may be older.
        None => true,
        Some(r) if booted.is_some_and(|b| r < b) => true,
        Some(r) => now >= r + GRACE - LEAD - Duration::seconds((SPREAD.num_seconds() as f64 * jitter.clamp(0.0, 1.0)) as i64),
    }
}

/// A fraction in [0, 1) fixed for one box and one reported value, so each
/// box's reports fall at a different point of the spread, and a check that
/// runs again before the report succeeds keeps the same point.
pub fn jitter(box_id: &str, reported: Option<DateTime<Utc>>) -> f64 {
    let mut h = std::hash::DefaultHasher::new();
    (box_id, reported.map(|t| t.timestamp())).hash(&mut h);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idle::policy::{self, Seen};
    use crate::idle::reap;
    use crate::manifest::IdlePolicy;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 3, h, m, 0).unwrap()
    }

    /// A box in use from 09:00 for `hours` (launched at `launched`, booted
    /// at 09:00), checked every minute: the minutes it reports, and whether
    /// reap (from those reports and the launch time) would ever have
    /// stopped it while in use.
    fn run(policy: &IdlePolicy, launched: DateTime<Utc>, hours: i64, jitter: f64) -> (Vec<DateTime<Utc>>, bool) {
        let boot = at(9, 0);
        let (mut reported, mut reports, mut reaped) = (None, Vec::new(), false);
        for m in 0..hours * 60 {
            let now = boot + Duration::minutes(m);
            if due(reported, Some(boot), Some(now), now, jitter) {
                reported = Some(now);
                reports.push(now);
            }
            reaped |= reap::acts_on(policy, &Seen { last_active: reported, started_at: Some(launched), keep_until: None }, now).is_some();
        }
        (reports, reaped)
    }

    #[test]
    fn a_box_in_use_reports_once_a_boot_then_before_reap_could_act() {
        let policy = IdlePolicy::default();
        let (reports, reaped) = run(&policy, at(9, 0), 10, 0.0);
        assert!(!reaped);
        // At its first activity, then every 2h - 15m.
        assert_eq!(reports, [at(9, 0), at(10, 45), at(12, 30), at(14, 15), at(16, 0), at(17, 45)]);
        let (early, reaped) = run(&policy, at(9, 0), 10, 0.999);
        assert!(!reaped);
        assert_eq!(early[1], at(10, 16), "up to SPREAD earlier (the first check after 10:15:02)");
    }

    #[test]
    fn any_policy_and_a_reboot_are_safe() {
        // Reap's copy of the policy may differ from the box's: a short
        // timeout and a schedule stop every hour, and a box rebooted at
        // 09:00 whose launch time (what reap sees) is from 06:00.
        let text = "timeout = \"10m\"\nwarning = \"2m\"\n[[schedules]]\naction = \"stop\"\ncron = \"0 0 * * * *\"\ntimezone = \"UTC\"\n";
        let strict: IdlePolicy = toml::from_str(text).unwrap();
        for jitter in [0.0, 0.5, 0.999] {
            assert!(!run(&strict, at(6, 0), 12, jitter).1, "jitter {jitter}");
        }
        // What reap then sees is a stop no earlier than the report.
        let seen = Seen { last_active: Some(at(9, 0)), started_at: Some(at(6, 0)), keep_until: None };
        assert!(policy::decide(&strict, &seen, at(9, 0)).stop_at() > at(9, 0));
    }

    #[test]
    fn nothing_new_nothing_reported() {
        let boot = Some(at(9, 0));
        assert!(!due(Some(at(10, 0)), boot, Some(at(10, 0)), at(13, 0), 0.0));
        assert!(!due(None, boot, None, at(13, 0), 0.0));
        assert!(due(None, boot, Some(at(9, 1)), at(9, 1), 0.0), "first activity of a boot");
        assert!(due(Some(at(8, 0)), boot, Some(at(9, 1)), at(9, 1), 0.0), "reported before this boot");
        assert!(!due(Some(at(10, 0)), boot, Some(at(10, 1)), at(10, 1), 0.0));
    }

    #[test]
    fn jitter_spreads_boxes_and_is_stable() {
        let j: Vec<f64> = (0..1000).map(|i| jitter(&format!("i-{i:017x}"), None)).collect();
        assert!(j.iter().all(|x| (0.0..1.0).contains(x)));
        let below_half = j.iter().filter(|x| **x < 0.5).count();
        assert!((400..600).contains(&below_half), "{below_half}");
        assert_eq!(jitter("i-1", Some(at(9, 0))), jitter("i-1", Some(at(9, 0))));
    }
}
