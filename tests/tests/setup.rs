//! `workstation init`, `doctor` and `completions` on fresh HOMEs: local
//! boxes and moto, a hosts agent in a private mount namespace, the OS
//! resolver (getaddrinfo) seeing that namespace's /etc/hosts.

use std::process::{Command, Output};

use workstation_tests::hostsagent::HostsDaemon;
use workstation_tests::mountns::MountNs;
use workstation_tests::TestEnv;

/// Makes the env's HOME fresh: settings without owner or provider (the test
/// network's [local] part stays, so boxes land on the test bridge) and, with
/// `key`, no SSH key. (moto's boxes trust the env's key from the start.)
fn fresh_home(env: &TestEnv, key: bool) {
    for f in [".ssh/id_ed25519", ".ssh/id_ed25519.pub"].iter().filter(|_| key) {
        let _ = std::fs::remove_file(env.home.join(f));
    }
    let settings = env.home.join(".config/workstation/config.toml");
    let text = std::fs::read_to_string(&settings).unwrap_or_default();
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("owner") && !l.starts_with("provider")).collect();
    std::fs::write(&settings, kept.join("\n") + "\n").unwrap();
}

/// `workstation ARGS` with this env, run inside `ns` (its /etc/hosts).
fn in_ns(env: &TestEnv, ns: &MountNs, args: &[&str]) -> Command {
    env.cmd_via(ns.enter(), args)
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn doctor(env: &TestEnv, ns: &MountNs) -> (bool, Vec<serde_json::Value>) {
    let out = in_ns(env, ns, &["doctor", "--output", "json"]).output().unwrap();
    (out.status.success(), json_of(&out).as_array().unwrap().clone())
}

fn check<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[test]
fn init_on_a_fresh_home_then_doctor_names_each_breakage_and_its_fix() {
    let env = TestEnv::local();
    fresh_home(&env, true);
    let ns = MountNs::start();
    // The test manifest points api.dev.test at the box.
    let mut agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &["api.dev.test"], "");

    // Resumable: each step alone, in order, then the rest.
    let steps = ["prerequisites", "settings", "ssh-key", "aws", "ssh-config", "hosts-agent", "completions"];
    for step in steps {
        let out = in_ns(&env, &ns, &["init", "--yes", "--owner", "tester", "--provider", "local", "--until", step, "--output", "json"]).output().unwrap();
        assert!(out.status.success(), "init --until {step}: {}", String::from_utf8_lossy(&out.stderr));
        let done = json_of(&out)["steps"].as_array().unwrap().clone();
        assert_eq!(done.last().unwrap()["step"], step, "{done:?}");
    }
    assert!(env.home.join(".ssh/id_ed25519").exists());
    assert!(env.home.join(".local/share/bash-completion/completions/workstation").exists());
    let out = in_ns(&env, &ns, &["init", "--yes", "--owner", "tester", "--provider", "local", "--output", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first = json_of(&out);
    assert_eq!(first["create"]["up"]["healthy"], true, "{first}");
    let ip = first["create"]["box"]["address"].as_str().unwrap().to_string();
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(ip.as_str()));

    // A second run changes nothing.
    let out = in_ns(&env, &ns, &["init", "--yes", "--owner", "tester", "--provider", "local", "--output", "json"]).output().unwrap();
    let second = json_of(&out);
    let changed: Vec<&serde_json::Value> = second["steps"].as_array().unwrap().iter().filter(|s| s["changed"] == true).collect();
    assert!(changed.is_empty(), "second init changed {changed:?}");
    assert_eq!(second["create"]["created"], false);

    let (healthy, checks) = doctor(&env, &ns);
    assert!(healthy, "{checks:#?}");
    assert_eq!(check(&checks, "hostnames")["outcome"], "ok");

    // A stopped service.
    env.ok(&["ssh", "dev", "--", "supervisorctl -c \"$WORKSTATION_BOX_ROOT/supervisor/current/supervisord.conf\" stop api"]);
    let (healthy, checks) = doctor(&env, &ns);
    let services = check(&checks, "services");
    assert!(!healthy && services["outcome"] == "fail", "{checks:#?}");
    assert!(services["detail"].as_str().unwrap().contains("api") && services["fix"].as_str().unwrap().contains("workstation restart api"), "{services}");
    env.ok(&["restart", "api"]);

    // A wrong hosts entry: the block hand-edited to another address.
    let hosts = std::fs::read_to_string(ns.hosts()).unwrap();
    std::fs::write(ns.hosts(), hosts.replace(ip.as_str(), "10.78.255.254")).unwrap();
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some("10.78.255.254"));
    let (_, checks) = doctor(&env, &ns);
    let names = check(&checks, "hostnames");
    assert_eq!(names["outcome"], "fail", "{names}");
    assert!(names["detail"].as_str().unwrap().contains("10.78.255.254"), "{names}");
    assert!(names["fix"].as_str().unwrap().contains("workstation share --off"), "{names}");
    // The fix it names works.
    in_ns(&env, &ns, &["share", "--off"]).output().unwrap();
    assert_eq!(ns.getent("api.dev.test").as_deref(), Some(ip.as_str()));

    // A missing Include line.
    let user_config = env.home.join(".ssh/config");
    let saved = std::fs::read_to_string(&user_config).unwrap();
    std::fs::write(&user_config, "Host other\n  User x\n").unwrap();
    let (_, checks) = doctor(&env, &ns);
    let include = check(&checks, "ssh config");
    assert!(include["outcome"] == "fail" && include["fix"] == "workstation ssh-config", "{include}");
    std::fs::write(&user_config, saved).unwrap();

    // Another host key pinned: doctor does not connect, and says when
    // re-pinning is right.
    let known_hosts = env.state_dir().join("known_hosts");
    let pinned = std::fs::read_to_string(&known_hosts).unwrap();
    let other = env.root.path().join("other-host-key");
    workstation_tests::run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&other));
    let other_key: Vec<String> = std::fs::read_to_string(other.with_extension("pub")).unwrap().split_whitespace().take(2).map(String::from).collect();
    let swapped: String = pinned
        .lines()
        .map(|l| match l.split_whitespace().next() {
            Some(alias) if !l.starts_with('#') => format!("{alias} {}\n", other_key.join(" ")),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&known_hosts, swapped).unwrap();
    let (_, checks) = doctor(&env, &ns);
    let ssh = check(&checks, "ssh");
    assert_eq!(ssh["outcome"], "fail", "{ssh}");
    assert!(ssh["fix"].as_str().unwrap().contains("--replace") && ssh["fix"].as_str().unwrap().contains("rebuilt on purpose"), "{ssh}");
    assert_eq!(check(&checks, "services")["outcome"], "skip");
    std::fs::write(&known_hosts, pinned).unwrap();

    // A stopped agent (doctor runs while it is down).
    let mut seen = None;
    agent.crash_and_restart(&ns, || seen = Some(doctor(&env, &ns)));
    let (healthy, checks) = seen.unwrap();
    let agent_check = check(&checks, "hosts agent");
    assert!(!healthy && agent_check["outcome"] == "fail", "{checks:#?}");
    assert!(agent_check["fix"].as_str().unwrap().contains("workstation-hosts install"), "{agent_check}");
    assert_eq!(check(&checks, "hostnames")["outcome"], "skip");
    // Everything else still checked, and fine.
    assert_eq!(check(&checks, "services")["outcome"], "ok", "{checks:#?}");
}

#[test]
fn init_stopped_by_broken_credentials_resumes_when_they_work() {
    let env = TestEnv::aws();
    fresh_home(&env, false);
    let good: Vec<(String, String)> = env.moto.as_ref().unwrap().client_env();
    let endpoint = good.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL").unwrap().1.clone();
    let closed = format!("http://127.0.0.1:{}", workstation_tests::free_port());

    let out = env.cmd(&["init", "--yes", "--owner", "tester", "--provider", "aws"]).env("AWS_ENDPOINT_URL", &closed).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("AWS credentials do not work"), "{err}");
    // What came before the failure is done and stays done.
    assert!(env.home.join(".ssh/id_ed25519").exists());
    let settings = std::fs::read_to_string(env.home.join(".config/workstation/config.toml")).unwrap();
    assert!(settings.contains("owner = \"tester\"") && settings.contains("provider = \"aws\""), "{settings}");

    let out = env.cmd(&["init", "--yes", "--owner", "tester", "--provider", "aws", "--output", "json"]).env("AWS_ENDPOINT_URL", &endpoint).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = json_of(&out);
    let aws = done["steps"].as_array().unwrap().iter().find(|s| s["step"] == "aws").unwrap().clone();
    assert!(aws["detail"].as_str().unwrap().contains("arn:aws:") && aws["detail"].as_str().unwrap().contains("workstation.tester."), "{aws}");
    assert_eq!(aws["changed"], true, "the first run imports the key pair: {aws}");
    assert_eq!(done["create"]["up"]["healthy"], true, "{done}");
    env.fleet.as_ref().unwrap().assert_healthy();
    // Again: nothing to import, nothing created.
    let again = json_of(
        &env.cmd(&["init", "--yes", "--owner", "tester", "--provider", "aws", "--output", "json"]).env("AWS_ENDPOINT_URL", &endpoint).output().unwrap(),
    );
    let changed: Vec<&serde_json::Value> = again["steps"].as_array().unwrap().iter().filter(|s| s["changed"] == true).collect();
    assert!(changed.is_empty(), "second init changed {changed:?}");
}

#[test]
fn completions_generate_for_each_shell() {
    let env = TestEnv::local();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = env.ok(&["completions", shell]);
        assert!(script.contains("workstation") && script.contains("share") && script.contains("doctor"), "{shell}");
    }
    // From a file: the script is longer than one argument may be (128 KiB).
    let bash = env.root.path().join("completion.bash");
    std::fs::write(&bash, env.ok(&["completions", "bash"])).unwrap();
    let out = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(out.status.success(), "bash rejects its completion script: {}", String::from_utf8_lossy(&out.stderr));
}
