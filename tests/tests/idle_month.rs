//! A month of synthetic activity through the idle policy, with wake on
//! connect: for a grid of timeouts (with and without the 20:00 weekday
//! stop), billed hours per active hour, stops while the engineer was at the
//! box, and wakes per engineer-day with their wait. The benchmark
//! (bench/idle-month.sh, an ignored test) runs 50 engineers and compares
//! the naive "stop after 30 minutes without an SSH connection"; a test
//! pins the table for a small fixed set of engineers.

use chrono::{DateTime, Duration, TimeZone, Utc};
use workstation::idle::policy::{decide, Seen, Verdict};
use workstation::manifest::IdlePolicy;

const ENGINEERS: u64 = 50;
const DAYS: i64 = 30;

/// One engineer-minute.
#[derive(Clone, Copy, Default)]
struct Minute {
    /// Signals the box sees: typing, a build's CPU, demo traffic, sync.
    active: bool,
    /// The engineer is at the box (working, or reading without a signal).
    present: bool,
    /// An SSH connection is open (what the naive policy looks at).
    connected: bool,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next(100) < percent
    }
}

/// A month of one engineer's minutes, from 2026-06-01 (a Monday), UTC.
fn trace(seed: u64) -> Vec<Minute> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut m = vec![Minute::default(); (DAYS * 1440) as usize];
    let mut forgot_until = 0usize;
    for day in 0..DAYS as usize {
        let base = day * 1440;
        let weekday = day % 7 < 5;
        if !weekday {
            if rng.chance(10) {
                let start = base + 600 + rng.next(300) as usize;
                m[start..start + 60].fill(Minute { active: true, present: true, connected: true });
            }
            continue;
        }
        let arrive = base + 480 + rng.next(120) as usize;
        let leave = base + 1020 + rng.next(150) as usize;
        let lunch = base + 720 + rng.next(30) as usize;
        let lunch_end = lunch + 45 + rng.next(30) as usize;
        // Yesterday's forgotten session stays open until today's arrival.
        m[forgot_until.min(arrive)..arrive].iter_mut().for_each(|x| x.connected = true);
        let mut t = arrive;
        while t < leave {
            if (lunch..lunch_end).contains(&t) {
                m[t].connected = true; // the laptop stays open on the desk
                t += 1;
                continue;
            }
            let kind = rng.next(100);
            let len = 10 + rng.next(60) as usize;
            for x in &mut m[t..(t + len).min(leave)] {
                match kind {
                    0..=49 => *x = Minute { active: true, present: true, connected: true },   // typing
                    50..=64 => *x = Minute { active: false, present: true, connected: true }, // reading
                    65..=79 => *x = Minute { active: true, present: true, connected: rng.chance(50) }, // build
                    80..=89 => *x = Minute { active: false, present: false, connected: rng.chance(50) }, // meeting
                    _ => *x = Minute { active: rng.chance(70), present: false, connected: false }, // demo traffic
                }
            }
            t += len;
        }
        if rng.chance(30) {
            forgot_until = base + 1440 + 480;
            m[leave..base + 1440].iter_mut().for_each(|x| x.connected = true);
        }
    }
    m
}

#[derive(Default, Clone, Copy)]
struct Outcome {
    billed: u64,
    active: u64,
    stops_while_present: u64,
    /// Starts when the engineer came back to a stopped box: with wake on
    /// connect, each is a wait for the box, not a dead end.
    wakes: u64,
    /// Days on which the engineer used the box at all.
    days_used: u64,
    /// Minutes with a signal or someone at the box: billing cannot go
    /// below these (reading at the box gives no signal, yet needs it).
    in_use: u64,
    warnings_answered: u64,
}

impl Outcome {
    fn add(&mut self, o: Outcome) {
        self.billed += o.billed;
        self.active += o.active;
        self.stops_while_present += o.stops_while_present;
        self.wakes += o.wakes;
        self.days_used += o.days_used;
        self.in_use += o.in_use;
        self.warnings_answered += o.warnings_answered;
    }
    fn billed_per_active(&self) -> f64 {
        self.billed as f64 / self.active as f64
    }
    fn billed_per_in_use(&self) -> f64 {
        self.billed as f64 / self.in_use as f64
    }
    fn wakes_per_day(&self) -> f64 {
        self.wakes as f64 / self.days_used as f64
    }
}

/// Runs a trace through a stop rule; the box starts again (a wake) when
/// the engineer next needs it.
fn run(trace: &[Minute], mut should_stop: impl FnMut(usize, &Minute, Option<usize>) -> bool) -> Outcome {
    let mut out = Outcome::default();
    let mut running_since: Option<usize> = Some(0);
    for (t, minute) in trace.iter().enumerate() {
        if minute.active {
            out.active += 1;
        }
        if running_since.is_none() && (minute.active || minute.present) {
            running_since = Some(t);
            out.wakes += 1;
        }
        if running_since.is_some() {
            out.billed += 1;
            if should_stop(t, minute, running_since) {
                // At the box the minute before too: an engineer who comes
                // back in the very minute the box stops finds it stopping,
                // and their first command wakes it (counted as a wake).
                if minute.present && t > 0 && trace[t - 1].present {
                    out.stops_while_present += 1;
                }
                running_since = None;
            }
        }
    }
    out.in_use = trace.iter().filter(|m| m.active || m.present).count() as u64;
    out.days_used = trace.chunks(1440).filter(|day| day.iter().any(|m| m.active || m.present)).count() as u64;
    out
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

/// One engineer's month under `policy`: the box's signals are the trace's
/// `active` minutes; someone at the box sees the stop warning on their
/// terminal and presses a key.
fn ours(policy: &IdlePolicy, trace: &[Minute]) -> Outcome {
    let mut last_active: Option<DateTime<Utc>> = None;
    let mut answered = 0u64;
    let mut o = run(trace, |i, minute, since| {
        let now = start() + Duration::minutes(i as i64);
        if minute.active {
            last_active = Some(now);
        }
        let seen = Seen { last_active, started_at: since.map(|s| start() + Duration::minutes(s as i64)), keep_until: None };
        match decide(policy, &seen, now) {
            Verdict::Warn { .. } if minute.present => {
                last_active = Some(now);
                answered += 1;
                false
            }
            v => v.is_stop(),
        }
    });
    o.warnings_answered = answered;
    o
}

fn naive(trace: &[Minute]) -> Outcome {
    let mut unconnected = 0;
    run(trace, |_, minute, _| {
        unconnected = if minute.connected { 0 } else { unconnected + 1 };
        unconnected >= 30
    })
}

/// The grid: idle timeouts, with and without the 20:00 weekday stop.
const TIMEOUTS: [u64; 6] = [10, 15, 20, 30, 45, 60];
/// What each wake costs the engineer: a start, or a resume from hibernation.
const WAKE_WAIT_S: f64 = 60.0;
const RESUME_WAIT_S: f64 = 20.0;

fn policy(timeout_min: u64, evening_stop: bool) -> IdlePolicy {
    let mut text = format!("timeout = \"{timeout_min}m\"\nwarning = \"{}m\"\n", (timeout_min / 2).min(5));
    if evening_stop {
        text += "[[schedules]]\naction = \"stop\"\ncron = \"0 0 20 * * Mon-Fri\"\n";
    }
    toml::from_str(&text).unwrap()
}

/// A policy of the grid: (idle timeout in minutes, evening stop).
type Policy = (u64, bool);

/// Every policy of the grid over `engineers` synthetic months, as table
/// rows (and the outcomes, in the same order).
fn grid(engineers: u64) -> (Vec<String>, Vec<(Policy, Outcome)>) {
    let traces: Vec<Vec<Minute>> = (0..engineers).map(|e| trace(e + 1)).collect();
    let mut rows = Vec::new();
    let mut outcomes = Vec::new();
    for evening_stop in [false, true] {
        for timeout in TIMEOUTS {
            let p = policy(timeout, evening_stop);
            let mut total = Outcome::default();
            for t in &traces {
                total.add(ours(&p, t));
            }
            rows.push(format!(
                "| {timeout:>3} min | {:<7} | {:>13.2} | {:>13.2} | {:>12} | {:>9.2} | {:>8.1} min | {:>10.1} min | {:>8} |",
                if evening_stop { "20:00" } else { "-" },
                total.billed_per_active(),
                total.billed_per_in_use(),
                total.stops_while_present,
                total.wakes_per_day(),
                total.wakes_per_day() * WAKE_WAIT_S / 60.0,
                total.wakes_per_day() * RESUME_WAIT_S / 60.0,
                total.warnings_answered,
            ));
            outcomes.push(((timeout, evening_stop), total));
        }
    }
    (rows, outcomes)
}

const HEADER: &str = "| timeout | stop at | billed/active | billed/in use | stops at box | wakes/day | wait/day | hibernated | warnings |\n|---|---|---|---|---|---|---|---|---|";

/// The defaults docs/idle.md explains with this table.
const DEFAULT: (u64, bool) = (45, false);

#[test]
#[ignore = "benchmark: bench/idle-month.sh"]
fn month_of_activity_ours_versus_naive() {
    let timer = std::time::Instant::now();
    let (rows, outcomes) = grid(ENGINEERS);
    let mut naive_total = Outcome::default();
    for e in 0..ENGINEERS {
        naive_total.add(naive(&trace(e + 1)));
    }
    println!("{ENGINEERS} engineers x {DAYS} days, {} policies, simulated in {:.1} s", outcomes.len(), timer.elapsed().as_secs_f64());
    println!("{HEADER}");
    for row in rows {
        println!("{row}");
    }
    println!(
        "naive (30 min without an SSH connection): billed/active {:.2}, stops at the box {}, wakes/day {:.2}",
        naive_total.billed_per_active(),
        naive_total.stops_while_present,
        naive_total.wakes_per_day()
    );
    let chosen = outcomes.iter().find(|(k, _)| *k == DEFAULT).unwrap().1;
    println!(
        "idle-month: billed_per_active={:.2} stops_at_box={} wakes_per_day={:.2} timeout_min={} naive_billed_per_active={:.2}",
        chosen.billed_per_active(),
        chosen.stops_while_present,
        chosen.wakes_per_day(),
        DEFAULT.0,
        naive_total.billed_per_active()
    );
}

/// The table for three engineers, pinned: a change to the policy, the
/// idle decision or the simulation shows here as a changed row. No policy
/// of the grid stops a box while its engineer is at it.
#[test]
fn the_month_table_for_three_engineers() {
    let (rows, outcomes) = grid(3);
    let table = format!("{HEADER}\n{}\n", rows.join("\n"));
    assert!(outcomes.iter().all(|(_, o)| o.stops_while_present == 0), "{table}");
    assert_eq!(table, THREE_ENGINEERS, "the month's table changed; if on purpose, update THREE_ENGINEERS:\n{table}");
}

const THREE_ENGINEERS: &str = "\
| timeout | stop at | billed/active | billed/in use | stops at box | wakes/day | wait/day | hibernated | warnings |\n\
|---|---|---|---|---|---|---|---|---|\n\
|  10 min | -       |          1.32 |          1.10 |            0 |      2.87 |      2.9 min |        1.0 min |      931 |\n\
|  15 min | -       |          1.36 |          1.13 |            0 |      2.72 |      2.7 min |        0.9 min |      436 |\n\
|  20 min | -       |          1.39 |          1.16 |            0 |      2.57 |      2.6 min |        0.9 min |      275 |\n\
|  30 min | -       |          1.46 |          1.21 |            0 |      2.40 |      2.4 min |        0.8 min |      146 |\n\
|  45 min | -       |          1.54 |          1.28 |            0 |      1.94 |      1.9 min |        0.6 min |       74 |\n\
|  60 min | -       |          1.61 |          1.34 |            0 |      1.56 |      1.6 min |        0.5 min |       45 |\n\
|  10 min | 20:00   |          1.32 |          1.10 |            0 |      2.87 |      2.9 min |        1.0 min |      931 |\n\
|  15 min | 20:00   |          1.36 |          1.13 |            0 |      2.72 |      2.7 min |        0.9 min |      436 |\n\
|  20 min | 20:00   |          1.39 |          1.16 |            0 |      2.57 |      2.6 min |        0.9 min |      275 |\n\
|  30 min | 20:00   |          1.46 |          1.21 |            0 |      2.40 |      2.4 min |        0.8 min |      146 |\n\
|  45 min | 20:00   |          1.54 |          1.28 |            0 |      1.94 |      1.9 min |        0.6 min |       74 |\n\
|  60 min | 20:00   |          1.60 |          1.33 |            0 |      1.56 |      1.6 min |        0.5 min |       45 |\n\
";
