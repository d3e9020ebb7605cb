//! Every verb safe to kill: `create` and `up` killed (SIGKILL) at seeded
//! points across a clean run's duration, then run again, must give what a
//! clean run gives (one box, running, its stack healthy) with nothing left
//! behind (no second box, no lock that blocks the re-run). The suite runs a
//! small seeded sample; `WORKSTATION_KILL_POINTS=N` runs more.

use std::process::Stdio;
use std::time::{Duration, Instant};

use workstation_tests::TestEnv;

/// Kill points per verb: the suite's sample, or the environment's.
fn points() -> usize {
    std::env::var("WORKSTATION_KILL_POINTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20)
}

/// A seeded sequence of fractions in [0, 1) (xorshift): the same points on
/// every run, so a failure repeats.
fn fractions(seed: u64, n: usize) -> Vec<f64> {
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

/// Runs `args`, killing it with SIGKILL after `after`; whether it was
/// still running then (a kill, not a finished run).
fn killed_after(env: &TestEnv, args: &[&str], after: Duration) -> bool {
    let mut child = env.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// The one live box named dev, healthy after `args` ran again.
fn converged(env: &TestEnv, args: &[&str], what: &str) {
    let again = env.json(args);
    let healthy = if again.get("up").is_some() { &again["up"]["healthy"] } else { &again["healthy"] };
    assert_eq!(healthy, true, "{what}: the re-run is not healthy: {again:#}");
    let listed = env.json(&["list"]);
    let boxes: Vec<&serde_json::Value> = listed.as_array().unwrap().iter().filter(|b| b["name"] == "dev").collect();
    assert_eq!(boxes.len(), 1, "{what}: one box named dev: {listed:#}");
    assert_eq!(boxes[0]["state"], "running", "{what}: {listed:#}");
}

#[test]
fn create_and_up_killed_anywhere_converge_when_run_again() {
    let env = TestEnv::local();
    // A clean run's duration bounds the kill points.
    let clean = Instant::now();
    converged(&env, &["create", "dev"], "a clean create");
    let create_takes = clean.elapsed();
    env.ok(&["destroy", "dev", "--yes"]);

    let mut kills = 0;
    for (i, f) in fractions(0x5eed_c0de, points()).into_iter().enumerate() {
        let at = create_takes.mul_f64(f);
        kills += killed_after(&env, &["create", "dev"], at) as usize;
        converged(&env, &["create", "dev"], &format!("create killed at {at:?} (point {i})"));
        env.ok(&["destroy", "dev", "--yes"]);
    }
    eprintln!("create: {kills} of {} runs killed mid-way (a clean run takes {create_takes:?})", points());
    assert!(kills * 2 >= points(), "most points must interrupt a run, not follow it");

    converged(&env, &["create", "dev"], "create for up");
    let clean = Instant::now();
    converged(&env, &["up", "dev"], "a clean up");
    let up_takes = clean.elapsed().max(Duration::from_millis(200));
    let mut kills = 0;
    for (i, f) in fractions(0x0bad_5eed, points()).into_iter().enumerate() {
        let at = up_takes.mul_f64(f);
        kills += killed_after(&env, &["up", "dev"], at) as usize;
        converged(&env, &["up", "dev"], &format!("up killed at {at:?} (point {i})"));
    }
    eprintln!("up: {kills} of {} runs killed mid-way (a clean run takes {up_takes:?})", points());
    assert!(kills * 2 >= points(), "most points must interrupt a run, not follow it");
    env.ok(&["destroy", "dev", "--yes"]);
}
