//! End-to-end: the real `workstation` binary against real boxes (network
//! namespaces with sshd) and, for the aws provider, moto's EC2 API.

use std::path::Path;

use workstation_tests::moto::block_on;
use workstation_tests::shim::Shim;
use workstation_tests::{CountingListener, TestEnv};

fn stdout_of(env: &TestEnv, args: &[&str]) -> String {
    env.ok(args).trim().to_string()
}

// ---- local provider --------------------------------------------------------

#[test]
fn local_create_then_ssh_runs_on_the_box() {
    let env = TestEnv::local();
    let out = env.ok(&["create", "--name", "dev"]);
    assert!(out.contains("box dev (lb-") && out.contains("created"), "{out}");
    assert_eq!(stdout_of(&env, &["ssh", "dev", "--", "hostname"]), "dev");
    // The command runs inside the box's own network namespace.
    let ip = stdout_of(&env, &["ssh", "dev", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(ip.contains(&format!("10.78.{}.", env.subnet.network().octets()[2])), "{ip}");
    // As with ssh: the words after -- are one remote command line (a
    // quoted shell line runs as a shell line), its exit status is ours.
    let out = env.run(&["ssh", "dev", "--", "X=1; echo \"a  b $X\"; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a  b 1\n");

    let list = env.json(&["list"]);
    let boxes = list.as_array().expect("list --output json is an array");
    assert_eq!(boxes.len(), 1);
    assert_eq!(boxes[0]["name"], "dev");
    assert_eq!(boxes[0]["state"], "running");

    // Idempotent: a second create finds the box and changes nothing.
    let again = env.json(&["create", "--name", "dev"]);
    assert_eq!(again["created"], false);
    assert_eq!(again["box"]["id"], boxes[0]["id"]);
}

#[test]
fn local_stop_start_keeps_the_disk_and_destroy_removes_it() {
    let env = TestEnv::local();
    let created = env.json(&["create", "--name", "dev"]);
    let id = created["box"]["id"].as_str().unwrap().to_string();
    let disk = env.state_dir().join("local/tester--dev");
    std::fs::write(disk.join("work-in-progress"), "unsaved").unwrap();

    env.ok(&["stop", "dev"]);
    assert_eq!(env.json(&["status", "dev"])["state"], "stopped");
    assert!(!Path::new(&format!("/run/netns/ws-{}", id.trim_start_matches("lb-"))).exists());
    assert!(disk.join("work-in-progress").exists());

    env.ok(&["start", "dev"]);
    // Same disk, same host key: the pinned key still matches.
    assert_eq!(stdout_of(&env, &["ssh", "dev", "--", "cat", disk.join("work-in-progress").to_str().unwrap()]), "unsaved");

    let err = env.fails(&["destroy", "dev"]);
    assert!(err.contains("--yes"), "destroy without a terminal must ask for --yes: {err}");
    assert!(disk.exists());
    env.ok(&["destroy", "dev", "--yes"]);
    assert!(!disk.exists());
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 0);
    let known = std::fs::read_to_string(env.state_dir().join("known_hosts")).unwrap();
    assert!(!known.contains(&id), "destroy forgets the pinned key: {known}");

    // The freed address is reused at once by the next box, which must be
    // reachable immediately (no stale neighbour entry for the old box).
    env.ok(&["create", "--name", "dev"]);
    assert_eq!(stdout_of(&env, &["ssh", "dev", "--", "hostname"]), "dev");
}

#[test]
fn changed_host_key_is_refused_with_a_way_out() {
    let env = TestEnv::local();
    env.ok(&["create", "--name", "dev"]);
    // The box comes back with a different key than it published and we
    // pinned: what an interception looks like from the laptop.
    env.ok(&["stop", "dev"]);
    let disk = env.state_dir().join("local/tester--dev");
    std::fs::remove_file(disk.join("ssh_host_ed25519_key")).unwrap();
    std::fs::remove_file(disk.join("ssh_host_ed25519_key.pub")).unwrap();
    let err = env.fails(&["start", "dev"]);
    assert!(err.contains("presented host key") && err.contains("is pinned"), "{err}");
    assert!(err.contains("workstation pin dev --replace"), "{err}");
    let err = env.fails(&["ssh", "dev", "--", "hostname"]);
    assert!(err.contains("presented host key"), "{err}");
}

#[test]
fn ssh_config_lets_plain_openssh_in_with_the_pinned_key() {
    let env = TestEnv::local();
    std::fs::write(env.home.join(".ssh/config"), "Host elsewhere\n  User me\n").unwrap();
    env.ok(&["create", "--name", "dev"]);
    env.ok(&["ssh-config"]);
    env.ok(&["ssh-config"]);
    let user_config = std::fs::read_to_string(env.home.join(".ssh/config")).unwrap();
    assert_eq!(user_config.matches("Include").count(), 1, "{user_config}");
    assert!(user_config.ends_with("Host elsewhere\n  User me\n"), "{user_config}");
    let out = workstation_tests::run_ok(
        std::process::Command::new("ssh")
            .args(["-F"])
            .arg(env.home.join(".ssh/config"))
            .args(["-o", "BatchMode=yes", "ws-dev", "hostname"])
            .env("HOME", &env.home),
    );
    assert_eq!(out.trim(), "dev");
}

// ---- input validation: nothing reaches the API -------------------------

#[test]
fn bad_names_are_rejected_before_any_api_call() {
    let mut env = TestEnv::local();
    env.write_settings("owner = \"tester\"\nprovider = \"aws\"\n");
    let listener = CountingListener::start();
    env.set_endpoint(&listener.url);
    for bad in ["a;b", "a b", "a\nb", "Dev", "dеv", &"a".repeat(64), "-x", ""] {
        let out = env.run(&["create", &format!("--name={bad}")]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid box name"), "{bad:?}: {err}");
        let out = env.run(&["status", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    assert_eq!(listener.connections(), 0, "a rejected name must not reach the API");
}

#[test]
fn bad_manifests_name_the_field() {
    let mut env = TestEnv::local();
    env.write_settings("owner = \"tester\"\nprovider = \"aws\"\n");
    let listener = CountingListener::start();
    env.set_endpoint(&listener.url);
    let good = workstation_tests::manifest_text("image_id = \"ami-0123456789abcdef0\"", "");
    let cases = [
        (good.replace("disk_gib", "disk_gb"), "disk_gb"),
        (good.replace("disk_gib = 30", "disk_gib = \"thirty\""), "disk_gib"),
        (good.replace("image_id = \"ami-0123456789abcdef0\"", ""), "box.image_id: missing"),
        (good.replace("disk_gib = 30", "disk_gib = 2"), "box.disk_gib: 2 is out of range"),
        (good.replace("ports = [8080]", "ports = [8080]\nhealth = { tcp = 1, command = \"x\" }"), "services.api.health"),
    ];
    for (text, field) in cases {
        env.write_manifest(&text);
        let out = env.run(&["create"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "expected {field:?} in:\n{err}");
        assert!(err.contains("workstation.toml"), "the error names the file: {err}");
        assert!(err.contains("hint: fix the fields named above"), "a bad manifest comes with a hint: {err}");
    }
    assert_eq!(listener.connections(), 0);
}

#[test]
fn exit_codes_tell_usage_from_a_failed_request() {
    let env = TestEnv::local();
    // Usage (2): clap refuses before anything runs.
    for args in [&["create", "--no-such-flag"][..], &["--output", "yaml", "list"], &["frobnicate"]] {
        assert_eq!(env.run(args).status.code(), Some(2), "{args:?}");
    }
    // A failed request (1): no manifest where one is needed.
    let out = env.cmd(&["create"]).env("WORKSTATION_MANIFEST", env.home.join("missing.toml")).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // A bug is 3 (cli::error's unit tests panic on purpose); --help says so.
    let help = env.ok(&["--help"]);
    assert!(help.contains("Exit codes:") && help.contains("3  a bug in workstation"), "{help}");
}

// ---- aws provider against moto + real boxes -----------------------------

#[test]
fn aws_create_launches_a_pinned_box_and_ssh_works() {
    let env = TestEnv::aws();
    let report = env.json(&["create", "--name", "dev"]);
    let id = report["box"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("i-"), "{report}");
    assert_eq!(report["created"], true);
    env.fleet.as_ref().unwrap().assert_healthy();

    let hostname = stdout_of(&env, &["ssh", "dev", "--", "hostname"]);
    assert_eq!(hostname, format!("box-{}", id.trim_start_matches("i-")));

    // What was asked of EC2: tags, IMDSv2, encrypted gp3 root of the size
    // in the manifest, the user's key imported once.
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let out = client.describe_instances().instance_ids(&id).send().await.unwrap();
        let inst = &out.reservations()[0].instances()[0];
        let tag = |k: &str| inst.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
        assert_eq!(tag("workstation:owner").as_deref(), Some("tester"));
        assert_eq!(tag("workstation:name").as_deref(), Some("dev"));
        assert_eq!(tag("workstation:manifest-hash").map(|h| h.len()), Some(64));
        assert!(tag("workstation:host-key").unwrap().starts_with("ssh-ed25519 "));
        assert_eq!(inst.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()), Some("required"));
        assert!(inst.key_name().unwrap().starts_with("workstation.tester."));
        let vol_id = inst.block_device_mappings()[0].ebs().unwrap().volume_id().unwrap();
        let vols = client.describe_volumes().volume_ids(vol_id).send().await.unwrap();
        let vol = &vols.volumes()[0];
        assert_eq!(vol.size(), Some(30));
        assert_eq!(vol.volume_type().map(|t| t.as_str()), Some("gp3"));
        let keys = client.describe_key_pairs().send().await.unwrap();
        assert_eq!(keys.key_pairs().len(), 1);
    });

    // Re-running create finishes or confirms; it never launches another.
    let again = env.json(&["create", "--name", "dev"]);
    assert_eq!((again["created"].as_bool(), again["box"]["id"].as_str()), (Some(false), Some(id.as_str())));
    let listed = env.json(&["list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["address"].as_str().map(|a| env.subnet.contains(&a.parse::<std::net::Ipv4Addr>().unwrap())), Some(true));
}

#[test]
fn aws_concurrent_creates_of_one_name_give_one_box() {
    let env = TestEnv::aws();
    let children: Vec<_> = (0..3)
        .map(|_| {
            env.cmd(&["create", "--name", "dev", "--output", "json"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["box"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "all creates report one box: {ids:?}");
    let client = env.moto.as_ref().unwrap().client();
    let live = block_on(async {
        let out = client.describe_instances().send().await.unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .map(|i| i.instance_id().unwrap().to_string())
            .collect::<Vec<_>>()
    });
    assert_eq!(live, vec![ids[0].clone()]);
    assert_eq!(stdout_of(&env, &["ssh", "dev", "--", "echo", "one"]), "one");
}

#[test]
fn aws_stop_start_destroy() {
    let env = TestEnv::aws();
    let id = env.json(&["create", "--name", "dev"])["box"]["id"].as_str().unwrap().to_string();
    env.ok(&["ssh", "dev", "--", "touch", "/tmp/ws-e2e-marker"]);
    assert_eq!(env.json(&["stop", "dev"])["state"], "stopped");
    assert_eq!(env.json(&["status", "dev"])["state"], "stopped");
    env.ok(&["start", "dev"]);
    assert_eq!(env.json(&["status", "dev"])["host_key_pinned"], true);
    env.ok(&["ssh", "dev", "--", "true"]);
    env.ok(&["destroy", "dev", "--yes"]);
    let err = env.fails(&["status", "dev"]);
    assert!(err.contains("no box named dev"), "{err}");
    let client = env.moto.as_ref().unwrap().client();
    let state = block_on(async {
        let out = client.describe_instances().instance_ids(&id).send().await.unwrap();
        out.reservations()[0].instances()[0].state().unwrap().name().unwrap().as_str().to_string()
    });
    assert_eq!(state, "terminated");
    // A new box of the same name is a new instance, not the terminated one
    // its ClientToken was first bound to.
    let again = env.json(&["create", "--name", "dev"]);
    assert_ne!(again["box"]["id"].as_str(), Some(id.as_str()));
    env.fleet.as_ref().unwrap().assert_healthy();
}

/// Bob imports a key pair under Alice's name (her public key is public)
/// before her first create: the box would trust Bob. create refuses it.
#[test]
fn aws_create_refuses_a_key_pair_squatted_under_our_name() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let bob_key = env.root.path().join("bob");
    workstation_tests::run_ok(std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&bob_key));
    let bob_public = std::fs::read_to_string(bob_key.with_extension("pub")).unwrap();
    let name = workstation::provider::aws::key_pair_name(&"tester".parse().unwrap(), &env.public_key());
    let owner = aws_sdk_ec2::types::Tag::builder().key("workstation:owner").value("tester").build();
    let tags = aws_sdk_ec2::types::TagSpecification::builder().resource_type(aws_sdk_ec2::types::ResourceType::KeyPair).tags(owner).build();
    let material = aws_sdk_ec2::primitives::Blob::new(bob_public.trim().as_bytes());
    block_on(client.import_key_pair().key_name(&name).public_key_material(material).tag_specifications(tags).send()).unwrap();

    let err = env.fails(&["create", "--name", "dev"]);
    assert!(err.contains(&name) && err.contains("a different public key") && err.contains("Nothing was launched"), "{err}");
    let launched = block_on(client.describe_instances().send()).unwrap();
    assert_eq!(launched.reservations().len(), 0, "nothing is launched");
}

#[test]
fn unknown_box_is_a_clear_error() {
    let env = TestEnv::aws();
    let out = env.run(&["status", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no box named nope for owner tester") && err.contains("workstation list"), "{err}");
    let err = env.fails(&["ssh", "nope", "--", "true"]);
    assert!(err.contains("no box named nope"), "{err}");
}

#[test]
fn aws_throttling_is_retried_by_the_sdk() {
    let mut env = TestEnv::aws();
    let shim = Shim::in_front_of(&mut env, 2);
    let listed = env.json(&["list"]);
    assert_eq!(listed.as_array().unwrap().len(), 0);
    let stats = shim.stats();
    assert_eq!(stats["throttled"], 2, "{stats}");
    assert!(stats["forwarded"].as_u64().unwrap() >= 1, "{stats}");
}

/// `box.hibernate`: the launch enables hibernation (HibernationOptions)
/// once DescribeInstanceTypes says the type can and the disk holds the RAM,
/// and `stop`, the box's idle check and `reap` hibernate (Hibernate=true):
/// the requests as moto received them.
#[test]
fn hibernation_is_asked_for_at_launch_and_at_every_stop() {
    let mut env = TestEnv::aws();
    let shim = Shim::in_front_of(&mut env, 0);
    let text = std::fs::read_to_string(&env.manifest).unwrap();
    env.write_manifest(&text.replace("[box]\n", "[box]\nhibernate = true\n").replace("disk_gib = 30", "disk_gib = 8"));
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("box.hibernate") && err.contains("box.disk_gib = 8") && err.contains("at least 20"), "{err}");
    assert!(shim.requests("RunInstances").is_empty(), "nothing launched");

    env.write_manifest(&text.replace("[box]\n", "[box]\nhibernate = true\n"));
    let created = env.json(&["create", "dev"]);
    let run = &shim.requests("RunInstances")[0];
    assert_eq!(run["HibernationOptions.Configured"], "true", "{run}");
    assert_eq!(run["BlockDeviceMapping.1.Ebs.Encrypted"], "true", "{run}");

    env.ok(&["stop", "dev"]);
    assert_eq!(shim.requests("StopInstances").last().unwrap()["Hibernate"], "true");

    // The box's own idle check, an hour past its timeout.
    env.ok(&["start", "dev"]);
    let (id, ip) = (created["box"]["id"].as_str().unwrap(), env.json(&["status", "dev"])["address"].as_str().unwrap().to_owned());
    let check = |hours: i64| {
        let at = (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        env.cmd_on_box(&ip, &["box", "idle-check", "--instance-id", id, "--region", "us-east-1", "--at", &at, "--output", "json"])
            .env("WORKSTATION_BOX_ROOT", env.root.path().join("box-root"))
            .output()
            .unwrap()
    };
    // The first check after a start counts as activity; two hours of
    // nothing after it, the box stops.
    assert!(check(1).status.success());
    let out = check(3);
    // Its exit status is not asserted: the box it stops may end it first,
    // as on EC2. The request is what counts.
    let stops = shim.requests("StopInstances");
    assert_eq!(stops.len(), 2, "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!((stops[1]["InstanceId.1"].as_str(), stops[1]["Hibernate"].as_str()), (Some(id), Some("true")), "{stops:?}");

    // reap: its batch of hibernating boxes hibernates (past the last
    // report, at hour 1, by the timeout and reap's grace).
    env.ok(&["start", "dev"]);
    let at = (chrono::Utc::now() + chrono::Duration::hours(6)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    env.ok(&["reap", "--at", &at]);
    let stops = shim.requests("StopInstances");
    assert_eq!(stops.last().unwrap()["Hibernate"], "true", "{stops:?}");
}

/// `connect = "ssm"`: SSH goes through Session Manager's AWS-StartSSHSession
/// (here a stand-in for the AWS CLI and its plugin, tests/support/ssm/aws,
/// that checks its arguments and relays to the box's sshd), for russh (the
/// library's own sessions) and OpenSSH alike, and the pinned host key still
/// decides: a session that lands on another box is refused.
#[test]
fn through_session_manager_the_pinned_key_still_decides() {
    let env = TestEnv::local();
    env.ok(&["create", "--name", "dev"]);
    env.ok(&["create", "--name", "other"]);
    let boxes = env.json(&["list"]);
    let find = |name: &str| {
        let b = boxes.as_array().unwrap().iter().find(|b| b["name"] == name).unwrap_or_else(|| panic!("{name} in {boxes}"));
        (b["id"].as_str().unwrap().to_string(), b["address"].as_str().unwrap().to_string())
    };
    let ((dev_id, dev_ip), (_, other_ip)) = (find("dev"), find("other"));
    let dir = tempfile::tempdir().unwrap();
    let (map, log) = (dir.path().join("map"), dir.path().join("log"));
    let stand_in = workstation_tests::repo_root().join("tests/support/ssm");
    let path = format!("{}:{}", stand_in.display(), std::env::var("PATH").unwrap());
    let via_ssm = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("WORKSTATION_CONNECT", "ssm").env("PATH", &path).env("WS_SSM_MAP", &map).env("WS_SSM_LOG", &log);
        cmd.output().unwrap()
    };

    std::fs::write(&map, format!("{dev_id} {dev_ip}\n")).unwrap();
    let out = via_ssm(&["ssh", "dev", "--", "hostname"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "dev");
    let out = via_ssm(&["services"]);
    assert!(out.status.success(), "russh through the session: {}", String::from_utf8_lossy(&out.stderr));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.lines().count(), 2, "one session for OpenSSH, one for russh: {calls}");
    for call in calls.lines() {
        assert_eq!(call, format!("ssm start-session --target {dev_id} --document-name AWS-StartSSHSession --parameters portNumber=22"));
    }

    // Without the AWS CLI, the error says what to install, at once (not
    // after waiting for a box that is up).
    let out = env.cmd(&["services"]).env("WORKSTATION_CONNECT", "ssm").env("PATH", "/nonexistent").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("install the AWS CLI v2 and the Session Manager plugin"), "{err}");

    // A session that lands on another box meets the pin.
    std::fs::write(&map, format!("{dev_id} {other_ip}\n")).unwrap();
    let out = via_ssm(&["services"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("presented host key"), "{err}");
    let out = via_ssm(&["ssh", "dev", "--", "hostname"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("Host key verification failed"), "{err}");
}
