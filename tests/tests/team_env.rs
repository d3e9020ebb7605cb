//! Team boxes (`workstation env`): CI deploys one from a branch (a commit,
//! then only what changed), engineers of other owners reach it only with
//! their own key pushed for the login (the local provider's counterpart of
//! EC2 Instance Connect), the box records who came, and only the owner
//! takes it down; reap starts it in its working hours. Against moto, the push is EC2 Instance Connect's own
//! SendSSHPublicKey; who may push is the IAM simulator's (terraform.rs).

use std::process::Command;

use std::time::{Duration, Instant};

use workstation_tests::hostsagent::HostsDaemon;
use workstation_tests::http_server::SERVER;
use workstation_tests::mountns::MountNs;
use workstation_tests::repo::{commit, init, read, write};
use workstation_tests::{free_port, netns_with, run_ok, TestEnv};

const MANIFEST: &str = r#"
hostnames = ["api.box.ws-test"]

[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"

[services.api]
command = "sh -c 'cd \"$WORKSTATION_BOX_ROOT/src/app\" && echo \"$WORKSTATION_TEAM_ENV\" > team.env && exec sleep 100000'"
restart_on = ["api/**"]

# Team boxes are up in "working hours" that begin every second, so reap
# starts a box stopped in the last one.
[team_idle]
timeout = "2h"
[[team_idle.schedules]]
action = "start"
cron = "* * * * * *"
duration = "1s"
"#;

/// `workstation ARGS` as engineer `who`, with her own key.
fn as_engineer(env: &TestEnv, who: &str, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("WORKSTATION_OWNER", who).env("WORKSTATION_SSH_KEY", env.root.path().join(format!("{who}_key")));
    c
}

/// `workstation ARGS` as payments' CI: the team's deployer, `payments-ci`,
/// with the default key.
fn as_ci(env: &TestEnv, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("WORKSTATION_OWNER", "payments-ci");
    c
}

fn json_of(mut c: Command) -> serde_json::Value {
    c.args(["--output", "json"]);
    serde_json::from_str(&run_ok(&mut c)).unwrap()
}

#[test]
fn ci_deploys_a_team_box_that_members_reach_with_their_own_pushed_key() {
    let env = TestEnv::local();
    env.write_manifest(MANIFEST);
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("api/main.txt"), "api v1\n");
    write(&repo.join("README"), "team\n");
    let c1 = commit(&repo, &["."], "one");
    let repo_arg = repo.to_str().unwrap();

    // CI (owner tester) deploys payments/staging at c1.
    let up = json_of(as_ci(&env, &["env", "up", "staging", "--team", "payments", "--ref", &c1, "--repo", repo_arg]));
    assert_eq!((up["box"]["name"].as_str(), up["created"].as_bool(), up["healthy"].as_bool()), (Some("payments-staging"), Some(true), Some(true)), "{up}");
    assert_eq!(up["upload"]["mode"], "full", "{up}");
    assert_eq!(up["hostnames"][0], "api.payments-staging.box.ws-test");
    let tree = std::path::PathBuf::from(up["path"].as_str().unwrap());
    workstation_tests::wait_until(std::time::Duration::from_secs(30), || tree.join("team.env").exists(), || "the service's team variable".into());
    assert_eq!(read(tree.join("team.env")), "payments/staging\n");

    // The next push uploads only what changed.
    write(&repo.join("api/main.txt"), "api v2\n");
    let c2 = commit(&repo, &["api"], "two");
    let again = json_of(as_ci(&env, &["env", "up", "staging", "--team", "payments", "--ref", "main", "--repo", repo_arg]));
    assert_eq!((again["created"].as_bool(), again["upload"]["mode"].as_str()), (Some(false), Some("changes")), "{again}");
    assert_eq!((again["upload"]["from"].as_str(), again["upload"]["written"].as_u64()), (Some(c1.as_str()), Some(1)), "{again}");
    assert_eq!(again["applied"]["restarted"], serde_json::json!(["api"]), "{again}");
    let listed = env.json(&["env", "list"]);
    assert_eq!(listed[0]["team"], serde_json::json!({"team": "payments", "env": "staging", "commit": c2}), "{listed}");

    // Alice, another owner with her own key, is not in the box's keys...
    let key = env.root.path().join("alice_key");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"]).arg(&key));
    let address = up["box"]["address"].as_str().unwrap();
    let known_hosts = env.state_dir().join("known_hosts");
    let plain = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.with_extension("alice").display()))
        .arg("-i")
        .arg(&key)
        .arg(format!("root@{address}"))
        .arg("true")
        .output()
        .unwrap();
    assert!(!plain.status.success(), "alice's key logged in without being pushed");
    // ...but reaches the team box through `--env`, which pushes it.
    let hello = run_ok(&mut as_engineer(&env, "alice", &["ssh", "--env", "payments/staging", "--", "echo", "hello from the team box"]));
    assert_eq!(hello.trim(), "hello from the team box");
    // She points this laptop's names for the team box at it.
    let ns = MountNs::start();
    let _agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &[], "");
    let shared = json_of(as_engineer(&env, "alice", &["share", "--env", "payments/staging"]));
    assert_eq!(ns.getent("api.payments-staging.box.ws-test").as_deref(), Some(address), "{shared}");
    run_ok(&mut as_engineer(&env, "alice", &["share", "--env", "payments/staging", "--off"]));
    assert_eq!(ns.getent("api.payments-staging.box.ws-test"), None);
    // The box recorded her login; she sees it, and the stack, in `env status`.
    let status = json_of(as_engineer(&env, "alice", &["env", "status", "payments/staging"]));
    let access = status["access"].as_array().unwrap();
    assert!(access.iter().any(|e| e["who"] == "alice@workstation" && e["what"] == "ssh as root"), "{status:#}");
    assert!(status["programs"].as_array().unwrap().iter().any(|p| p["name"] == "api"), "{status:#}");

    // Stopped before a window began, it is started by reap in the window.
    let id = up["box"]["id"].as_str().unwrap();
    run_ok(&mut as_ci(&env, &["stop", "payments-staging"]));
    std::thread::sleep(Duration::from_millis(1100));
    let reaped = env.json(&["reap"])["report"].clone();
    assert_eq!((reaped["to_start"].clone(), reaped["started"].clone()), (serde_json::json!([id]), serde_json::json!([id])), "{reaped:#}");
    assert_eq!(env.json(&["env", "list"])[0]["state"], "running");

    // Only its owner (CI) takes it down; then nothing is left.
    let refused = as_engineer(&env, "alice", &["env", "down", "payments/staging"]).output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("deployed by owner payments-ci"), "{said}");
    run_ok(&mut as_ci(&env, &["env", "down", "payments/staging"]));
    assert_eq!(env.json(&["env", "list"]), serde_json::json!([]));
    assert!(env.fails(&["env", "status", "payments/staging"]).contains("no team box payments/staging"));
}

/// A member intercepts only her own requests on the team box: through her
/// pushed key, over OpenSSH with the generated config's team entry; the
/// box records the intercept in its access log.
#[test]
fn a_member_intercepts_her_own_requests_on_the_team_box() {
    let env = TestEnv::local();
    let (front, own) = (free_port(), free_port());
    let server = env.root.path().join("server.py");
    std::fs::write(&server, SERVER).unwrap();
    env.write_manifest(&format!(
        "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n\
         [services.api]\ncommand = \"python3 {server} box {own}\"\nports = [{own}]\nfront = {{ port = {front} }}\nhealth = {{ http = \"/\", port = {own} }}\n",
        server = server.display()
    ));
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("README"), "team\n");
    commit(&repo, &["."], "one");
    let up = json_of(as_ci(&env, &["env", "up", "staging", "--team", "payments", "--ref", "main", "--repo", repo.to_str().unwrap()]));
    assert_eq!(up["healthy"], true, "{up}");
    let box_ns = netns_with(up["box"]["address"].as_str().unwrap()).unwrap();
    // The bridge keeps the address it was given whatever boxes come and
    // go (else every box's gateway entry goes stale when one boots, and
    // its connections stall for up to a minute).
    let bridge = run_ok(Command::new("ip").args(["-br", "link", "show", workstation_tests::BRIDGE]));
    assert!(bridge.contains("02:76:"), "{bridge}");
    let ask = |header: Option<&str>| {
        let mut curl = Command::new("ip");
        curl.args(["netns", "exec", &box_ns, "curl", "-s", "--max-time", "5"]);
        if let Some(h) = header {
            curl.args(["-H", h]);
        }
        String::from_utf8_lossy(&curl.arg(format!("http://127.0.0.1:{front}/")).output().unwrap().stdout).trim().to_string()
    };
    assert_eq!(ask(None), "box");

    let key = env.root.path().join("alice_key");
    run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f"]).arg(&key));
    let laptop = free_port();
    let (mapping, port) = (format!("{own}:{laptop}"), laptop.to_string());
    let args = [
        "intercept",
        "api",
        "--env",
        "payments/staging",
        "--header",
        "x-dev=alice",
        "--port",
        &mapping,
        "--",
        "python3",
        server.to_str().unwrap(),
        "alice",
        &port,
    ];
    let mut alice = as_engineer(&env, "alice", &args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Generous: on a loaded 2-core CI machine the intercept's three SSH
    // connections (shell, control master, forward) once took over 30 s.
    let started = Instant::now();
    loop {
        let answer = ask(Some("x-dev: alice"));
        if answer == "alice" {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) || alice.try_wait().unwrap().is_some() {
            let _ = alice.kill();
            let out = alice.wait_with_output().unwrap();
            panic!(
                "alice's requests did not reach her laptop after {:?} (the box answered {answer:?}); the intercept said:\n{}",
                started.elapsed(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(None), "box", "everyone else's requests stay on the box");
    // Ctrl-C ends it; her route goes, and the box recorded both ends.
    run_ok(Command::new("kill").args(["-INT", &alice.id().to_string()]));
    alice.wait().unwrap();
    assert_eq!(ask(Some("x-dev: alice")), "box");
    let status = json_of(as_engineer(&env, "alice", &["env", "status", "payments/staging"]));
    let what: Vec<&str> =
        status["access"].as_array().unwrap().iter().filter(|e| e["who"].as_str().unwrap().starts_with("alice")).map(|e| e["what"].as_str().unwrap()).collect();
    assert!(what.contains(&"intercept of api for x-dev: alice") && what.contains(&"intercept of api ended (x-dev: alice)"), "{status:#}");
    run_ok(&mut as_ci(&env, &["env", "down", "payments/staging"]));
}

/// On AWS (moto, with the boxes as namespaces): CI's `env up` tags the
/// instance as the team's and deploys only what changed on the next push;
/// a key is pushed with EC2 Instance Connect's SendSSHPublicKey through the
/// SDK. Who may push is the IAM simulator's (terraform.rs).
#[test]
fn on_aws_a_team_box_is_tagged_updated_by_changes_and_takes_pushed_keys() {
    use workstation::provider::aws::AwsProvider;
    use workstation::provider::{AddressKind, Provider};
    use workstation_tests::moto::block_on;
    let env = TestEnv::aws();
    let moto = env.moto.as_ref().unwrap();
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("index.html"), "v1\n");
    let c1 = commit(&repo, &["."], "one");
    let repo_arg = repo.to_str().unwrap();
    let up = json_of(as_ci(&env, &["env", "up", "staging", "--team", "payments", "--ref", "main", "--repo", repo_arg]));
    assert_eq!((up["created"].as_bool(), up["healthy"].as_bool(), up["upload"]["mode"].as_str()), (Some(true), Some(true), Some("full")), "{up}");
    write(&repo.join("index.html"), "v2\n");
    let c2 = commit(&repo, &["index.html"], "two");
    let again = json_of(as_ci(&env, &["env", "up", "staging", "--team", "payments", "--ref", "main", "--repo", repo_arg]));
    assert_eq!(
        (again["upload"]["mode"].as_str(), again["upload"]["from"].as_str(), again["upload"]["written"].as_u64()),
        (Some("changes"), Some(c1.as_str()), Some(1)),
        "{again}"
    );

    let ec2 = moto.client();
    let id = up["box"]["id"].as_str().unwrap();
    let tags = block_on(ec2.describe_instances().instance_ids(id).send()).unwrap().reservations()[0].instances()[0].tags().to_vec();
    let tag = |k: &str| tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
    assert_eq!((tag("workstation:team"), tag("workstation:env")), (Some("payments".into()), Some("staging".into())));
    assert_eq!(tag("workstation:ref").as_deref(), Some(c2.as_str()));
    assert_eq!(env.json(&["env", "list"])[0]["team"]["commit"], c2.as_str());

    let provider = AwsProvider::new(ec2, moto.sqs_client(), AddressKind::Private).with_instance_connect(moto.instance_connect_client());
    let info = block_on(provider.describe(id)).unwrap();
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAuwP5WA8pJXfo6aWPiahpWb/ld1QyoNLyQ1z50Qo6OX alice@workstation";
    block_on(provider.push_key(&info, "payments-ci", key)).expect("moto accepts SendSSHPublicKey");
    run_ok(&mut as_ci(&env, &["env", "down", "payments/staging"]));
}
