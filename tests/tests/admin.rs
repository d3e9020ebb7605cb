//! The platform's verbs against moto: `admin offboard` (dry run, stop and
//! mark, terminate and delete after the grace, nothing of anyone else's),
//! `manifest publish` read back by the scheduled reaper's request, and the
//! boxes-per-owner limit reported by reap.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use chrono::{Duration, SecondsFormat, Utc};
use workstation::provider::aws::AwsProvider;
use workstation::provider::AddressKind;
use workstation_tests::moto::block_on;
use workstation_tests::TestEnv;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// Boxes of `owner` named `names`, running.
fn launch(client: &aws_sdk_ec2::Client, owner: &str, names: &[&str]) -> Vec<String> {
    block_on(async {
        let mut ids = Vec::new();
        for name in names {
            let spec = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("workstation:owner", owner))
                .tags(tag("workstation:name", name))
                .build();
            let out = client.run_instances().image_id("ami-12c6146b").min_count(1).max_count(1).tag_specifications(spec).send().await.unwrap();
            ids.extend(out.instances().iter().filter_map(|i| i.instance_id().map(String::from)));
        }
        ids
    })
}

fn state(client: &aws_sdk_ec2::Client, id: &str) -> String {
    block_on(async {
        let out = client.describe_instances().instance_ids(id).send().await.unwrap();
        out.reservations()[0].instances()[0].state().unwrap().name().unwrap().as_str().to_string()
    })
}

fn key_pairs(client: &aws_sdk_ec2::Client) -> Vec<String> {
    block_on(async { client.describe_key_pairs().send().await.unwrap().key_pairs().iter().filter_map(|k| k.key_name().map(String::from)).collect() })
}

fn volumes(client: &aws_sdk_ec2::Client, owner: &str) -> Vec<String> {
    block_on(async {
        let filter = Filter::builder().name("tag:workstation:owner").values(owner).build();
        client.describe_volumes().filters(filter).send().await.unwrap().volumes().iter().filter_map(|v| v.volume_id().map(String::from)).collect()
    })
}

#[test]
fn offboarding_stops_then_after_the_grace_removes_only_the_leavers_things() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let leaver = launch(&client, "leaver", &["dev", "api"]);
    let stays = launch(&client, "stays", &["dev"]);
    block_on(async {
        let key = env.public_key();
        for (name, owner) in [("workstation.leaver.ab12cd34ef56", "leaver"), ("workstation.stays.ab12cd34ef56", "stays")] {
            let spec = TagSpecification::builder().resource_type(ResourceType::KeyPair).tags(tag("workstation:owner", owner)).build();
            client
                .import_key_pair()
                .key_name(name)
                .public_key_material(aws_sdk_ec2::primitives::Blob::new(key.as_bytes()))
                .tag_specifications(spec)
                .send()
                .await
                .unwrap();
        }
        for owner in ["leaver", "stays"] {
            let spec = TagSpecification::builder().resource_type(ResourceType::Volume).tags(tag("workstation:owner", owner)).build();
            client.create_volume().availability_zone("us-east-1a").size(50).tag_specifications(spec).send().await.unwrap();
        }
    });
    let kept = volumes(&client, "leaver");
    assert_eq!(kept.len(), 1);

    // A dry run lists every step and changes nothing.
    let plan = env.json(&["admin", "offboard", "leaver", "--dry-run"]);
    let steps: Vec<String> = plan["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap().to_string()).collect();
    assert_eq!(steps.iter().filter(|s| *s == "stop").count(), 2, "{plan}");
    assert!(steps.contains(&"delete_key_pair".into()) && steps.contains(&"keep_volume".into()), "{plan}");
    assert!(plan["steps"].as_array().unwrap().iter().all(|s| s["ok"].is_null()), "planned, not done: {plan}");
    assert!(leaver.iter().all(|id| state(&client, id) == "running"), "a dry run stops nothing");
    assert_eq!(key_pairs(&client).len(), 2);

    // The first run: stopped and marked, key pair gone, data kept.
    let first = env.json(&["admin", "offboard", "leaver", "--grace", "14d"]);
    assert!(first["steps"].as_array().unwrap().iter().all(|s| s["ok"] != false), "{first}");
    assert!(leaver.iter().all(|id| state(&client, id) == "stopped"), "{first}");
    assert_eq!(key_pairs(&client), ["workstation.stays.ab12cd34ef56"]);
    assert_eq!(volumes(&client, "leaver"), kept, "data is kept through the grace");

    // Again within the grace: nothing more happens (it converges).
    let again = env.json(&["admin", "offboard", "leaver", "--grace", "14d"]);
    let kinds: Vec<&str> = again["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(kinds.iter().all(|k| *k == "keep" || *k == "keep_volume"), "{again}");

    // A dry run as of after the grace shows what will go; a real run may
    // not be back- or forward-dated.
    let later = (Utc::now() + Duration::days(15)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let preview = env.json(&["admin", "offboard", "leaver", "--grace", "14d", "--dry-run", "--at", &later]);
    assert_eq!(preview["steps"].as_array().unwrap().iter().filter(|s| s["step"] == "terminate").count(), 2, "{preview}");
    let err = env.fails(&["admin", "offboard", "leaver", "--at", &later]);
    assert!(err.contains("--dry-run"), "{err}");

    // After the grace (the marks moved 15 days back, as time would):
    // terminated, the kept volume deleted.
    let marked = (Utc::now() - Duration::days(15)).to_rfc3339_opts(SecondsFormat::Secs, true);
    block_on(async {
        let ids: Vec<String> = leaver.iter().chain(&kept).cloned().collect();
        client.create_tags().set_resources(Some(ids)).tags(tag("workstation:offboarded-at", &marked)).send().await.unwrap();
    });
    let last = env.json(&["admin", "offboard", "leaver", "--grace", "14d"]);
    assert!(last["steps"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{last}");
    assert!(leaver.iter().all(|id| state(&client, id) == "terminated"), "{last}");
    assert!(volumes(&client, "leaver").is_empty());

    // Nothing of anyone else's moved.
    assert_eq!(state(&client, &stays[0]), "running");
    assert_eq!(volumes(&client, "stays").len(), 1);
    let text = env.ok(&["admin", "offboard", "leaver"]);
    assert!(text.contains("nothing left"), "{text}");
}

/// The reaper reads the manifest the platform published (not a copy baked
/// into terraform), and reports owners over box.max_boxes_per_owner.
#[test]
fn the_reaper_reads_the_published_manifest_and_reports_owners_over_the_limit() {
    let env = TestEnv::aws_api_only();
    let moto = env.moto.as_ref().unwrap();
    let (client, s3) = (moto.client(), moto.s3_client());
    block_on(async { s3.create_bucket().bucket("seeds").send().await.unwrap() });
    launch(&client, "many", &["a", "b", "c"]);
    launch(&client, "few", &["a"]);
    let manifest = workstation_tests::manifest_text(
        "image_id = \"ami-12c6146b\"\nmax_boxes_per_owner = 2\ndeployed_manifest = \"s3://seeds/manifest/workstation.toml\"",
        "",
    ) + "\n[idle]\ntimeout = \"30m\"\n";
    env.write_manifest(&manifest);
    let published = env.json(&["manifest", "publish"]);
    assert_eq!(published["published"], "s3://seeds/manifest/workstation.toml");

    let provider = AwsProvider::new(client.clone(), env.moto.as_ref().unwrap().sqs_client(), AddressKind::Private);
    let request: workstation::idle::reap::Request =
        serde_json::from_value(serde_json::json!({ "manifest_url": "s3://seeds/manifest/workstation.toml", "dry_run": true })).unwrap();
    let report = block_on(workstation::idle::reap::handle(&provider, &s3, request, 4)).unwrap();
    assert_eq!(report.over_limit.len(), 1, "{report:?}");
    assert_eq!((report.over_limit[0].owner.as_str(), report.over_limit[0].boxes, report.over_limit[0].max), ("many", 3, 2));
    let neither: workstation::idle::reap::Request = serde_json::from_value(serde_json::json!({ "dry_run": true })).unwrap();
    let err = block_on(workstation::idle::reap::handle(&provider, &s3, neither, 4)).unwrap_err().to_string();
    assert!(err.contains("manifest_url"), "{err}");

    // create refuses a third box of "many" before launching anything, and
    // still finishes one of the boxes it has.
    let out = env.cmd(&["create", "d"]).env("WORKSTATION_OWNER", "many").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("many already has 3 boxes (a, b, c) and box.max_boxes_per_owner allows 2"), "{err}");

    // The CLI's reap says who is over.
    let text = env.ok(&["reap", "--dry-run"]);
    assert!(text.contains("many has 3 boxes, over box.max_boxes_per_owner = 2"), "{text}");
}
