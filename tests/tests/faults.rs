//! The real cloud's failures, through the `workstation` binary, made by the
//! test shim in front of moto (tests/support/throttle_shim.py, which cites
//! AWS for each behaviour): EC2's eventual consistency after a launch, and
//! a RunInstances whose answer is lost after it took effect.

use workstation_tests::moto::block_on;
use workstation_tests::shim::Shim;
use workstation_tests::TestEnv;

/// Live instances of tester's box `name`, asked of moto itself.
fn instances(env: &TestEnv, name: &str) -> Vec<String> {
    use aws_sdk_ec2::types::Filter;
    let client = env.moto.as_ref().unwrap().client();
    let filters = vec![
        Filter::builder().name("tag:workstation:owner").values("tester").build(),
        Filter::builder().name("tag:workstation:name").values(name).build(),
        Filter::builder().name("instance-state-name").values("pending").values("running").build(),
    ];
    let out = block_on(client.describe_instances().set_filters(Some(filters)).send()).unwrap();
    out.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.instance_id().map(String::from)).collect()
}

#[test]
fn create_gives_one_pinned_box_when_ec2_lags_and_loses_the_launch_answer() {
    let mut env = TestEnv::aws();
    let shim = Shim::in_front_of(&mut env, 0);
    // Everything made (the key pair, the instance and its volumes, tags)
    // not visible for 5 s after it was made, and the first launch's
    // answer lost after it took effect.
    shim.invisible_after_create(5.0);
    shim.lose("RunInstances", 1);
    let first = env.run(&["create", "dev", "--output", "json"]);
    if !first.status.success() {
        // The SDK did not retry a dropped connection: the engineer runs
        // create again, which must find the launch, not make a second.
        eprintln!("first create: {}", String::from_utf8_lossy(&first.stderr));
        let again = env.json(&["create", "dev"]);
        assert_eq!(again["up"]["healthy"], true, "{again:#}");
    } else {
        let created: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
        assert_eq!(created["up"]["healthy"], true, "{created:#}");
    }
    assert_eq!(instances(&env, "dev").len(), 1, "one instance for one box");
    let launches = shim.requests("RunInstances");
    assert!(launches.len() >= 2, "the lost launch was asked again: {launches:?}");
    assert!(launches.iter().all(|r| r["ClientToken"] == launches[0]["ClientToken"]), "with the same ClientToken: {launches:?}");
    // Pinned: plain SSH to the box works with the pinned key.
    assert_eq!(env.ok(&["ssh", "dev", "--", "echo", "pinned"]).trim(), "pinned");
}

/// EC2 out of an instance type in a zone (InsufficientInstanceCapacity):
/// `create` says so and what to do, and launched nothing; `start` of a
/// stopped box says its volumes keep it in its zone. Run again once the
/// capacity is back, each converges.
#[test]
fn no_capacity_says_what_to_do_and_leaves_nothing_behind() {
    let mut env = TestEnv::aws();
    let shim = Shim::in_front_of(&mut env, 0);
    shim.fail("RunInstances", "InsufficientInstanceCapacity", 1);
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("EC2 has no t3.medium capacity in the zone of subnet subnet-") && err.contains("nothing was launched"), "{err}");
    assert!(err.contains("box.subnets") && err.contains("box.fallback_instance_types"), "{err}");
    assert!(instances(&env, "dev").is_empty(), "nothing launched");
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");

    env.ok(&["stop", "dev"]);
    shim.fail("StartInstances", "InsufficientInstanceCapacity", 1);
    let err = env.fails(&["start", "dev"]);
    assert!(err.contains("no t3.medium capacity in the Availability Zone of box") && err.contains("can start only there"), "{err}");
    let started = env.json(&["start", "dev"]);
    assert_eq!(started["up"]["healthy"], true, "{started:#}");
    assert_eq!(instances(&env, "dev").len(), 1);
}

/// A fallback type that could not boot the image (another architecture)
/// is refused before anything is launched, naming the field: otherwise it
/// would fail only once reached, in the middle of a capacity shortage.
#[test]
fn a_fallback_type_that_cannot_boot_the_image_is_refused_before_launch() {
    let env = TestEnv::aws();
    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    env.write_manifest(&manifest.replace("[box]\n", "[box]\nfallback_instance_types = [\"t4g.medium\"]\n"));
    let err = env.fails(&["create", "dev"]);
    assert!(
        err.contains("box.fallback_instance_types t4g.medium: it runs arm64 and box.instance_type, which boots the image, runs x86_64; choose another type"),
        "{err}"
    );
    assert!(instances(&env, "dev").is_empty(), "nothing launched");
}

/// This env's addresses as two subnets, one per zone (the first's zone,
/// the second's): the box is materialised wherever EC2 puts it.
fn two_zones(env: &TestEnv) -> (String, String) {
    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    let ours = manifest.split("subnet = \"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let described = client.describe_subnets().subnet_ids(&ours).send().await.unwrap();
        let vpc = described.subnets()[0].vpc_id().unwrap().to_owned();
        client.delete_subnet().subnet_id(&ours).send().await.unwrap();
        let mut ids = Vec::new();
        for (half, zone) in env.subnet.subnets(25).unwrap().zip(["us-east-1a", "us-east-1b"]) {
            let made = client.create_subnet().vpc_id(&vpc).cidr_block(half.to_string()).availability_zone(zone).send().await.unwrap();
            ids.push(made.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned());
        }
        let text =
            manifest.replace(&format!("subnet = \"{ours}\""), &format!("subnets = [\"{}\", \"{}\"]\nfallback_instance_types = [\"t3.large\"]", ids[0], ids[1]));
        env.write_manifest(&text);
        (ids[0].clone(), ids[1].clone())
    })
}

/// Where and as what tester's box dev runs (subnet, type), asked of moto.
fn placed(env: &TestEnv) -> (String, String) {
    let client = env.moto.as_ref().unwrap().client();
    let id = instances(env, "dev").pop().expect("a box");
    let out = block_on(client.describe_instances().instance_ids(id).send()).unwrap();
    let i = &out.reservations()[0].instances()[0];
    (i.subnet_id().unwrap_or_default().to_owned(), i.instance_type().map(|t| t.as_str().to_owned()).unwrap_or_default())
}

/// `box.subnets` (one per zone) and `box.fallback_instance_types`: with no
/// capacity in the first zone the box lands in the second; with none of
/// its type anywhere, as the fallback type; with nothing anywhere, create
/// says so and launches nothing; a type the first zone does not offer
/// (Unsupported) lands in the second too. EC2's 500 is not retried (the next
/// choice is the better retry), so each refusal costs one request.
#[test]
fn create_lands_in_the_next_zone_or_type_with_capacity() {
    let mut env = TestEnv::aws();
    let shim = Shim::in_front_of(&mut env, 0);
    let (first, second) = two_zones(&env);

    shim.no_capacity(&["us-east-1a"], &[]);
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    assert_eq!(placed(&env), (second.clone(), "t3.medium".to_owned()), "the second zone's subnet");
    assert_eq!(shim.stats()["actions"]["RunInstances"]["forwarded"], 2, "one refusal, not retried: {}", shim.stats());
    env.ok(&["destroy", "dev", "--purge", "--yes"]);

    shim.no_capacity(&[], &["t3.medium"]);
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    assert_eq!(placed(&env), (first, "t3.large".to_owned()), "the fallback type, in the first zone");
    env.ok(&["destroy", "dev", "--purge", "--yes"]);

    shim.no_capacity(&[], &["t3.medium", "t3.large"]);
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("EC2 has no t3.large capacity in the zone of subnet") && err.contains("nothing was launched"), "{err}");
    assert!(instances(&env, "dev").is_empty(), "nothing launched");

    // A type EC2 does not offer in the first zone (Unsupported): the next.
    shim.no_capacity(&[], &[]);
    shim.fail("RunInstances", "Unsupported", 1);
    let out = env.run(&["create", "dev", "-o", "json"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("EC2 does not offer t3.medium in the zone of subnet"), "{said}");
    assert_eq!(placed(&env), (second, "t3.medium".to_owned()), "the second zone's subnet");
}

/// The volumes tagged as tester's box `name`'s, asked of moto itself.
fn volumes(env: &TestEnv, name: &str) -> Vec<aws_sdk_ec2::types::Volume> {
    let client = env.moto.as_ref().unwrap().client();
    let named = aws_sdk_ec2::types::Filter::builder().name("tag:workstation:name").values(name).build();
    block_on(client.describe_volumes().filters(named).send()).unwrap().volumes().to_vec()
}

/// What tester's box dev holds in moto beside its one instance: the
/// instances, key pairs and volumes a clean run would not have.
fn left_behind(env: &TestEnv) -> usize {
    let client = env.moto.as_ref().unwrap().client();
    let live = instances(env, "dev");
    let loose = volumes(env, "dev").iter().filter(|v| !v.attachments().iter().any(|a| live.iter().any(|i| Some(i.as_str()) == a.instance_id()))).count();
    let pairs = block_on(client.describe_key_pairs().send()).unwrap();
    let keys = pairs.key_pairs().iter().filter(|k| k.key_name().is_some_and(|n| n.starts_with("workstation.tester."))).count();
    live.len().saturating_sub(1) + loose + keys.saturating_sub(1)
}

/// `create` on AWS killed (kill -9) or Ctrl-C'd anywhere while EC2 lags
/// (2 s for everything made), throttles DescribeInstances in bursts and
/// has no capacity in the first zone: the re-run gives one healthy box in
/// the second zone, with one key pair and only its own volumes; destroy
/// then leaves nothing.
#[test]
fn create_on_aws_interrupted_anywhere_under_ec2_faults_converges() {
    use workstation_tests::interrupt::{points, rerun, timed, Left, Points, Sweep};
    use workstation_tests::shim::Bucket;
    let mut env = TestEnv::aws();
    let shim = Shim::start(&env.moto.as_ref().unwrap().url.clone(), 0, &[Bucket { action: "DescribeInstances", capacity: 4.0, refill: 4.0 }]);
    env.set_endpoint(&shim.url);
    let (_, second) = two_zones(&env);
    shim.invisible_after_create(2.0);
    shim.no_capacity(&["us-east-1a"], &[]);
    let destroy = |env: &TestEnv| {
        env.ok(&["destroy", "dev", "--purge", "--yes"]);
        instances(env, "dev").len() + volumes(env, "dev").len()
    };
    assert_eq!(env.json(&["create", "dev"])["up"]["healthy"], true);
    assert_eq!(placed(&env).0, second, "no capacity in the first zone");
    assert_eq!(destroy(&env), 0);
    // The second create is the clean run (the first imported the key pair).
    let clean = timed(|| assert_eq!(env.json(&["create", "dev"])["up"]["healthy"], true));
    assert_eq!(destroy(&env), 0);
    let mut sweep = Sweep::new("create-aws");
    sweep.run(
        &env,
        &["create", "dev"],
        Points { clean, seed: 0xa75_5eed, n: points(8) },
        |_| {},
        || {
            let out = rerun(&env, &["create", "dev"])?;
            if out["up"]["healthy"] != true {
                return Err(format!("the re-run is not healthy: {out:#}"));
            }
            if placed(&env).0 != second {
                return Err("the box is not in the zone with capacity".into());
            }
            let leaked = left_behind(&env);
            Ok(Left { leaked: leaked + destroy(&env), lost: 0 })
        },
    );
    sweep.finish();
}
