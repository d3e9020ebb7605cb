//! `workstation preview` on local boxes (real sshd, supervisord), from a git
//! repository fixture: a commit's tree and nothing else reaches the box, a
//! later push uploads only what changed and runs the install rule once, two
//! previews run side by side under their own hostnames (checked with
//! getent through the real hosts agent), and `down` removes box and names.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use workstation_tests::hostsagent::HostsDaemon;
use workstation_tests::mountns::MountNs;
use workstation_tests::repo::{commit, git, init, read, write};
use workstation_tests::{run_ok, TestEnv};

/// The service records its preview variables and each start; the install
/// rule appends a line per run.
const MANIFEST: &str = r#"
hostnames = ["api.box.ws-test"]

[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"

[services.api]
command = "sh -c 'cd \"$WORKSTATION_BOX_ROOT/src/app\" && env | grep ^WORKSTATION_PREVIEW | sort > preview.env && echo start >> starts.log && exec sleep 100000'"
install = "echo installed >> install.log"
install_on = ["package-lock.json"]
restart_on = ["api/**"]
"#;

#[test]
fn previews_upload_a_commit_then_only_its_changes_side_by_side_under_their_own_names() {
    let env = TestEnv::local();
    env.write_manifest(MANIFEST);
    let ns = MountNs::start();
    let _agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &[], "");
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("version.txt"), "v1\n");
    write(&repo.join("api/main.txt"), "api v1\n");
    write(&repo.join("package-lock.json"), "{\"lock\": 1}\n");
    write(&repo.join("old.txt"), "to be deleted\n");
    write(&repo.join("README"), "committed\n");
    let c1 = commit(&repo, &["."], "one");
    write(&repo.join("later.txt"), "from a later commit\n");
    let c1b = commit(&repo, &["later.txt"], "later");
    // Not committed: never on the box.
    write(&repo.join("uncommitted.txt"), "local only\n");
    write(&repo.join("README"), "edited, not committed\n");
    let repo_arg = repo.to_str().unwrap();

    let up = env.json(&["preview", "up", "--pr", "1", "--ref", &c1, "--repo", repo_arg]);
    assert_eq!(up["box"]["name"], "pr-1", "{up}");
    assert_eq!(up["upload"]["mode"], "full", "{up}");
    assert_eq!(up["commit"], c1.as_str());
    assert_eq!(up["healthy"], true, "{up}");
    let tree = PathBuf::from(up["path"].as_str().unwrap());
    assert!(tree.ends_with("src/app"), "{}", tree.display());
    assert_eq!(read(tree.join("README")), "committed\n");
    assert!(!tree.join("uncommitted.txt").exists(), "an uncommitted file reached the box");
    assert!(!tree.join("later.txt").exists(), "a file of a later commit reached the box");
    assert_eq!(read(tree.join("install.log")), "installed\n", "the lockfile's install runs once for a new tree");
    let wait_env = || {
        workstation_tests::wait_until(std::time::Duration::from_secs(30), || tree.join("preview.env").exists(), || "the service's environment file".into());
        read(tree.join("preview.env"))
    };
    assert_eq!(wait_env(), "WORKSTATION_PREVIEW=1\nWORKSTATION_PREVIEW_URL=http://api.pr-1.box.ws-test\n");
    assert_eq!(up["hostnames"][0], "api.pr-1.box.ws-test");
    let pr1_ip = up["box"]["address"].as_str().unwrap().to_owned();
    assert_eq!(ns.getent("api.pr-1.box.ws-test").as_deref(), Some(pr1_ip.as_str()));
    let listed = env.json(&["list"]);
    let tags = &listed.as_array().unwrap().iter().find(|b| b["name"] == "pr-1").unwrap()["preview"];
    assert_eq!((tags["number"].as_u64(), tags["commit"].as_str()), (Some(1), Some(c1.as_str())), "{tags}");

    // A push: one changed source file, a lockfile change, a delete.
    let unchanged_inode = std::fs::metadata(tree.join("version.txt")).unwrap().ino();
    write(&repo.join("api/main.txt"), "api v2\n");
    write(&repo.join("package-lock.json"), "{\"lock\": 2}\n");
    std::fs::remove_file(repo.join("old.txt")).unwrap();
    let c2 = commit(&repo, &["api", "package-lock.json", "old.txt"], "two");
    assert!(!c2.is_empty() && c2 != c1b);
    let again = env.json(&["preview", "up", "--pr", "1", "--ref", "main", "--repo", repo_arg]);
    assert_eq!(again["created"], false);
    assert_eq!(again["upload"]["mode"], "changes", "{again}");
    assert_eq!(again["upload"]["from"], c1.as_str());
    // later.txt, api/main.txt and package-lock.json; old.txt deleted.
    assert_eq!((again["upload"]["written"].as_u64(), again["upload"]["deleted"].as_u64()), (Some(3), Some(1)), "{again}");
    assert_eq!(again["applied"]["installed"].as_array().unwrap().len(), 1, "{again}");
    assert_eq!(read(tree.join("install.log")), "installed\ninstalled\n", "the install rule runs once per push that changes the lockfile");
    assert_eq!(read(tree.join("api/main.txt")), "api v2\n");
    assert_eq!(read(tree.join("later.txt")), "from a later commit\n");
    assert!(!tree.join("old.txt").exists(), "a deleted file stays deleted on the box");
    assert!(!tree.join("uncommitted.txt").exists());
    assert_eq!(std::fs::metadata(tree.join("version.txt")).unwrap().ino(), unchanged_inode, "an unchanged file was uploaded again");
    assert_eq!(read(tree.join("starts.log")), "start\nstart\n", "api restarted once (its install ran)");
    assert_eq!(again["healthy"], true, "{again}");

    // A force-push: the box's commit is gone from the clone, so the whole
    // tree goes up again, and every service restarts on it.
    git(&repo, &["reset", "-q", "--hard", &c1b]);
    git(&repo, &["reflog", "expire", "--expire=now", "--all"]);
    git(&repo, &["gc", "-q", "--prune=now"]);
    write(&repo.join("api/main.txt"), "api v3\n");
    let c3 = commit(&repo, &["api"], "three");
    let forced = env.json(&["preview", "up", "--pr", "1", "--ref", &c3, "--repo", repo_arg]);
    assert_eq!(forced["upload"]["mode"], "full", "{forced}");
    assert_eq!(read(tree.join("api/main.txt")), "api v3\n");
    assert_eq!(read(tree.join("install.log")), "installed\n", "a whole new tree: installed again, the old tree's files gone");
    assert_eq!(read(tree.join("starts.log")), "start\n", "api restarted on the new tree");
    assert_eq!(forced["applied"]["restarted"], serde_json::json!(["api"]), "{forced}");

    // A box of that name that is not a preview is left alone.
    // (Its stack is unhealthy: api's directory is a preview's.)
    env.run(&["create", "--name", "pr-3"]);
    assert!(env.json(&["list"]).as_array().unwrap().iter().any(|b| b["name"] == "pr-3"));
    let err = env.fails(&["preview", "up", "--pr", "3", "--ref", &c3, "--repo", repo_arg]);
    assert!(err.contains("box pr-3 exists and is not a preview"), "{err}");
    env.ok(&["destroy", "pr-3", "--yes"]);

    // A second preview beside it, under its own names; markdown for the PR.
    let out = env.cmd(&["preview", "up", "--pr", "2", "--ref", &c1, "--repo", repo_arg, "--output", "markdown"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let comment = String::from_utf8(out.stdout).unwrap();
    assert!(
        comment.starts_with("### Preview #2 is up") && comment.contains("**http://api.pr-2.box.ws-test**") && comment.contains("| api | RUNNING |"),
        "{comment}"
    );
    assert!(comment.contains(&format!("Commit `{}`", &c1[..12])), "{comment}");
    let previews = env.json(&["preview", "list"]);
    let numbers: Vec<u64> = previews.as_array().unwrap().iter().map(|b| b["preview"]["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2]);
    let pr2_ip = previews[1]["address"].as_str().unwrap().to_owned();
    assert_ne!(pr1_ip, pr2_ip);
    assert_eq!(ns.getent("api.pr-1.box.ws-test").as_deref(), Some(pr1_ip.as_str()));
    assert_eq!(ns.getent("api.pr-2.box.ws-test").as_deref(), Some(pr2_ip.as_str()));

    // A reviewer's laptop: off, then on through share --preview.
    env.ok(&["share", "--preview", "1", "--off"]);
    assert_eq!(ns.getent("api.pr-1.box.ws-test"), None);
    let shared = env.ok(&["share", "--preview", "1"]);
    assert!(shared.contains("api.pr-1.box.ws-test") && shared.contains("tester/pr-1"), "{shared}");
    assert_eq!(ns.getent("api.pr-1.box.ws-test").as_deref(), Some(pr1_ip.as_str()));
    let err = env.fails(&["share", "--preview", "9"]);
    assert!(err.contains("no preview #9"), "{err}");

    env.ok(&["preview", "down", "1"]);
    assert_eq!(ns.getent("api.pr-1.box.ws-test"), None, "down removes the preview's hostnames");
    assert!(!tree.exists(), "down removes the box's disk");
    let left: Vec<u64> = env.json(&["preview", "list"]).as_array().unwrap().iter().map(|b| b["preview"]["number"].as_u64().unwrap()).collect();
    assert_eq!(left, [2]);
    assert_eq!(ns.getent("api.pr-2.box.ws-test").as_deref(), Some(pr2_ip.as_str()));
    let err = env.fails(&["preview", "down", "1"]);
    assert!(err.contains("no preview #1"), "{err}");
}

/// The aws provider against moto: a preview's tags, its hostnames in a
/// Route 53 zone (written by `up`, removed by `down`), and `reap`
/// terminating a preview past its expiry (not before; a dry run ends
/// nothing) while an engineer's box in use keeps running.
#[test]
fn aws_previews_are_tagged_named_in_route53_and_ended_by_reap_when_expired() {
    use workstation_tests::moto::block_on;
    let env = TestEnv::aws();
    let moto = env.moto.as_ref().unwrap();
    let (ec2, route53) = (moto.client(), moto.route53_client());
    let zone = block_on(route53.create_hosted_zone().name("dev.test").caller_reference("preview-test").send()).unwrap();
    let zone_id = zone.hosted_zone().unwrap().id().trim_start_matches("/hostedzone/").to_owned();
    let records = || -> Vec<(String, String)> {
        let out = block_on(route53.list_resource_record_sets().hosted_zone_id(&zone_id).send()).unwrap();
        out.resource_record_sets()
            .iter()
            .filter(|r| r.r#type().as_str() == "A")
            .map(|r| (r.name().trim_end_matches('.').to_owned(), r.resource_records()[0].value().to_owned()))
            .collect()
    };
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("index.html"), "preview\n");
    let c1 = commit(&repo, &["."], "one");
    let repo_arg = repo.to_str().unwrap();

    let up = |pr: &str, ttl: &str, more: &[&str]| {
        env.json(&[&["preview", "up", "--pr", pr, "--ref", "main", "--repo", repo_arg, "--ttl", ttl, "--zone-id", &zone_id], more].concat())
    };
    // Five expires a second after its `up` began, six in five hours. Six
    // runs as CI does: as its pull request's session of the preview role.
    let five = up("5", "1s", &[]);
    let role = "arn:aws:iam::123456789012:role/workstation-preview";
    let six = up("6", "5h", &["--role", role]);
    let sessions = workstation_tests::run_ok(std::process::Command::new("curl").args(["-sf", &format!("{}/moto-api/data.json", moto.url)]));
    let sessions: serde_json::Value = serde_json::from_str(&sessions).unwrap();
    let assumed: Vec<(&str, &str)> =
        sessions["sts"]["AssumedRole"].as_array().unwrap().iter().map(|r| (r["role_arn"].as_str().unwrap(), r["session_name"].as_str().unwrap())).collect();
    assert_eq!(assumed, [(role, "preview-pr-6")], "six's run worked as its own session, five's as itself");
    // A third preview is one more than --max allows: refused before a launch.
    let err = env.fails(&["preview", "up", "--pr", "7", "--ref", "main", "--repo", repo_arg, "--max", "2"]);
    assert!(err.contains("2 previews exist already") && err.contains("preview down"), "{err}");
    assert!(env.fails(&["preview", "down", "7", "--role", "workstation-preview"]).contains("expected a role ARN"));
    assert_eq!((five["healthy"].as_bool(), five["dns"].as_bool()), (Some(true), Some(true)), "{five}");
    let id = five["box"]["id"].as_str().unwrap().to_owned();
    let six_id = six["box"]["id"].as_str().unwrap().to_owned();
    let tags = block_on(ec2.describe_instances().instance_ids(&six_id).send()).unwrap().reservations()[0].instances()[0].tags().to_vec();
    let tag = |k: &str| tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
    assert_eq!(tag("workstation:owner").as_deref(), Some("tester"));
    assert_eq!(tag("workstation:name").as_deref(), Some("pr-6"));
    assert_eq!(tag("workstation:preview").as_deref(), Some("6"));
    assert_eq!(tag("workstation:ref").as_deref(), Some(c1.as_str()));
    let expires = chrono::DateTime::parse_from_rfc3339(&tag("workstation:expires").unwrap()).unwrap();
    let left = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((295..=300).contains(&left), "expires in {left} min");
    let (five_ip, six_ip) = (five["box"]["address"].as_str().unwrap(), six["box"]["address"].as_str().unwrap());
    let want = vec![("api.pr-5.dev.test".to_owned(), five_ip.to_owned()), ("api.pr-6.dev.test".to_owned(), six_ip.to_owned())];
    assert_eq!(records(), want);

    // An engineer's box beside the previews; it and six are in use.
    let engineer = env.json(&["create", "--name", "dev"]);
    let engineer_id = engineer["box"]["id"].as_str().unwrap().to_owned();
    let state = |id: &str| {
        let out = block_on(ec2.describe_instances().instance_ids(id).send()).unwrap();
        out.reservations()[0].instances()[0].state().and_then(|s| s.name()).map(|n| n.as_str().to_owned()).unwrap()
    };
    let at = |hours: i64| (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Active shortly before the runs below decide (as of six hours on).
    let active = (chrono::Utc::now() + chrono::Duration::minutes(6 * 60 - 10)).to_rfc3339();
    block_on(
        ec2.create_tags()
            .resources(&engineer_id)
            .resources(&six_id)
            .tags(aws_sdk_ec2::types::Tag::builder().key("workstation:last-active").value(active).build())
            .send(),
    )
    .unwrap();

    // Only the preview owner's previews expire (the reaper's IAM allows no other).
    let theirs = env.json(&["reap"]);
    assert!(theirs["report"]["expired"].as_array().unwrap().is_empty(), "{theirs}");
    let reap = |args: &[&str]| env.json(&[&["reap", "--preview-owner", "tester"], args].concat());
    let dry = reap(&["--dry-run", "--at", &at(6)]);
    let mut planned: Vec<&str> = dry["report"]["expired"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    planned.sort();
    let mut both = vec![id.as_str(), six_id.as_str()];
    both.sort();
    assert_eq!(planned, both, "a dry run plans as of --at: {dry}");
    assert_eq!((state(&id), state(&six_id)), ("running".into(), "running".into()), "a dry run terminates nothing");
    // A run that acts ends only what has expired by now, whatever --at says.
    let done = reap(&["--at", &at(6)]);
    assert_eq!(done["report"]["terminated"], serde_json::json!([id]), "{done}");
    assert!(matches!(state(&id).as_str(), "shutting-down" | "terminated"), "{}", state(&id));
    assert_eq!(state(&six_id), "running", "six has not expired yet: {done}");
    assert_eq!(state(&engineer_id), "running", "an engineer's box in use is left alone");

    // down removes the records first (read back from the zone), then the box.
    env.ok(&["preview", "down", "6", "--zone-id", &zone_id]);
    assert_eq!(records(), want[..1], "down removes its preview's records only");
    assert!(matches!(state(&six_id).as_str(), "shutting-down" | "terminated"));
    // Five was reaped: down still removes its records.
    let gone = env.json(&["preview", "down", "5", "--zone-id", &zone_id]);
    assert_eq!((gone["box"].is_null(), gone["records"].clone()), (true, serde_json::json!(["api.pr-5.dev.test"])), "{gone}");
    assert!(records().is_empty());
    assert!(env.fails(&["preview", "down", "5", "--zone-id", &zone_id]).contains("no preview #5"));
}

/// Each pull request's run writes its own key, from CI's secret seed: the
/// same for every run of one pull request, another for the next, never
/// over a key that is there already, and never without the seed.
#[test]
fn preview_key_writes_each_pull_requests_own_key() {
    let env = TestEnv::aws_api_only();
    let seed = "tYhW3n0bq4rW3d5m8k2ZpQx7vA1sL9eC0fG6hJ4iK2oM";
    let key = |pr: &str, path: &Path, seed: Option<&str>| {
        let mut cmd = env.cmd(&["preview", "key", "--pr", pr, "--identity", path.to_str().unwrap(), "-o", "json"]);
        match seed {
            Some(s) => cmd.env("WORKSTATION_PREVIEW_KEY_SEED", s),
            None => cmd.env_remove("WORKSTATION_PREVIEW_KEY_SEED"),
        };
        cmd.output().unwrap()
    };
    let seven = env.root.path().join("keys/pr-7");
    let first = key("7", &seven, Some(seed));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&key("7", &seven, Some(seed)).stdout).unwrap();
    assert_eq!(first["fingerprint"], again["fingerprint"], "every run of #7 gets #7's key");
    assert!(!String::from_utf8_lossy(&key("7", &seven, Some(seed)).stdout).contains("PRIVATE"), "the key is never printed");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&seven).unwrap().permissions().mode() & 0o777, 0o600);
    let public = read(env.root.path().join("keys/pr-7.pub"));
    // ssh-keygen agrees with the fingerprint we report.
    let fp = run_ok(Command::new("ssh-keygen").args(["-l", "-E", "sha256", "-f"]).arg(env.root.path().join("keys/pr-7.pub")));
    assert!(fp.contains(first["fingerprint"].as_str().unwrap()), "{fp} vs {first}");
    assert!(public.starts_with("ssh-ed25519 "), "{public}");

    let five = env.root.path().join("keys/pr-5");
    let other: serde_json::Value = serde_json::from_slice(&key("5", &five, Some(seed)).stdout).unwrap();
    assert_ne!(other["fingerprint"], first["fingerprint"], "#5 has a key of its own");
    let occupied = key("5", &seven, Some(seed));
    assert!(!occupied.status.success() && String::from_utf8_lossy(&occupied.stderr).contains("holds another key"));
    let unseeded = key("9", &env.root.path().join("keys/pr-9"), None);
    assert!(String::from_utf8_lossy(&unseeded.stderr).contains("WORKSTATION_PREVIEW_KEY_SEED is not set"));
    let short = key("9", &env.root.path().join("keys/pr-9"), Some("short"));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32"));
    assert!(!env.root.path().join("keys/pr-9").exists(), "nothing written without a good seed");
}

/// A pull request's `workstation.toml` that is a symlink (to the runner's
/// environment, its keys) is refused before anything reads it: its text
/// would otherwise be quoted in a parse error in the public log.
#[test]
fn a_manifest_that_leads_outside_the_tree_is_not_read() {
    let env = TestEnv::aws_api_only();
    let secret = env.root.path().join("runner-secret");
    write(&secret, "AWS_SECRET_ACCESS_KEY=do-not-print-me\n");
    let repo = env.root.path().join("pr");
    init(&repo);
    std::os::unix::fs::symlink(&secret, repo.join("workstation.toml")).unwrap();
    commit(&repo, &["."], "a manifest that is a link");
    let manifest = repo.join("workstation.toml");
    let out = env.run(&["preview", "up", "--pr", "3", "--ref", "main", "--repo", repo.to_str().unwrap(), "--manifest", manifest.to_str().unwrap()]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("is a symlink, or leads outside the repository"), "{said}");
    assert!(!said.contains("do-not-print-me"), "{said}");
}
