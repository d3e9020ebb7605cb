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

/// How a stopped box comes back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wake {
    /// A boot and the stack's bring-up: the engineer waits `COLD_WAKE_S`.
    Cold,
    /// `box.hibernate`: every stop saved the RAM to the root volume, and a
    /// start resumes the box with its processes in `RESUME_S`.
    Resume,
}

/// What a cold wake costs the engineer: a start, boot and bring-up.
const COLD_WAKE_S: f64 = 60.0;
/// A resume from hibernation: AWS's figure (the issue's "real 20-second
/// resume"). It cannot be measured here: no virtual machine boots on this
/// machine, so no guest can hibernate (docs/idle.md says so).
const RESUME_S: f64 = 20.0;
/// Billed while hibernating: EC2 charges the "stopping" state while the RAM
/// is written to EBS. AWS publishes no duration; one minute is assumed (a
/// few GiB of touched RAM at gp3's 125 MiB/s).
const HIBERNATE_SAVE_S: f64 = 60.0;

#[derive(Default, Clone, Copy)]
struct Outcome {
    /// Billed minutes while running, and the seconds billed around stops
    /// and wakes (the engineer's wait, the RAM written while hibernating).
    billed: u64,
    billed_extra_s: f64,
    active: u64,
    stops_while_present: u64,
    /// Starts when the engineer came back to a stopped box: with wake on
    /// connect, each is a wait for the box, not a dead end.
    wakes: u64,
    /// Wakes that booted rather than resumed from hibernation.
    cold_wakes: u64,
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
        self.billed_extra_s += o.billed_extra_s;
        self.active += o.active;
        self.stops_while_present += o.stops_while_present;
        self.wakes += o.wakes;
        self.cold_wakes += o.cold_wakes;
        self.days_used += o.days_used;
        self.in_use += o.in_use;
        self.warnings_answered += o.warnings_answered;
    }
    fn billed_minutes(&self) -> f64 {
        self.billed as f64 + self.billed_extra_s / 60.0
    }
    fn billed_per_active(&self) -> f64 {
        self.billed_minutes() / self.active as f64
    }
    fn billed_per_in_use(&self) -> f64 {
        self.billed_minutes() / self.in_use as f64
    }
    fn per_day(&self, n: u64) -> f64 {
        n as f64 / self.days_used as f64
    }
    fn wakes_per_day(&self) -> f64 {
        self.per_day(self.wakes)
    }
    fn cold_wakes_per_day(&self) -> f64 {
        self.per_day(self.cold_wakes)
    }
    /// Minutes a day the engineer waits for the box to come back.
    fn wait_per_day(&self) -> f64 {
        (self.per_day(self.cold_wakes) * COLD_WAKE_S + self.per_day(self.wakes - self.cold_wakes) * RESUME_S) / 60.0
    }
}

/// Runs a trace through a stop rule; the box comes back (a wake, cold or
/// resumed) when the engineer next needs it.
fn run(trace: &[Minute], wake: Wake, mut should_stop: impl FnMut(usize, &Minute, Option<usize>) -> bool) -> Outcome {
    let mut out = Outcome::default();
    let mut running_since: Option<usize> = Some(0);
    for (t, minute) in trace.iter().enumerate() {
        if minute.active {
            out.active += 1;
        }
        if running_since.is_none() && (minute.active || minute.present) {
            running_since = Some(t);
            out.wakes += 1;
            // The instance runs, billed, while the engineer waits for it.
            match wake {
                Wake::Cold => {
                    out.cold_wakes += 1;
                    out.billed_extra_s += COLD_WAKE_S;
                }
                Wake::Resume => out.billed_extra_s += RESUME_S,
            }
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
                if wake == Wake::Resume {
                    out.billed_extra_s += HIBERNATE_SAVE_S;
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
fn ours(policy: &IdlePolicy, wake: Wake, trace: &[Minute]) -> Outcome {
    let mut last_active: Option<DateTime<Utc>> = None;
    let mut answered = 0u64;
    let mut o = run(trace, wake, |i, minute, since| {
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
    run(trace, Wake::Cold, |_, minute, _| {
        unconnected = if minute.connected { 0 } else { unconnected + 1 };
        unconnected >= 30
    })
}

/// The grid: idle timeouts, for boxes that stop and boxes that hibernate.
const TIMEOUTS: [u64; 7] = [5, 10, 15, 20, 30, 45, 60];
const WAKES: [Wake; 2] = [Wake::Cold, Wake::Resume];

fn policy(timeout_min: u64) -> IdlePolicy {
    let text = format!("timeout = \"{timeout_min}m\"\nwarning = \"{}m\"\n", (timeout_min / 2).min(5));
    toml::from_str(&text).unwrap()
}

/// A policy of the grid: idle timeout in minutes, and how the box wakes.
type Policy = (u64, Wake);

/// Every policy of the grid over `engineers` synthetic months, as table
/// rows (and the outcomes, in the same order).
fn grid(engineers: u64) -> (Vec<String>, Vec<(Policy, Outcome)>) {
    let traces: Vec<Vec<Minute>> = (0..engineers).map(|e| trace(e + 1)).collect();
    let mut rows = Vec::new();
    let mut outcomes = Vec::new();
    for wake in WAKES {
        for timeout in TIMEOUTS {
            let p = policy(timeout);
            let mut total = Outcome::default();
            for t in &traces {
                total.add(ours(&p, wake, t));
            }
            rows.push(format!(
                "| {timeout:>3} min | {:<9} | {:>13.2} | {:>13.2} | {:>12} | {:>9.2} | {:>14.2} | {:>8.1} min | {:>12.1} |",
                if wake == Wake::Resume { "yes" } else { "-" },
                total.billed_per_active(),
                total.billed_per_in_use(),
                total.stops_while_present,
                total.wakes_per_day(),
                total.cold_wakes_per_day(),
                total.wait_per_day(),
                total.per_day(total.warnings_answered),
            ));
            outcomes.push(((timeout, wake), total));
        }
    }
    (rows, outcomes)
}

const HEADER: &str = "| timeout | hibernate | billed/active | billed/in use | stops at box | wakes/day | cold wakes/day | wait/day | warnings/day |\n|---|---|---|---|---|---|---|---|---|";

/// The goal (issue 37): billed at most 1.25 per active hour, no stop while
/// someone is at the box, fewer than two cold wakes per engineer-day. The
/// first is out of reach with these signals (docs/idle.md): the bench says
/// whether the chosen default meets it.
const GOAL_BILLED_PER_ACTIVE: f64 = 1.25;
const GOAL_COLD_WAKES_PER_DAY: f64 = 2.0;
/// Stop warnings an engineer at the box answers in a day, at most: one
/// every hour and a half of an 8-hour day. Hibernation takes away the cost
/// of a wake, not of being interrupted.
const MAX_WARNINGS_PER_DAY: f64 = 5.0;

/// The default the table chooses for boxes that wake `wake`: among the
/// timeouts that never stop a box at its engineer, keep cold wakes under
/// two a day and warnings at most five, the one that bills least.
fn choose(outcomes: &[(Policy, Outcome)], wake: Wake) -> (u64, Outcome) {
    outcomes
        .iter()
        .filter(|((_, w), o)| {
            *w == wake
                && o.stops_while_present == 0
                && o.cold_wakes_per_day() < GOAL_COLD_WAKES_PER_DAY
                && o.per_day(o.warnings_answered) <= MAX_WARNINGS_PER_DAY
        })
        .map(|((t, _), o)| (*t, *o))
        .min_by(|a, b| a.1.billed_per_active().total_cmp(&b.1.billed_per_active()))
        .expect("some timeout of the grid meets the wake and warning limits")
}

fn last_line(wake: Wake, (timeout, o): (u64, Outcome)) -> String {
    format!(
        "idle-month: billed_per_active={:.2} stops_at_box={} wakes_per_day={:.2} hibernate={} cold_wakes_per_day={:.2} timeout_min={timeout} warnings_per_day={:.1} goal_met={}",
        o.billed_per_active(),
        o.stops_while_present,
        o.wakes_per_day(),
        u8::from(wake == Wake::Resume),
        o.cold_wakes_per_day(),
        o.per_day(o.warnings_answered),
        u8::from(o.billed_per_active() <= GOAL_BILLED_PER_ACTIVE && o.stops_while_present == 0 && o.cold_wakes_per_day() < GOAL_COLD_WAKES_PER_DAY),
    )
}

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
    // The manifest's defaults are the table's choices.
    for wake in WAKES {
        let chosen = choose(&outcomes, wake);
        let default = workstation::manifest::default_idle_timeout(wake == Wake::Resume);
        assert_eq!(default.as_secs(), chosen.0 * 60, "the default idle timeout (hibernate={wake:?}) is not the table's choice");
        println!("{}", last_line(wake, chosen));
    }
}

/// The table for three engineers, pinned: a change to the policy, the
/// idle decision or the simulation shows here as a changed row. No policy
/// of the grid stops a box while its engineer is at it.
#[test]
fn the_month_table_for_three_engineers() {
    let (rows, outcomes) = grid(3);
    let table = format!("{HEADER}\n{}\n", rows.join("\n"));
    assert!(outcomes.iter().all(|(_, o)| o.stops_while_present == 0), "{table}");
    assert!(outcomes.iter().filter(|((_, w), _)| *w == Wake::Resume).all(|(_, o)| o.cold_wakes == 0), "{table}");
    assert_eq!(table, THREE_ENGINEERS, "the month's table changed; if on purpose, update THREE_ENGINEERS:\n{table}");
    // Their choices are the manifest's defaults too (the bench checks them
    // over 50 engineers).
    for wake in WAKES {
        let default = workstation::manifest::default_idle_timeout(wake == Wake::Resume);
        assert_eq!(choose(&outcomes, wake).0 * 60, default.as_secs(), "{wake:?}");
    }
}

const THREE_ENGINEERS: &str = "\
| timeout | hibernate | billed/active | billed/in use | stops at box | wakes/day | cold wakes/day | wait/day | warnings/day |\n\
|---|---|---|---|---|---|---|---|---|\n\
|   5 min | -         |          1.29 |          1.07 |            0 |      2.94 |           2.94 |      2.9 min |         23.5 |\n\
|  10 min | -         |          1.33 |          1.11 |            0 |      2.87 |           2.87 |      2.9 min |         13.7 |\n\
|  15 min | -         |          1.36 |          1.14 |            0 |      2.72 |           2.72 |      2.7 min |          6.4 |\n\
|  20 min | -         |          1.40 |          1.17 |            0 |      2.57 |           2.57 |      2.6 min |          4.0 |\n\
|  30 min | -         |          1.46 |          1.22 |            0 |      2.40 |           2.40 |      2.4 min |          2.1 |\n\
|  45 min | -         |          1.55 |          1.29 |            0 |      1.94 |           1.94 |      1.9 min |          1.1 |\n\
|  60 min | -         |          1.61 |          1.34 |            0 |      1.56 |           1.56 |      1.6 min |          0.7 |\n\
|   5 min | yes       |          1.29 |          1.08 |            0 |      2.94 |           0.00 |      1.0 min |         23.5 |\n\
|  10 min | yes       |          1.33 |          1.11 |            0 |      2.87 |           0.00 |      1.0 min |         13.7 |\n\
|  15 min | yes       |          1.37 |          1.14 |            0 |      2.72 |           0.00 |      0.9 min |          6.4 |\n\
|  20 min | yes       |          1.40 |          1.17 |            0 |      2.57 |           0.00 |      0.9 min |          4.0 |\n\
|  30 min | yes       |          1.46 |          1.22 |            0 |      2.40 |           0.00 |      0.8 min |          2.1 |\n\
|  45 min | yes       |          1.55 |          1.29 |            0 |      1.94 |           0.00 |      0.6 min |          1.1 |\n\
|  60 min | yes       |          1.61 |          1.34 |            0 |      1.56 |           0.00 |      0.5 min |          0.7 |\n\
";
