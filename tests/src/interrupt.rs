//! Interrupting a verb anywhere, then running it again (issue 36): a sweep
//! signals the CLI at seeded points across a clean run's duration (kill -9
//! and Ctrl-C in turn), runs the same command again, and checks the end
//! state against a clean run's. It counts instead of stopping at the first
//! failure, prints one line per verb (`interrupts: verb=... runs=N
//! converged=C leaked=L`, summed by bench/faults.sh), then asserts.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::TestEnv;

/// Kill points per verb: the suite's sample, or WORKSTATION_KILL_POINTS.
pub fn points(suite: usize) -> usize {
    std::env::var("WORKSTATION_KILL_POINTS").ok().and_then(|n| n.parse().ok()).unwrap_or(suite)
}

/// A seeded sequence of fractions in [0, 1) (xorshift): the same points on
/// every run, so a failure repeats.
pub fn fractions(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 10_000.0
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Kill,
    Interrupt,
}

impl Signal {
    fn number(self) -> i32 {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Interrupt => libc::SIGINT,
        }
    }
}

/// How a signalled run ended.
pub enum Ended {
    /// It finished before the signal.
    Finished,
    /// Killed, or interrupted: with what it said (stderr), and whether it
    /// finished all the same (the signal came as it was ending).
    Signalled { said: String, finished: bool, hung: bool },
}

/// Runs `args`, sending `signal` after `after`.
pub fn signal_after(env: &TestEnv, args: &[&str], after: Duration, signal: Signal) -> Ended {
    let child = env.cmd(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let started = Instant::now();
    let mut child = child;
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return Ended::Finished;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if child.try_wait().unwrap().is_some() {
        return Ended::Finished;
    }
    // SAFETY: signalling our own child, which has not been reaped.
    unsafe { libc::kill(pid, signal.number()) };
    let (out, hung) = wait_bounded(child);
    Ended::Signalled { said: String::from_utf8_lossy(&out.stderr).into_owned(), finished: out.status.success(), hung }
}

/// The child's output, and whether the signal did not end it within 30 s
/// (then it is killed: a Ctrl-C that does nothing is a failure).
fn wait_bounded(mut child: std::process::Child) -> (Output, bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let hung = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    (child.wait_with_output().unwrap(), hung)
}

/// What Ctrl-C must leave on stderr: where it stopped, and the command
/// that finishes it. A signal before the handler exists ends the process
/// silently, as it should (nothing was done yet): also accepted.
pub fn interrupt_said_enough(stderr: &str) -> bool {
    stderr.trim().is_empty() || (stderr.contains("interrupted (Ctrl-C)") && stderr.contains("again"))
}

/// What a re-run left beside a clean run's end state.
#[derive(Debug, Default, Clone, Copy)]
pub struct Left {
    /// Resources nobody owns any more (a second box, a key pair, a volume).
    pub leaked: usize,
    /// Data that was there before the run and is not after it.
    pub lost: usize,
}

/// Where a sweep signals: `n` seeded fractions of a clean run's duration.
#[derive(Debug, Clone, Copy)]
pub struct Points {
    pub clean: Duration,
    pub seed: u64,
    pub n: usize,
}

/// One verb's sweep.
pub struct Sweep {
    pub verb: &'static str,
    pub runs: usize,
    pub signalled: usize,
    pub converged: usize,
    pub leaked: usize,
    pub lost: usize,
    pub failures: Vec<String>,
    /// Whether what a Ctrl-C'd run said is enough.
    said_enough: fn(&str) -> bool,
    started: Instant,
}

impl Sweep {
    pub fn new(verb: &'static str) -> Sweep {
        Sweep {
            verb,
            runs: 0,
            signalled: 0,
            converged: 0,
            leaked: 0,
            lost: 0,
            failures: Vec::new(),
            said_enough: interrupt_said_enough,
            started: Instant::now(),
        }
    }

    /// A verb that owns Ctrl-C (intercept passes it to its command) and
    /// says in its own words what it left.
    pub fn saying(mut self, said_enough: fn(&str) -> bool) -> Sweep {
        self.said_enough = said_enough;
        self
    }

    /// Signals `args` at each of `n` seeded points across `clean` (kill -9
    /// and Ctrl-C alternately); before each, `prepare` sets the scene;
    /// after, `converge` runs the command again and returns what differs
    /// from a clean run (Err), or what was left behind or lost.
    pub fn run(&mut self, env: &TestEnv, args: &[&str], points: Points, mut prepare: impl FnMut(usize), mut converge: impl FnMut() -> Result<Left, String>) {
        let Points { clean, seed, n } = points;
        for (i, f) in fractions(seed, n).into_iter().enumerate() {
            prepare(i);
            let at = clean.mul_f64(f);
            let signal = if i % 2 == 0 { Signal::Kill } else { Signal::Interrupt };
            self.runs += 1;
            if let Ended::Signalled { said, finished, hung } = signal_after(env, args, at, signal) {
                self.signalled += 1;
                if hung {
                    self.failures.push(format!("{} point {i} ({at:?}): {signal:?} did not end it within 30 s: {said}", self.verb));
                }
                if signal == Signal::Interrupt && !finished && !(self.said_enough)(&said) {
                    self.failures.push(format!("{} point {i} ({at:?}): Ctrl-C did not say where it stopped: {said}", self.verb));
                }
            }
            match converge() {
                Ok(left) => {
                    self.converged += 1;
                    self.leaked += left.leaked;
                    self.lost += left.lost;
                    if left.leaked + left.lost > 0 {
                        self.failures.push(format!("{} point {i} ({at:?}, {signal:?}): {left:?}", self.verb));
                    }
                }
                Err(e) => self.failures.push(format!("{} point {i} ({at:?}, {signal:?}): {e}", self.verb)),
            }
        }
    }

    /// Prints the sweep's line and fails on any failure, or when most
    /// points followed the run instead of interrupting it.
    pub fn finish(self) {
        // On stderr, as a whole line (the harness's progress is on stdout).
        eprintln!(
            "\ninterrupts: verb={} runs={} signalled={} converged={} leaked={} lost={}",
            self.verb, self.runs, self.signalled, self.converged, self.leaked, self.lost
        );
        eprintln!("{}: {} of {} runs signalled mid-way, in {:?}", self.verb, self.signalled, self.runs, self.started.elapsed());
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
        assert!(self.signalled * 2 >= self.runs, "{}: most points must interrupt a run, not follow it", self.verb);
    }
}

/// `args` run again with `-o json`: its answer, or what it said on failure
/// (a sweep counts it, instead of stopping at the first).
pub fn rerun(env: &TestEnv, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = env.run(&[args, &["-o", "json"]].concat());
    match (out.status.success(), serde_json::from_slice(&out.stdout)) {
        (true, Ok(v)) => Ok(v),
        _ => Err(format!("the re-run failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())),
    }
}

/// How long `f` takes (a clean run, which bounds the kill points).
pub fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed().max(Duration::from_millis(20))
}
