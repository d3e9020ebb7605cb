//! End-to-end: a box that lives for months. Its data volume outlives
//! `destroy` and is reattached by `create`; `upgrade` moves it onto a new
//! root (local: a fresh root; moto: EC2's root volume replacement task,
//! which the test shim answers and the fleet carries out) with home, `src/`
//! and the stores' data intact, the new host key pinned from the box's tag,
//! and a failure at each step leaving it on one image with its data.

use workstation_tests::moto::block_on;
use workstation_tests::shim::Shim;
use workstation_tests::{write_csv_snapshot, write_resp_snapshot, TestEnv};

fn ssh(env: &TestEnv, script: &str) -> String {
    env.ok(&["ssh", "dev", "--", script]).trim().to_string()
}

fn pinned(env: &TestEnv) -> String {
    std::fs::read_to_string(env.state_dir().join("known_hosts")).unwrap_or_default()
}

/// The work an engineer leaves on a box: a file in home and in `src/`.
const WRITE_WORK: &str = "echo notes > ~/notes.txt && mkdir -p \"$WORKSTATION_BOX_ROOT/src/app\" && echo wip > \"$WORKSTATION_BOX_ROOT/src/app/wip.txt\"";
const READ_WORK: &str = "cat ~/notes.txt \"$WORKSTATION_BOX_ROOT/src/app/wip.txt\"";

#[test]
fn local_upgrade_keeps_home_src_and_stores_and_destroy_keeps_the_data() {
    let env = TestEnv::local();
    let seeds = env.root.path().join("seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    write_resp_snapshot(&seeds.join("cache.resp"), 1000, "v1");
    write_csv_snapshot(&seeds.join("main"), 100, 2);
    env.write_manifest(
        "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\ndata_gib = 20\nimage_id = \"ami-0123456789abcdef0\"\n\
         [stores.cache]\nkind = \"redis\"\nseed = \"seeds/cache.resp\"\n\
         [stores.main]\nkind = \"postgres\"\ndatabase = \"app\"\nseed = \"seeds/main\"\n\
         [services.api]\ncommand = \"python3 -m http.server 8080\"\nports = [8080]\n",
    );
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    let volume = created["box"]["data_volume"].as_str().expect("a data volume").to_string();

    ssh(&env, WRITE_WORK);
    ssh(&env, "redis-cli -p 6379 set mine kept");
    ssh(&env, "psql -X -At -h 127.0.0.1 -U postgres -d app -c \"INSERT INTO users VALUES (9999, 'mine@example.test')\"");
    let before = pinned(&env);

    // Data that is not on the data volume (an old image, a failed mount)
    // is never put at risk: the root that holds it is not replaced.
    ssh(&env, "mv \"$WORKSTATION_BOX_ROOT/.data-volume\" \"$WORKSTATION_BOX_ROOT/.data-volume.away\"");
    let err = env.fails(&["upgrade", "dev"]);
    assert!(err.contains("its data is not on it") && err.contains("Nothing was changed"), "{err}");
    assert_eq!(pinned(&env), before);
    ssh(&env, "mv \"$WORKSTATION_BOX_ROOT/.data-volume.away\" \"$WORKSTATION_BOX_ROOT/.data-volume\"");

    let upgraded = env.json(&["upgrade", "dev"]);
    assert_eq!((upgraded["root"]["replaced"].as_bool(), upgraded["up"]["healthy"].as_bool()), (Some(true), Some(true)), "{upgraded:#}");
    assert_eq!(upgraded["data_volume"], volume.as_str());
    // Nothing reseeded: the markers are on the data.
    let outcomes: Vec<&str> = upgraded["up"]["seeds"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["already-loaded", "already-loaded"], "{upgraded:#}");
    // A new root, a new host key, pinned without `pin --replace`.
    assert_ne!(upgraded["host_key_fingerprint"], created["host_key_fingerprint"]);
    assert_ne!(pinned(&env), before);
    assert_eq!(ssh(&env, READ_WORK), "notes\nwip");
    assert_eq!(ssh(&env, "redis-cli -p 6379 get mine"), "kept");
    assert_eq!(ssh(&env, "psql -X -At -h 127.0.0.1 -U postgres -d app -c \"SELECT email FROM users WHERE id = 9999\""), "mine@example.test");
    let services = env.json(&["services", "--box", "dev"]);
    assert!(services.as_array().unwrap().iter().all(|p| p["healthy"] != false), "{services:#}");

    // destroy keeps the data by default; create reattaches it.
    let out = env.run(&["destroy", "dev", "--yes"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("data volume {volume} kept")), "{}", String::from_utf8_lossy(&out.stderr));
    let kept = env.json(&["list", "--volumes"]);
    assert_eq!((kept[0]["id"].as_str(), kept[0]["attached_to"].is_null(), kept[0]["size_gib"].as_u64()), (Some(volume.as_str()), true, Some(20)), "{kept:#}");
    let text = env.ok(&["list", "--volumes"]);
    assert!(text.contains("$1.60") && text.contains("(kept)"), "{text}");
    let again = env.json(&["create", "dev"]);
    assert_eq!(again["reattached"], volume.as_str(), "{again:#}");
    assert_eq!(ssh(&env, READ_WORK), "notes\nwip");
    assert_eq!(ssh(&env, "redis-cli -p 6379 get mine"), "kept");

    // --purge deletes it with the box; `--data new` would have left it.
    env.ok(&["destroy", "dev", "--purge", "--yes"]);
    assert_eq!(env.json(&["list", "--volumes"]), serde_json::json!([]));
    let err = env.fails(&["destroy", "dev", "--purge", "--yes"]);
    assert!(err.contains("no kept data volume"), "{err}");
}

/// The data volume EC2 holds at the box's /dev/sdf, and the image the box
/// records, as moto has them.
fn data_and_image(env: &TestEnv, id: &str) -> (Option<String>, Option<String>) {
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let out = client.describe_instances().instance_ids(id).send().await.unwrap();
        let inst = &out.reservations()[0].instances()[0];
        let data = inst.block_device_mappings().iter().find(|b| b.device_name() == Some("/dev/sdf")).and_then(|b| b.ebs()?.volume_id()).map(String::from);
        let image = inst.tags().iter().find(|t| t.key() == Some("workstation:image-id")).and_then(|t| t.value()).map(String::from);
        (data, image)
    })
}

/// Registers another image of the test's line, newer than the first.
fn publish_newer_image(env: &TestEnv) -> String {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let mapping = aws_sdk_ec2::types::BlockDeviceMapping::builder()
            .device_name("/dev/xvda")
            .ebs(aws_sdk_ec2::types::EbsBlockDevice::builder().snapshot_id("snap-12345678").volume_size(8).build())
            .build();
        let out = client.register_image().name("workstation-nixos-test").root_device_name("/dev/xvda").block_device_mappings(mapping).send().await.unwrap();
        out.image_id().unwrap().to_string()
    })
}

#[test]
fn aws_upgrade_replaces_the_root_keeps_the_data_and_survives_a_failure_at_each_step() {
    let mut env = TestEnv::aws();
    let shim = Shim::in_front_of(&mut env, 0);
    env.fleet.as_ref().unwrap().follow_root_tasks(&shim.url);

    let created = env.json(&["create", "dev"]);
    let id = created["box"]["id"].as_str().unwrap().to_string();
    let (volume, old_image) = data_and_image(&env, &id);
    let (volume, old_image) = (volume.expect("a data volume at /dev/sdf"), old_image.expect("the image recorded at launch"));
    assert_eq!(created["box"]["data_volume"], volume.as_str());
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let v = client.describe_volumes().volume_ids(&volume).send().await.unwrap();
        let v = &v.volumes()[0];
        assert_eq!((v.size(), v.encrypted(), v.volume_type().map(|t| t.as_str())), (Some(50), Some(true), Some("gp3")));
        let tag = |k: &str| v.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(String::from);
        assert_eq!((tag("workstation:owner").as_deref(), tag("workstation:name").as_deref()), (Some("tester"), Some("dev")));
    });
    ssh(&env, WRITE_WORK);

    // A newer image: drift in plain sight.
    let new_image = publish_newer_image(&env);
    let status = env.json(&["status", "dev"]);
    assert_eq!((status["drift"]["newer"].as_u64(), status["drift"]["newest"].as_str()), (Some(1), Some(new_image.as_str())), "{status:#}");
    let behind = env.json(&["upgrade", "--all", "--dry-run"]);
    assert_eq!(behind.as_array().map(Vec::len), Some(1), "{behind:#}");
    let text = env.ok(&["status", "dev"]);
    assert!(text.contains("1 newer image") && text.contains("`workstation upgrade dev`"), "{text}");

    let on_old_image_with_data = |after: &str| {
        assert_eq!(data_and_image(&env, &id), (Some(volume.clone()), Some(old_image.clone())), "after {after}");
        assert_eq!(ssh(&env, READ_WORK), "notes\nwip", "after {after}");
    };
    // 1. EC2 refuses the replacement.
    shim.fail("CreateReplaceRootVolumeTask", "IncorrectInstanceState", 1);
    let err = env.fails(&["upgrade", "dev"]);
    assert!(err.contains("IncorrectInstanceState") || err.contains("CreateReplaceRootVolumeTask"), "{err}");
    on_old_image_with_data("a refused task");
    // 2. The task fails: EC2 puts the old root back.
    shim.fail_next_root_task();
    let err = env.fails(&["upgrade", "dev"]);
    assert!(err.contains("failed; EC2 put the old root back") && err.contains("with its data volume"), "{err}");
    on_old_image_with_data("a failed task");
    // 3. The new root is in, but recording it fails: the next run finishes
    //    the upgrade without another replacement.
    let pin_before = pinned(&env);
    shim.fail("CreateTags", "UnauthorizedOperation", 1);
    let err = env.fails(&["upgrade", "dev"]);
    assert!(err.contains("CreateTags"), "{err}");
    assert_eq!(data_and_image(&env, &id).0, Some(volume.clone()));
    let upgraded = env.json(&["upgrade", "dev"]);
    assert_eq!(upgraded["root"]["to"], new_image.as_str(), "{upgraded:#}");
    assert_eq!(data_and_image(&env, &id), (Some(volume.clone()), Some(new_image.clone())));
    let states: Vec<String> = shim.root_tasks().iter().map(|t| t["taskState"].as_str().unwrap().to_string()).collect();
    assert_eq!(states, ["failed", "succeeded"], "one replacement per attempt that reached EC2");
    // The new root's key, pinned from the box's tag, and the data.
    assert_ne!(pinned(&env), pin_before);
    assert_eq!(upgraded["box"]["host_key"].as_str().map(|k| pin_before.contains(k.split_whitespace().nth(1).unwrap())), Some(false));
    assert_eq!(ssh(&env, READ_WORK), "notes\nwip");
    assert!(upgraded["up"]["healthy"].as_bool().unwrap(), "{upgraded:#}");

    // Nothing newer now: no drift, and upgrade is a no-op.
    assert!(env.json(&["status", "dev"])["drift"].is_null());
    let again = env.json(&["upgrade", "dev"]);
    assert_eq!(again["root"]["replaced"], false);
    assert_eq!(shim.root_tasks().len(), 2);
    env.fleet.as_ref().unwrap().assert_healthy();

    // destroy keeps the volume; a create of the name reattaches it.
    env.ok(&["destroy", "dev", "--yes"]);
    let kept = env.json(&["list", "--volumes"]);
    assert_eq!((kept[0]["id"].as_str(), kept[0]["attached_to"].is_null()), (Some(volume.as_str()), true), "{kept:#}");
    // Not where the volume cannot follow: a subnet in another zone is
    // refused before anything is launched.
    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    let elsewhere = subnet_in_another_zone(&env, &manifest);
    env.write_manifest(&manifest.replace(&format!("subnet = \"{}\"", elsewhere.0), &format!("subnet = \"{}\"", elsewhere.1)));
    let refused = env.fails(&["create", "dev"]);
    assert!(refused.contains(&volume) && refused.contains("set box.subnet to a subnet in") && refused.contains("--data new"), "{refused}");
    assert_eq!(env.json(&["list"]), serde_json::json!([]), "nothing launched");
    env.write_manifest(&manifest);
    let recreated = env.json(&["create", "dev"]);
    assert_eq!(recreated["reattached"], volume.as_str(), "{recreated:#}");
    assert_eq!(ssh(&env, READ_WORK), "notes\nwip");
    env.ok(&["destroy", "dev", "--purge", "--yes"]);
    assert_eq!(env.json(&["list", "--volumes"]), serde_json::json!([]));
}

/// (the manifest's subnet, a new subnet of its VPC in another zone).
fn subnet_in_another_zone(env: &TestEnv, manifest: &str) -> (String, String) {
    let ours = manifest.split("subnet = \"").nth(1).and_then(|r| r.split('"').next()).expect("the manifest names a subnet").to_owned();
    let client = env.moto.as_ref().unwrap().client();
    let described = block_on(client.describe_subnets().subnet_ids(&ours).send()).unwrap();
    let subnet = described.subnets().first().unwrap();
    let zone = if subnet.availability_zone() == Some("us-east-1a") { "us-east-1b" } else { "us-east-1a" };
    let made = block_on(client.create_subnet().vpc_id(subnet.vpc_id().unwrap()).cidr_block("10.78.250.0/24").availability_zone(zone).send()).unwrap();
    (ours, made.subnet().and_then(|s| s.subnet_id()).unwrap().to_owned())
}
