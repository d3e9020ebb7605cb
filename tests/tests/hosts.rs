//! The hosts agent against a real /etc/hosts: each test has its own mount
//! namespace whose /etc is a throwaway overlay, and checks with `getent
//! hosts` (glibc reading the file) as well as byte for byte.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workstation_hosts::block::{self, Entry};
use workstation_tests::hostsagent::HostsDaemon;
use workstation_tests::mountns::MountNs;
use workstation_tests::{free_port, hosts_binary, TestEnv};

/// Odd hosts files from the wild; each keeps every byte outside our block.
const CORPUS: &[&str] = &[
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "127.0.0.1 localhost\r\n10.9.0.1 crlf.corpus crlf-alias.corpus\r\n",
    "127.0.0.1 localhost\n10.9.0.2 noeol.corpus",
    "# a comment naming api.ws-test 10.9.9.9\n127.0.0.1 localhost\n\t \n10.9.0.3\ttabs.corpus  a1.corpus a2.corpus a3.corpus # trailing words\n",
    "127.0.0.1 localhost\n2001:db8::5 v6.corpus\n",
    "127.0.0.1 localhost\n# BEGIN docker-desktop\n10.9.0.4 host.docker.corpus\n# END docker-desktop\n",
    "127.0.0.1 localhost\n10.9.0.5 dup.corpus\n10.9.0.6 dup.corpus\n",
];

fn apply(ns: &MountNs, sets: &[&str]) -> Output {
    let mut c = ns.cmd(hosts_binary());
    c.args(["apply", "--hosts-file", "/etc/hosts"]);
    for s in sets {
        c.args(["--set", s]);
    }
    c.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
    block::group(pairs.iter().map(|(n, a)| (*n, a.parse().unwrap())))
}

#[test]
fn corpus_survives_byte_for_byte_and_resolves() {
    workstation_tests::binary();
    let ns = MountNs::start();
    for (i, original) in CORPUS.iter().enumerate() {
        std::fs::write(ns.hosts(), original).unwrap();
        ok(apply(&ns, &["api.ws-test=10.78.250.1", "web.ws-test=10.78.250.1", "db.ws-test=2001:db8::77"]));
        let written = std::fs::read(ns.hosts()).unwrap();
        assert_eq!(block::outside(&written).unwrap(), original.as_bytes(), "case {i}: bytes outside the block changed");
        assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.250.1"), "case {i}");
        assert_eq!(ns.getent("db.ws-test").as_deref(), Some("2001:db8::77"), "case {i}");
        // The file's own names still resolve as before.
        for (name, addr) in [
            ("crlf-alias.corpus", "10.9.0.1"),
            ("noeol.corpus", "10.9.0.2"),
            ("a3.corpus", "10.9.0.3"),
            ("v6.corpus", "2001:db8::5"),
            ("host.docker.corpus", "10.9.0.4"),
            ("dup.corpus", "10.9.0.5"),
        ] {
            if original.contains(name) {
                assert_eq!(ns.getent(name).as_deref(), Some(addr), "case {i}: {name}");
            }
        }
        // The comment's words are not hosts.
        ok(apply(&ns, &[]));
        assert_eq!(std::fs::read(ns.hosts()).unwrap(), original.as_bytes(), "case {i}: clearing did not restore the file");
        assert_eq!(ns.getent("api.ws-test"), None, "case {i}");
    }
}

/// A big file, so that a write takes long enough to be killed in the middle.
fn big_hosts() -> Vec<u8> {
    let mut text = String::from("127.0.0.1 localhost\n");
    for i in 0..20_000 {
        text.push_str(&format!("10.{}.{}.{} filler{i}.corpus filler{i}-alias.corpus\n", 100 + i / 65536, (i / 256) % 256, i % 256));
    }
    text.into_bytes()
}

/// A small xorshift: random kill moments without a dependency.
fn rng() -> impl FnMut() -> u64 {
    let mut s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

const SET_A: &[&str] = &["api.ws-test=10.78.251.1", "web.ws-test=10.78.251.1"];
const SET_B: &[&str] = &["api.ws-test=10.78.251.2", "web.ws-test=10.78.251.2", "more.ws-test=10.78.251.2"];

/// Runs `apply` (alternating A and B) `rounds` times, killing each with
/// SIGKILL at a random moment within about twice its usual run time, and
/// calls `check` after each kill. Returns how many kills hit a live writer.
fn kill_loop(ns: &MountNs, rounds: usize, mut check: impl FnMut(usize)) -> usize {
    let time_one = || {
        let t = Instant::now();
        ok(apply(ns, SET_A));
        t.elapsed()
    };
    let mut runs: Vec<Duration> = (0..5).map(|_| time_one()).collect();
    runs.sort();
    let window = runs[2].as_micros() as u64 * 2;
    let mut next = rng();
    let mut hit = 0;
    for round in 0..rounds {
        let set = if round % 2 == 0 { SET_B } else { SET_A };
        let mut c = ns.cmd(hosts_binary());
        c.args(["apply", "--hosts-file", "/etc/hosts"]).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        for s in set {
            c.args(["--set", s]);
        }
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(next() % window.max(1)));
        if child.try_wait().unwrap().is_none() {
            hit += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        check(round);
    }
    hit
}

#[test]
fn kill_nine_at_any_moment_leaves_the_old_file_or_the_new_one() {
    workstation_tests::binary();
    let ns = MountNs::start();
    let original = big_hosts();
    std::fs::write(ns.hosts(), &original).unwrap();
    let with = |set: &[&str]| {
        let pairs: Vec<(&str, &str)> = set.iter().map(|s| s.split_once('=').unwrap()).collect();
        block::splice(&original, &entries(&pairs)).unwrap()
    };
    let valid = Arc::new([original.clone(), with(SET_A), with(SET_B)]);

    // A reader checks every version of the file anyone could see meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, reads, valid, path) = (stop.clone(), reads.clone(), valid.clone(), ns.hosts());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let seen = std::fs::read(&path).unwrap();
                assert!(valid.contains(&seen), "a reader saw a file that is neither old nor new ({} bytes)", seen.len());
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let hit = kill_loop(&ns, 200, |round| {
        let now = std::fs::read(ns.hosts()).unwrap();
        assert!(valid.contains(&now), "round {round}: after kill -9 the file is neither old nor new ({} bytes)", now.len());
    });
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("the reader saw only whole files");
    eprintln!("200 kills, {hit} during a write; {} concurrent reads, all whole", reads.load(Ordering::Relaxed));
    assert!(hit >= 20, "only {hit} of 200 kills hit a running writer: the test did not test much");
    assert!(ns.getent("api.ws-test").is_some() || ns.getent("filler7.corpus").is_some());
    // Temp files of killed writers are cleaned up by the next write.
    ok(apply(&ns, SET_A));
    let dir = ns.hosts().parent().unwrap().to_owned();
    let temps = std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp.")).count();
    assert_eq!(temps, 0);
}

#[test]
fn bind_mounted_hosts_is_written_in_place_never_empty_or_mixed() {
    workstation_tests::binary();
    let ns = MountNs::start();
    let original = big_hosts();
    let file = ns.dir.path().join("container-hosts");
    std::fs::write(&file, &original).unwrap();
    ns.bind_hosts(&file);
    let out = ok(apply(&ns, SET_B));
    assert!(out.contains("InPlace"), "rename over a mount point must fall back to in place: {out}");
    assert_eq!(ns.getent("more.ws-test").as_deref(), Some("10.78.251.2"));
    let a = entries(&SET_A.iter().map(|s| s.split_once('=').unwrap()).collect::<Vec<_>>());
    let b = entries(&SET_B.iter().map(|s| s.split_once('=').unwrap()).collect::<Vec<_>>());
    let hit = kill_loop(&ns, 100, |round| {
        let now = std::fs::read(ns.hosts()).unwrap();
        assert_eq!(block::outside(&now).unwrap(), original, "round {round}: bytes outside the block changed");
        let e = block::entries(&now).unwrap();
        assert!(e == a || e == b, "round {round}: the block is a mix: {e:?}");
    });
    eprintln!("in place: 100 kills, {hit} during a write");
    ok(apply(&ns, &[]));
    assert_eq!(std::fs::read(&file).unwrap(), original);
}

#[test]
fn a_concurrent_appender_never_loses_a_line() {
    workstation_tests::binary();
    let ns = MountNs::start();
    std::fs::write(ns.hosts(), "127.0.0.1 localhost\n").unwrap();
    const LINES: usize = 1000;
    let appender = {
        let path = ns.hosts();
        std::thread::spawn(move || {
            for i in 0..LINES {
                let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
                f.write_all(format!("10.77.{}.{} appended{i}.corpus\n", i / 250, i % 250 + 1).as_bytes()).unwrap();
                drop(f);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let mut writes = 0;
    while !appender.is_finished() && writes < 2_000 {
        ok(apply(&ns, if writes % 2 == 0 { SET_A } else { SET_B }));
        writes += 1;
    }
    appender.join().unwrap();
    let text = std::fs::read_to_string(ns.hosts()).unwrap();
    let missing: Vec<usize> = (0..LINES).filter(|i| text.matches(&format!(" appended{i}.corpus\n")).count() != 1).collect();
    assert!(missing.is_empty(), "{} of {LINES} appended lines lost or doubled over {writes} agent writes: {missing:?}", missing.len());
    assert!(writes >= 20, "only {writes} agent writes overlapped the appender");
    assert_eq!(ns.getent("appended999.corpus").as_deref(), Some("10.77.3.250"));
    eprintln!("{LINES} appended lines kept over {writes} agent writes");
}

#[test]
fn callers_and_names_are_checked() {
    workstation_tests::binary();
    let ns = MountNs::start();
    let dir = tempfile::tempdir_in(workstation_tests::e2e_root()).unwrap();
    let agent = HostsDaemon::start(&ns, &dir.path().join("agent"), &dir.path().join("agent/agent.sock"), &["api.ws-test"], "");
    let before = std::fs::read(ns.hosts()).unwrap();

    // A user who is not in allowed_users is refused, whatever the request.
    let out = agent.client_as("nobody", &["point", "--to", "10.78.252.1", "api.ws-test"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("user nobody") && err.contains("allowed_users"), "{err}");
    // An allowed user may point an allowed name...
    let out = agent.client_as("daemon", &["point", "--to", "10.78.252.1", "--label", "alice/dev", "api.ws-test", "x.box.ws-test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.252.1"));
    assert_eq!(ns.getent("x.box.ws-test").as_deref(), Some("10.78.252.1"));
    let pointed = std::fs::read(ns.hosts()).unwrap();
    // ...but no name off the allowlist, and nothing that could break a line.
    for (name, why) in [
        ("web.ws-test", "not on the agent's allowlist"),
        ("localhost", "not on the agent's allowlist"),
        ("box.ws-test", "not on the agent's allowlist"),
        ("api.ws-test\n10.0.0.1 evil.box.ws-test", "line break"),
        ("a b.box.ws-test", "whitespace"),
        ("a#b.box.ws-test", "'#'"),
        ("ä.box.ws-test", "non-ASCII"),
    ] {
        let out = agent.client_as("daemon", &["point", "--to", "10.78.252.9", name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{name:?}: {err}");
        assert_eq!(std::fs::read(ns.hosts()).unwrap(), pointed, "{name:?}: a refused request changed the file");
    }
    // Raw protocol: other versions and unknown operations are refused.
    for (line, why) in [(r#"{"v":2,"op":"status"}"#, "version 2"), (r#"{"v":1,"op":"write","path":"/etc/passwd"}"#, "unknown variant"), ("garbage", "not JSON")]
    {
        let mut s = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
        writeln!(s, "{line}").unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        let r: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(r["ok"], false, "{line}");
        assert!(r["error"].as_str().unwrap().contains(why), "{line}: {answer}");
    }
    let status = agent.status();
    assert_eq!(status["status"]["names"][0]["label"], "alice/dev");
    ok(agent.client(&["clear"]));
    assert_eq!(std::fs::read(ns.hosts()).unwrap(), before);
    // Issue 29: the agent's log file (a service's log) has no colour codes.
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains("listening on") && !log.contains('\u{1b}'), "{log}");
}

#[test]
fn a_restarted_agent_restores_its_block() {
    workstation_tests::binary();
    let ns = MountNs::start();
    let dir = tempfile::tempdir_in(workstation_tests::e2e_root()).unwrap();
    let mut agent = HostsDaemon::start(&ns, &dir.path().join("agent"), &dir.path().join("agent/agent.sock"), &["api.ws-test"], "");
    ok(agent.client(&["point", "--to", "10.78.253.1", "api.ws-test"]));
    let original = "127.0.0.1 localhost\n# someone restored an old copy\n";
    // A crash, and meanwhile the block is lost (a backup restored).
    agent.crash_and_restart(&ns, || std::fs::write(ns.hosts(), original).unwrap());
    assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.253.1"), "{}", agent.log_text());
    assert_eq!(block::outside(&std::fs::read(ns.hosts()).unwrap()).unwrap(), original.as_bytes());
    // The one-shot recovery does the same without the daemon.
    std::fs::write(ns.hosts(), original).unwrap();
    let state = agent.dir.join("state/state.json");
    ok(ns.cmd(hosts_binary()).args(["apply", "--hosts-file", "/etc/hosts", "--from-state"]).arg(&state).output().unwrap());
    assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.253.1"));
}

/// dnsmasq on loopback answers box1.ws-dns from a file, with a 2 s TTL.
struct Dns {
    child: std::process::Child,
    port: u16,
    file: std::path::PathBuf,
}

impl Dns {
    fn start(dir: &Path, address: &str) -> Dns {
        let file = dir.join("dns-hosts");
        std::fs::write(&file, format!("{address} box1.ws-dns\n")).unwrap();
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file",
                "--local-ttl=2",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", file.display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq runs (scripts/install-deps.sh installs dnsmasq-base)");
        Dns { child, port, file }
    }

    fn answer(&self, address: &str) {
        std::fs::write(&self.file, format!("{address} box1.ws-dns\n")).unwrap();
        assert!(Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap().success());
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dns_targets_follow_a_changing_answer_when_the_ttl_ends() {
    workstation_tests::binary();
    let ns = MountNs::start();
    let dir = tempfile::tempdir_in(workstation_tests::e2e_root()).unwrap();
    let dns = Dns::start(dir.path(), "10.78.254.1");
    // The agent must ask DNS, not the file it writes: this line is a decoy.
    let mut f = std::fs::OpenOptions::new().append(true).open(ns.hosts()).unwrap();
    writeln!(f, "10.78.254.99 box1.ws-dns").unwrap();
    let agent = HostsDaemon::start(
        &ns,
        &dir.path().join("agent"),
        &dir.path().join("agent/agent.sock"),
        &["api.ws-test"],
        &format!("nameservers = [\"127.0.0.1:{}\"]", dns.port),
    );
    let out = agent.client(&["point", "--to", "box1.ws-dns", "api.ws-test"]);
    assert!(out.status.success(), "{} / {}", String::from_utf8_lossy(&out.stderr), agent.log_text());
    assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.254.1"));

    let resolves_in = agent.status()["status"]["names"][0]["resolves_in"].as_f64().expect("a DNS target reports its TTL");
    assert!(resolves_in <= 2.0, "TTL is 2 s, agent waits {resolves_in} s");
    dns.answer("10.78.254.2");
    let changed = Instant::now();
    if resolves_in > 0.6 {
        assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.254.1"), "the agent re-resolved before the TTL ended");
    }
    while ns.getent("api.ws-test").as_deref() != Some("10.78.254.2") {
        assert!(changed.elapsed() < Duration::from_secs(10), "the new answer never reached the hosts file: {}", agent.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = changed.elapsed().as_secs_f64();
    assert!(took >= resolves_in - 0.3, "switched after {took:.2}s, before the TTL ({resolves_in:.2}s) ended");
    assert!(took <= resolves_in + 1.5, "switched {took:.2}s after the change; the TTL was {resolves_in:.2}s");
    // DNS down: the last address stays. A fixed wait is the check: past
    // the 2 s TTL, the agent has tried again and failed, and kept it.
    drop(dns);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(ns.getent("api.ws-test").as_deref(), Some("10.78.254.2"));
}

/// `workstation share` end to end: two owners' local boxes, the agent in a
/// mount namespace, checked with getent.
#[test]
fn share_points_at_a_colleagues_box_and_back() {
    let env = TestEnv::local();
    let ns = MountNs::start();
    let _agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &["api.dev.test"], "");
    let mine = env.json(&["create", "--name", "dev"]);
    let my_ip = mine["box"]["address"].as_str().unwrap().to_owned();
    assert_eq!(mine["hostnames"]["outcome"], "pointed", "{mine}");
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(my_ip.as_str()));

    let as_alice = |args: &[&str]| env.cmd(args).env("WORKSTATION_OWNER", "alice").output().unwrap();
    ok(as_alice(&["create", "--name", "dev"]));
    // Alice's create pointed this (shared) test laptop at her box; back to mine.
    ok(env.cmd(&["share", "--off"]).output().unwrap());
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(my_ip.as_str()));
    let all = env.json(&["list", "--all"]);
    let alice = all.as_array().unwrap().iter().find(|b| b["owner"] == "alice").expect("alice's box is listed");
    let alice_ip = alice["address"].as_str().unwrap().to_owned();

    let out = env.ok(&["share", "alice"]);
    assert!(out.contains("alice/dev") && out.contains(&alice_ip), "{out}");
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(alice_ip.as_str()));
    let shown = env.json(&["share"]);
    assert_eq!(shown["names"][0]["label"], "alice/dev", "{shown}");
    let table = env.ok(&["hosts"]);
    assert!(table.contains("api.dev.test") && table.contains("alice/dev"), "{table}");

    env.ok(&["share", "--off"]);
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(my_ip.as_str()));
    // A stopped box is a clear error, and nothing changes; --start needs
    // alice's consent, which she gives with --allow-start.
    ok(as_alice(&["stop", "dev"]));
    let err = env.fails(&["share", "alice"]);
    assert!(err.contains("alice's box dev is stopped") && err.contains("--start") && err.contains("workstation start dev"), "{err}");
    let err = env.fails(&["share", "alice", "--start"]);
    assert!(err.contains("alice has not let colleagues start box dev") && err.contains("--allow-start"), "{err}");
    assert_eq!(env.json(&["list", "--all"]).as_array().unwrap().iter().find(|b| b["owner"] == "alice").unwrap()["state"], "stopped");
    ok(as_alice(&["share", "--allow-start"]));
    let out = env.ok(&["share", "alice", "--start"]);
    assert!(out.contains("alice/dev"), "{out}");
    let alice_ip = env.json(&["list", "--all"]).as_array().unwrap().iter().find(|b| b["owner"] == "alice").unwrap()["address"].as_str().unwrap().to_owned();
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(alice_ip.as_str()));
    env.ok(&["share", "--off"]);
    ok(as_alice(&["share", "--forbid-start"]));
    ok(as_alice(&["stop", "dev"]));
    assert!(env.fails(&["share", "alice", "--start"]).contains("has not let colleagues"));
    let err = env.fails(&["share", "bob"]);
    assert!(err.contains("bob has no box named dev") && err.contains("list --all"), "{err}");
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(my_ip.as_str()));
    // Destroying my box removes the names that pointed at it.
    env.ok(&["destroy", "dev", "--yes"]);
    assert_eq!(ns.getent("api.dev.test"), None);
}
