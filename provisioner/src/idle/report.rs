//! When a box reports its activity (the `workstation:last-active` tag):
//! only when what `reap` would decide from the tags could otherwise change.
//!
//! The box decides its own stop on fresh data every minute; the tag exists
//! for `reap`, the backstop for boxes whose check does not run, which stops a
//! box [`crate::idle::reap::GRACE`] after the tags say it should have
//! stopped. So a box in use must renew the tag before that moment, and need
//! not before: it reports when it is within [`LEAD`] of it, earlier by a
//! jitter of up to [`SPREAD`] so that a fleet started together does not
//! report together. A box in use reports about every `timeout + GRACE -
//! LEAD - SPREAD / 2` (2 h 25 min at the default 45m timeout); one running
//! for less than that never reports. At 10,000 boxes all in use that is
//! about 1.15 CreateTags a second, against the 10 a second that refill
//! CreateTags' own bucket of 100 (EC2's request throttling, cited in
//! docs/idle.md); reporting every 5 minutes was 33 a second.

use std::hash::{Hash, Hasher};

use chrono::{DateTime, Duration, Utc};

use crate::idle::policy::{self, Seen};
use crate::idle::reap;
use crate::manifest::IdlePolicy;

/// The latest a report is sent before reap would act on the old one: five
/// checks, so a report that fails (throttled, the API unreachable) is
/// retried four times, and a box whose clock or boot time differs from
/// EC2's LaunchTime by a minute is still early.
pub const LEAD: Duration = Duration::minutes(5);

/// How much earlier than that a report may go, chosen per box and report.
pub const SPREAD: Duration = Duration::minutes(30);

/// Whether a box whose last activity is `last_active` (its own, fresh)
/// must report it now, given what it reported before (`reported`: the
/// tagged last-active, its start and keep-until, as reap sees them).
/// `jitter` is in [0, 1): see [`jitter`].
pub fn due(policy: &IdlePolicy, reported: &Seen, last_active: Option<DateTime<Utc>>, now: DateTime<Utc>, jitter: f64) -> bool {
    let Some(last) = last_active else { return false };
    // Nothing new to say: reap already counts the box as active since then.
    if reported.last_active.max(reported.started_at).is_some_and(|r| r >= last) {
        return false;
    }
    let reap_acts_at = policy::decide(policy, reported, now).stop_at() + reap::GRACE;
    now >= reap_acts_at - LEAD - Duration::seconds((SPREAD.num_seconds() as f64 * jitter.clamp(0.0, 1.0)) as i64)
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
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 3, h, m, 0).unwrap()
    }

    /// A box in use from 09:00 for `hours`, checked every minute: the
    /// minutes it reports, and whether reap (from those reports) would ever
    /// have stopped it while it was in use.
    fn run(policy: &IdlePolicy, hours: i64, jitter: f64) -> (Vec<DateTime<Utc>>, bool) {
        let start = at(9, 0);
        let mut reported = Seen { started_at: Some(start), ..Default::default() };
        let (mut reports, mut reaped) = (Vec::new(), false);
        for m in 0..hours * 60 {
            let now = start + Duration::minutes(m);
            if due(policy, &reported, Some(now), now, jitter) {
                reported.last_active = Some(now);
                reports.push(now);
            }
            let verdict = policy::decide(policy, &reported, now);
            reaped |= verdict.is_stop() && now - verdict.stop_at() >= reap::GRACE;
        }
        (reports, reaped)
    }

    #[test]
    fn a_box_in_use_reports_only_before_reap_would_act() {
        let policy = IdlePolicy::default(); // 45m timeout
        let (reports, reaped) = run(&policy, 10, 0.0);
        assert!(!reaped);
        // Started at 09:00: reap would act at 09:45 + 2h = 11:45.
        assert_eq!(reports.first(), Some(&at(11, 40)));
        // Then every 45m + 2h - 5m: 14:20, 17:00.
        assert_eq!(reports, [at(11, 40), at(14, 20), at(17, 0)]);
        let (early, reaped) = run(&policy, 10, 0.999);
        assert!(!reaped);
        assert_eq!(early.first(), Some(&at(11, 11)), "up to SPREAD earlier");
    }

    #[test]
    fn nothing_new_nothing_reported() {
        let policy = IdlePolicy::default();
        let reported = Seen { started_at: Some(at(9, 0)), last_active: Some(at(10, 0)), keep_until: None };
        assert!(!due(&policy, &reported, Some(at(10, 0)), at(13, 0), 0.0));
        assert!(!due(&policy, &reported, None, at(13, 0), 0.0));
        assert!(due(&policy, &reported, Some(at(10, 1)), at(13, 0), 0.0));
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
