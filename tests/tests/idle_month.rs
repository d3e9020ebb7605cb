//! Benchmark, not a test (run by bench/idle-month.sh): a month of synthetic
//! activity for 50 engineers, through our idle policy and through the
//! naive "stop after 30 minutes without an SSH connection". Prints billed
//! hours per active hour, stops while the engineer was at the box, and
//! restarts.

use chrono::{DateTime, Duration, TimeZone, Utc};
use workstation::manifest::IdlePolicy;
use workstation::idle::policy::{decide, Seen, Verdict};

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
                    0..=49 => *x = Minute { active: true, present: true, connected: true }, // typing
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

#[derive(Default)]
struct Outcome {
    billed: u64,
    active: u64,
    stops_while_present: u64,
    restarts: u64,
}

/// Runs a trace through a stop rule; the box starts again when the
/// engineer next needs it.
fn run(trace: &[Minute], mut should_stop: impl FnMut(usize, &Minute, Option<usize>) -> bool) -> Outcome {
    let mut out = Outcome::default();
    let mut running_since: Option<usize> = Some(0);
    for (t, minute) in trace.iter().enumerate() {
        if minute.active {
            out.active += 1;
        }
        if running_since.is_none() && (minute.active || minute.present) {
            running_since = Some(t);
            out.restarts += 1;
        }
        if running_since.is_some() {
            out.billed += 1;
            if should_stop(t, minute, running_since) {
                if minute.present {
                    out.stops_while_present += 1;
                }
                running_since = None;
            }
        }
    }
    out
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
}

#[test]
#[ignore = "benchmark: bench/idle-month.sh"]
fn month_of_activity_ours_versus_naive() {
    let policy: IdlePolicy = toml::from_str("[[schedules]]\naction = \"stop\"\ncron = \"0 0 20 * * Mon-Fri\"\n").unwrap();
    let (mut ours, mut naive) = (Outcome::default(), Outcome::default());
    let timer = std::time::Instant::now();
    let mut warnings_answered = 0;
    for engineer in 0..ENGINEERS {
        let t = trace(engineer + 1);
        let mut last_active: Option<DateTime<Utc>> = None;
        let mut answered = 0u64;
        let o = run(&t, |i, minute, since| {
            let now = start() + Duration::minutes(i as i64);
            if minute.active {
                last_active = Some(now);
            }
            let seen = Seen { last_active, started_at: since.map(|s| start() + Duration::minutes(s as i64)), keep_until: None };
            match decide(&policy, &seen, now) {
                // Someone at the box sees the warning on their terminal and
                // presses a key.
                Verdict::Warn { .. } if minute.present => {
                    last_active = Some(now);
                    answered += 1;
                    false
                }
                v => v.is_stop(),
            }
        });
        let mut unconnected = 0;
        let n = run(&t, |_, minute, _| {
            unconnected = if minute.connected { 0 } else { unconnected + 1 };
            unconnected >= 30
        });
        warnings_answered += answered;
        for (total, one) in [(&mut ours, o), (&mut naive, n)] {
            total.billed += one.billed;
            total.active += one.active;
            total.stops_while_present += one.stops_while_present;
            total.restarts += one.restarts;
        }
    }
    println!("{ENGINEERS} engineers x {DAYS} days, simulated in {:.1} s; {warnings_answered} stop warnings answered by a keypress", timer.elapsed().as_secs_f64());
    for (name, o) in [("ours (60m idle, stop 20:00 weekdays)", &ours), ("naive (30m without SSH connection)", &naive)] {
        println!(
            "{name:<40} billed {:>6.0} h, active {:>5.0} h, billed/active {:.2}, stops while at the box {:>4}, restarts {:>4}",
            o.billed as f64 / 60.0,
            o.active as f64 / 60.0,
            o.billed as f64 / o.active as f64,
            o.stops_while_present,
            o.restarts
        );
    }
    println!(
        "idle-month: billed_per_active={:.2} stops_at_box={} restarts={} naive_billed_per_active={:.2} naive_stops_at_box={}",
        ours.billed as f64 / ours.active as f64,
        ours.stops_while_present,
        ours.restarts,
        naive.billed as f64 / naive.active as f64,
        naive.stops_while_present
    );
}
