//! Issue 29: what a new user hit in a day with the CLI, each through the
//! real binary on local boxes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use workstation_tests::hostsagent::HostsDaemon;
use workstation_tests::mountns::MountNs;
use workstation_tests::{manifest_text, TestEnv};

/// A manifest whose service answers only a while after it starts (as a
/// real one that loads before it listens), with a health check, and a
/// redis store run by its own user.
const SLOW_STACK: &str = r#"
hostnames = ["api.dev.test"]

[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[services.api]
command = "sh -c 'sleep 2; exec python3 -m http.server 8080 --bind 127.0.0.1'"
ports = [8080]
health = { http = "/", port = 8080 }

[stores.cache]
kind = "redis"
"#;

/// Moves the env's HOME to a private (0700) directory made as `mktemp -d`
/// makes one, with a path of 21 characters or more: the new user's HOME.
fn private_home(env: &mut TestEnv) -> tempfile::TempDir {
    let home = tempfile::Builder::new().prefix("workstation-home-").tempdir_in("/tmp").unwrap();
    assert!(home.path().as_os_str().len() >= 21);
    std::fs::set_permissions(home.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", env.home.display())).arg(home.path()).status().unwrap();
    assert!(status.success());
    env.home = home.path().to_owned();
    home
}

#[test]
fn r29_a_private_home_creates_stores_and_syncs_once() {
    let mut env = TestEnv::local();
    let _home = private_home(&mut env);
    env.write_manifest(SLOW_STACK);
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created}");
    // The box root is outside the private HOME, where redis can reach it.
    let root = created["up"]["root"].as_str().unwrap();
    assert!(!root.starts_with(env.home.to_str().unwrap()), "{root}");
    let status = env.json(&["status", "dev"]);
    assert_eq!(status["bring_up_unfinished"], false, "{status}");

    let checkout = env.root.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::write(checkout.join("a.txt"), "a").unwrap();
    let started = Instant::now();
    let out = env.cmd(&["sync", "dev", "--once", "--dir", checkout.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "sync --once with a {}-character HOME: {}", env.home.as_os_str().len(), String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(env.ok(&["ssh", "dev", "--", "cat src/checkout/a.txt || cat \"$WORKSTATION_BOX_ROOT/src/checkout/a.txt\""]).trim(), "a");

    // The root is the box's data: destroy keeps it, --purge deletes it.
    env.ok(&["destroy", "dev", "--yes"]);
    assert!(std::path::Path::new(root).join("src/checkout/a.txt").exists(), "destroy keeps the data");
    env.ok(&["destroy", "dev", "--purge", "--yes"]);
    assert!(!std::path::Path::new(root).exists(), "destroy --purge removes the box root too");
}

#[test]
fn r29_sync_once_fails_with_what_ssh_said() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);
    // An ssh that cannot connect, as OpenSSH says it.
    let bin = env.root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("ssh"), "#!/bin/sh\necho 'ssh: connect to host 10.78.0.9 port 22: Connection refused' >&2\nexit 255\n").unwrap();
    std::fs::set_permissions(bin.join("ssh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let checkout = env.root.path().join("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    let started = Instant::now();
    let out = env
        .cmd(&["sync", "dev", "--once", "--dir", checkout.to_str().unwrap()])
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Connection refused") && !err.contains("retrying"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Two HOMEs on one machine, the same subnet: each box gets its own
/// address, and the first box's key stays as pinned.
#[test]
fn r29_boxes_of_two_homes_get_different_addresses() {
    let alice = TestEnv::local();
    let bob = TestEnv::local();
    bob.write_settings(&format!(
        "owner = \"bob\"\nprovider = \"local\"\n[local]\nbridge = \"{}\"\nnetwork = \"{}\"\nsubnet = \"{}\"\n",
        workstation_tests::BRIDGE,
        workstation_tests::NETWORK,
        alice.subnet
    ));
    let a = alice.json(&["create", "dev"]);
    let b = bob.json(&["create", "dev"]);
    assert_ne!(a["box"]["address"], b["box"]["address"], "{a}\n{b}");
    // Stopped, alice's box keeps its address: bob's next box does not take it.
    alice.ok(&["stop", "dev"]);
    let b2 = bob.json(&["create", "second"]);
    assert_ne!(b2["box"]["address"], a["box"]["address"]);
    alice.ok(&["start", "dev"]);
    assert_eq!(alice.ok(&["ssh", "dev", "--", "hostname"]).trim(), "dev");
    bob.ok(&["destroy", "second", "--yes"]);
    bob.ok(&["destroy", "dev", "--yes"]);
}

/// A woken box runs the command only once its stack is healthy, and its
/// hostnames point at it again, through `ssh` and through plain OpenSSH.
#[test]
fn r29_a_wake_is_a_whole_start() {
    let env = TestEnv::local();
    env.write_manifest(SLOW_STACK);
    let ns = MountNs::start();
    let _agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &["api.dev.test"], "");
    env.ok(&["create", "dev"]);
    let curl = "curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/";

    env.ok(&["stop", "dev"]);
    assert!(!env.ok(&["hosts"]).contains("tester/dev"), "a stopped box's hostnames are cleared");
    let out = env.run(&["ssh", "dev", "--", curl]);
    assert!(out.status.success(), "the first command after a wake: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    assert!(String::from_utf8_lossy(&out.stderr).contains("woke box dev; hostnames api.dev.test"));
    assert!(env.ok(&["hosts"]).contains("tester/dev"), "hostnames point at the woken box");

    // Plain OpenSSH through the generated config's ProxyCommand.
    env.ok(&["ssh-config", "--no-include"]);
    env.ok(&["stop", "dev"]);
    let config = env.state_dir().join("ssh_config");
    // ssh runs the ProxyCommand with this environment (the env's HOME
    // and manifest), as a shell in the checkout would.
    let mut ssh = Command::new("ssh");
    ssh.env_clear().arg("-F").arg(&config).args(["-o", "BatchMode=yes", "ws-dev", curl]);
    for (k, v) in env.cmd(&[]).get_envs() {
        if let Some(v) = v {
            ssh.env(k, v);
        }
    }
    let out = ssh.output().unwrap();
    assert!(out.status.success(), "ssh ws-dev after a wake: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

/// Into a reader that has gone (`| head -1`): quiet, and success.
#[test]
fn r29_closed_pipes_end_quietly_with_success() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);
    for args in [&["list", "--all"][..], &["status", "dev"], &["completions", "bash"], &["services", "-o", "json"], &["logs", "api"], &["--help"]] {
        let mut child = env.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("bug") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

/// `status` and `doctor` say when a bring-up did not finish healthy, and
/// `up` clears it.
#[test]
fn r29_an_unfinished_bring_up_is_reported_until_up() {
    let env = TestEnv::local();
    env.write_manifest(&SLOW_STACK.replace("exec python3", "exec false"));
    let out = env.run(&["create", "dev", "--health-timeout", "3s"]);
    assert!(!out.status.success());
    let status = env.ok(&["status", "dev"]);
    assert!(status.contains("did not finish healthy; run `workstation up dev`"), "{status}");
    let doctor = env.run(&["doctor", "dev"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("bring-up") && text.contains("workstation up dev"), "{text}");
    env.write_manifest(SLOW_STACK);
    env.ok(&["up", "dev"]);
    assert!(!env.ok(&["status", "dev"]).contains("did not finish"));
}

#[test]
fn r29_usage_errors_and_small_ones_teach() {
    let env = TestEnv::local();
    // -o json: a usage error is JSON on stdout too.
    let out = env.run(&["list", "-o", "json", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(body["error"]["kind"], "usage");
    // ssh without `--` says to add it.
    let err = env.fails(&["ssh", "dev", "echo", "hi"]);
    assert!(err.contains("-- echo"), "{err}");
    // Durations and ports in plain words.
    let err = env.fails(&["keep", "--for", "forever"]);
    assert!(err.contains("not a duration") && err.contains("30m"), "{err}");
    env.write_manifest(&manifest_text("image_id = \"ami-0123456789abcdef0\"", "").replace("ports = [8080]", "ports = [80810]"));
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("port number from 1 to 65535"), "{err}");
    env.write_manifest(&manifest_text("image_id = \"ami-0123456789abcdef0\"", ""));
    // Someone else's unknown box is not yours to create.
    let err = env.fails(&["share", "bob"]);
    assert!(err.contains("bob has no box named dev") && !err.contains("workstation create"), "{err}");
    // reap honours --provider local: no AWS call, no credentials needed.
    let out = env.run(&["--provider", "local", "reap", "--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A stopped box is said to be stopped.
    env.ok(&["create", "dev"]);
    env.ok(&["stop", "dev"]);
    let err = env.fails(&["keep", "--for", "30m"]);
    assert!(err.contains("box dev is stopped"), "{err}");
    // A taken local port is named, with the way out.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = env.fails(&["port-forward", "dev", &port]);
    assert!(err.contains(&format!("local port {port} is already in use")) && err.contains(&format!(":{port}`")), "{err}");
    // rm is destroy.
    env.ok(&["rm", "dev", "--yes"]);
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 0);
}

#[test]
fn r29_destroying_a_second_box_points_the_hostnames_back() {
    let env = TestEnv::local();
    let ns = MountNs::start();
    let _agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &["api.dev.test"], "");
    env.ok(&["create", "dev"]);
    env.ok(&["create", "second"]);
    assert!(env.ok(&["hosts"]).contains("tester/second"));
    let out = env.run(&["destroy", "second", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("now point at tester/dev"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(env.ok(&["hosts"]).contains("tester/dev"));
}

#[test]
fn r29_cp_both_ways_and_ssh_options_pass_through() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);
    let here = env.root.path().join("notes.txt");
    std::fs::write(&here, "from the laptop\n").unwrap();
    env.ok(&["cp", here.to_str().unwrap(), "dev:"]);
    assert_eq!(env.ok(&["ssh", "dev", "--", "cat notes.txt"]), "from the laptop\n");
    let back = env.root.path().join("back.txt");
    env.ok(&["cp", "dev:notes.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the laptop\n");
    let err = env.fails(&["cp", here.to_str().unwrap(), back.to_str().unwrap()]);
    assert!(err.contains("BOX:PATH"), "{err}");

    // -L reaches the box's service through the tunnel while the command runs.
    let port = workstation_tests::free_port();
    let spec = format!("{port}:127.0.0.1:8080");
    env.ok(&["ssh", "dev", "--", "for i in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done"]);
    let mut tunnel = env.cmd(&["ssh", "dev", "-L", &spec, "--", "sleep 20"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut ok = false;
    while Instant::now() < deadline && !ok {
        ok = Command::new("curl").args(["-fs", "-o", "/dev/null", &format!("http://127.0.0.1:{port}/")]).status().unwrap().success();
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    assert!(ok, "the -L tunnel never answered");
    let err = env.fails(&["ssh", "dev", "--ssh-option", "StrictHostKeyChecking=no", "--", "true"]);
    assert!(err.contains("pinned"), "{err}");
}
