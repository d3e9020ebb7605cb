//! A box's hours by month, kept in its `workstation:usage` tag.
//!
//! EC2 tells only the current state: running since LaunchTime, or stopped
//! since the time in StateTransitionReason. So each start through
//! workstation (`start`, wake on connect, `share --start`, reap's working
//! hours) adds the two intervals that just ended, the run and the stop, to
//! the ledger before tagging it (one CreateTags a start); `cost` adds the
//! open interval when it reads. A start from the console, or a tag lost to a
//! kill between StartInstances and CreateTags, leaves those two intervals
//! out: the ledger is an estimate, and Cost Explorer has the bill.
//!
//! Anyone who may tag the box can write the tag, so it is read strictly: a
//! value that does not parse is an empty ledger.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(t: DateTime<Utc>) -> Month {
        Month { year: t.year(), month: t.month() }
    }

    /// `YYYY-MM`, for `--month` and the tag.
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.split_once('-')?;
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        (y.len() == 4 && m.len() == 2 && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a valid month").and_hms_opt(0, 0, 0).expect("midnight"))
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month { year: self.year - 1, month: 12 }
        } else {
            Month { year: self.year, month: self.month - 1 }
        }
    }

    /// The seconds of `[from, to)` that fall in this month.
    pub fn overlap_s(self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let (a, b) = (from.max(self.start()), to.min(self.next().start()));
        u64::try_from((b - a).num_seconds()).unwrap_or(0)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a box was stopped, as its `workstation:stopped-by` tag tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoppedBy {
    /// The box's own idle check.
    IdleCheck,
    /// `workstation reap`.
    Reap,
    /// Its owner, the console, or unknown.
    Other,
}

impl StoppedBy {
    /// How the stopper's `workstation:stopped-by` tag begins.
    fn prefix(self) -> Option<&'static str> {
        match self {
            StoppedBy::IdleCheck => Some("box idle-check at "),
            StoppedBy::Reap => Some("reap at "),
            StoppedBy::Other => None,
        }
    }

    /// The `workstation:stopped-by` value the idle check or reap writes
    /// as it stops a box at `at` (at most 256 characters, EC2's limit for
    /// a tag value); [`StoppedBy::of`] reads it back.
    pub fn tag(self, at: DateTime<Utc>, why: &str) -> String {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!("{}{at}: {why}", self.prefix().unwrap_or_default()).chars().take(256).collect()
    }

    /// The stopper that tagged the box within 15 minutes before the stop
    /// at `stopped_at` (a tag from an earlier stop tells nothing of this one).
    pub fn of(tag: Option<&str>, stopped_at: DateTime<Utc>) -> StoppedBy {
        let Some(tag) = tag else { return StoppedBy::Other };
        let Some((by, rest)) = [StoppedBy::IdleCheck, StoppedBy::Reap].into_iter().find_map(|by| Some((by, tag.strip_prefix(by.prefix()?)?))) else {
            return StoppedBy::Other;
        };
        // (model.rs's parse_time would make a module cycle: model holds a Usage.)
        let at = rest.split_once(": ").and_then(|(at, _)| DateTime::parse_from_rfc3339(at).ok());
        match at.map(|t| t.with_timezone(&Utc)) {
            Some(t) if (stopped_at - t).num_minutes().abs() <= 15 => by,
            _ => StoppedBy::Other,
        }
    }
}

/// One month's seconds: running, and stopped by each stopper.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Hours {
    pub running_s: u64,
    pub stopped_idle_s: u64,
    pub stopped_reap_s: u64,
    pub stopped_other_s: u64,
}

impl Hours {
    pub fn add_stopped(&mut self, by: StoppedBy, s: u64) {
        match by {
            StoppedBy::IdleCheck => self.stopped_idle_s += s,
            StoppedBy::Reap => self.stopped_reap_s += s,
            StoppedBy::Other => self.stopped_other_s += s,
        }
    }
}

/// The ledger: this month and the last, and when workstation last
/// started the box.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub months: BTreeMap<Month, Hours>,
    pub since: Option<DateTime<Utc>>,
}

/// Months the tag keeps (tag values hold 256 characters).
const KEPT_MONTHS: usize = 2;

impl Usage {
    /// The tag's value, e.g. `v1 since=1764950400 2026-12=r3600/i600/p0/o0`;
    /// anything else is an empty ledger.
    pub fn parse(value: Option<&str>) -> Usage {
        value.and_then(Self::strict).unwrap_or_default()
    }

    fn strict(value: &str) -> Option<Usage> {
        let mut words = value.split(' ');
        (words.next()? == "v1").then_some(())?;
        let mut usage = Usage::default();
        for word in words {
            if let Some(t) = word.strip_prefix("since=") {
                usage.since.is_none().then_some(())?;
                usage.since = Some(DateTime::from_timestamp(t.parse().ok()?, 0)?);
                continue;
            }
            let (month, hours) = word.split_once('=')?;
            let fields: Vec<u64> = hours.split('/').zip(["r", "i", "p", "o"]).map(|(f, p)| f.strip_prefix(p)?.parse().ok()).collect::<Option<_>>()?;
            let [running_s, stopped_idle_s, stopped_reap_s, stopped_other_s] = fields[..] else { return None };
            // A month holds at most 31 days of seconds (each checked before
            // the sum, which could otherwise overflow).
            let month_s = 31 * 86_400;
            (fields.iter().all(|f| *f <= month_s) && fields.iter().sum::<u64>() <= month_s).then_some(())?;
            let hours = Hours { running_s, stopped_idle_s, stopped_reap_s, stopped_other_s };
            usage.months.insert(Month::parse(month)?, hours).is_none().then_some(())?;
        }
        (usage.months.len() <= KEPT_MONTHS).then_some(usage)
    }

    pub fn to_tag(&self) -> String {
        let mut out = "v1".to_string();
        if let Some(s) = self.since {
            out += &format!(" since={}", s.timestamp());
        }
        for (m, h) in &self.months {
            out += &format!(" {m}=r{}/i{}/p{}/o{}", h.running_s, h.stopped_idle_s, h.stopped_reap_s, h.stopped_other_s);
        }
        out
    }

    /// Adds `[from, to)`, split by month; keeps the last two months.
    pub fn add(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, mut add: impl FnMut(&mut Hours, u64)) {
        let mut month = Month::of(from);
        while month.start() < to {
            let s = month.overlap_s(from, to);
            if s > 0 {
                add(self.months.entry(month).or_default(), s);
            }
            month = month.next();
        }
        while self.months.len() > KEPT_MONTHS {
            self.months.pop_first();
        }
    }

    /// The ledger after a stopped box is started at `now`: its run (from
    /// the later of our last start and EC2's LaunchTime, to the stop) and
    /// its stop (to now), attributed to whoever stopped it.
    pub fn after_start(&self, launched_at: Option<DateTime<Utc>>, stopped_at: DateTime<Utc>, stopped_by: StoppedBy, now: DateTime<Utc>) -> Usage {
        let mut next = self.clone();
        if let Some(ran_from) = self.since.max(launched_at).filter(|t| *t < stopped_at) {
            next.add(ran_from, stopped_at, |h, s| h.running_s += s);
        }
        next.add(stopped_at, now, |h, s| h.add_stopped(stopped_by, s));
        next.since = Some(now);
        next
    }

    /// `month`'s hours up to `now`, with what the ledger does not hold yet:
    /// a running box's run so far, or a stopped box's last run and its stop
    /// so far (what the next start will add).
    pub fn month_until(&self, month: Month, open: Open, now: DateTime<Utc>) -> Hours {
        let mut with_open = self.clone();
        match open {
            Open::Running { since } => {
                if let Some(from) = since.filter(|t| *t < now) {
                    with_open.add(from, now, |h, s| h.running_s += s);
                }
            }
            Open::Stopped { launched_at, at, by } if at < now => with_open = self.after_start(launched_at, at, by, now),
            Open::Stopped { .. } | Open::Unknown => {}
        }
        with_open.months.get(&month).copied().unwrap_or_default()
    }
}

/// What EC2 says of a box now, beyond its ledger.
#[derive(Debug, Clone, Copy)]
pub enum Open {
    /// Running since (the later of workstation's last start and EC2's
    /// LaunchTime).
    Running { since: Option<DateTime<Utc>> },
    /// Stopped at `at` by `by`, after a run from `launched_at`.
    Stopped { launched_at: Option<DateTime<Utc>>, at: DateTime<Utc>, by: StoppedBy },
    /// Pending, stopping without a time, or gone.
    Unknown,
}

/// The stop time EC2 puts in StateTransitionReason, e.g. "User initiated
/// (2026-12-05 10:11:12 GMT)" (moto writes UTC).
pub fn stopped_at(reason: &str) -> Option<DateTime<Utc>> {
    let inner = reason.split_once('(')?.1.split_once(')')?.0;
    let stamp = inner.strip_suffix(" GMT").or_else(|| inner.strip_suffix(" UTC"))?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").ok().map(|t| Utc.from_utc_datetime(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_tag_round_trips_and_refuses_what_it_did_not_write() {
        let mut u = Usage { since: Some(t("2026-12-05T08:00:00Z")), ..Default::default() };
        u.add(t("2026-11-30T23:00:00Z"), t("2026-12-01T01:00:00Z"), |h, s| h.running_s += s);
        assert_eq!(u.to_tag(), "v1 since=1796457600 2026-11=r3600/i0/p0/o0 2026-12=r3600/i0/p0/o0");
        assert_eq!(Usage::parse(Some(&u.to_tag())), u);
        for bad in [
            "",
            "v2 2026-12=r1/i0/p0/o0",
            "v1 2026-13=r1/i0/p0/o0",
            "v1 2026-12=r1/i0/p0",
            "v1 2026-12=i1/r0/p0/o0",
            "v1 2026-12=r9999999999/i0/p0/o0",
            "v1 since=x",
            "v1 2026-12=r18446744073709551615/i1/p0/o0",
            "v1 2026-12=r1/i0/p0/o0 2026-12=r1/i0/p0/o0",
            "v1 since=1 since=2",
        ] {
            assert_eq!(Usage::parse(Some(bad)), Usage::default(), "{bad}");
        }
    }

    #[test]
    fn a_start_adds_the_run_and_the_stop_that_ended_and_keeps_two_months() {
        let u = Usage::default();
        // Launched 09:00, stopped idle at 12:00, started again 13:30.
        let u = u.after_start(Some(t("2026-12-01T09:00:00Z")), t("2026-12-01T12:00:00Z"), StoppedBy::IdleCheck, t("2026-12-01T13:30:00Z"));
        let h = u.months[&Month::parse("2026-12").unwrap()];
        assert_eq!((h.running_s, h.stopped_idle_s), (3 * 3600, 5400));
        // Open interval: running since 13:30, read at 14:00.
        let now = u.month_until(Month::parse("2026-12").unwrap(), Open::Running { since: u.since }, t("2026-12-01T14:00:00Z"));
        assert_eq!(now.running_s, 3 * 3600 + 1800);
        // Months roll: only the last two are kept.
        let mut u = u;
        u.add(t("2027-01-31T23:00:00Z"), t("2027-02-01T01:00:00Z"), |h, s| h.stopped_other_s += s);
        assert_eq!(u.months.keys().map(|m| m.to_string()).collect::<Vec<_>>(), ["2027-01", "2027-02"]);
    }

    #[test]
    fn the_stopper_counts_only_for_the_stop_it_made() {
        let at = t("2026-12-05T10:11:12Z");
        assert_eq!(StoppedBy::of(Some("box idle-check at 2026-12-05T10:10:00Z: idle since 09:25 (timeout 45m)"), at), StoppedBy::IdleCheck);
        assert_eq!(StoppedBy::of(Some("reap at 2026-12-05T10:11:00Z: idle per policy"), at), StoppedBy::Reap);
        assert_eq!(StoppedBy::of(Some("reap at 2026-12-01T10:11:00Z: idle per policy"), at), StoppedBy::Other);
        assert_eq!(StoppedBy::of(Some("someone"), at), StoppedBy::Other);
        // What the stoppers write is what is read back.
        let written = t("2026-12-05T10:10:00Z");
        assert_eq!(StoppedBy::of(Some(&StoppedBy::IdleCheck.tag(written, "idle since 09:25 (timeout 45m)")), at), StoppedBy::IdleCheck);
        assert_eq!(StoppedBy::of(Some(&StoppedBy::Reap.tag(written, "idle per policy")), at), StoppedBy::Reap);
        assert_eq!(stopped_at("User initiated (2026-12-05 10:11:12 GMT)"), Some(at));
        assert_eq!(stopped_at("User initiated (2026-12-05 10:11:12 UTC)"), Some(at));
        assert_eq!(stopped_at("Server.ScheduledStop"), None);
    }
}
