//! `workstation reap` against moto's EC2 API with thousands of instances.

use aws_sdk_ec2::types::{Filter, Tag};
use chrono::{Duration, SecondsFormat, Utc};
use workstation::manifest::IdlePolicy;
use workstation::provider::aws::AwsProvider;
use workstation::provider::AddressKind;
use workstation::provider::Provider;
use workstation_tests::moto::block_on;
use workstation_tests::TestEnv;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn set_tag(client: &aws_sdk_ec2::Client, ids: &[String], key: &str, value: &str) {
    block_on(async {
        for chunk in ids.chunks(500) {
            client.create_tags().set_resources(Some(chunk.to_vec())).tags(tag(key, value)).send().await.unwrap();
        }
    });
}

fn states(client: &aws_sdk_ec2::Client, state: &str) -> std::collections::BTreeSet<String> {
    block_on(async {
        let filter = Filter::builder().name("instance-state-name").values(state).build();
        let mut pages = client.describe_instances().filters(filter).into_paginator().send();
        let mut out = std::collections::BTreeSet::new();
        while let Some(page) = pages.next().await {
            for r in page.unwrap().reservations() {
                out.extend(r.instances().iter().filter_map(|i| i.instance_id().map(String::from)));
            }
        }
        out
    })
}

#[test]
fn reap_over_2000_instances_stops_exactly_the_idle_ones() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let ids = workstation_tests::moto::launch_fleet(&client, 2000);
    assert_eq!(ids.len(), 2000);
    // Decide three hours from now (moto launches "now"): with the default
    // 45m timeout, a box active ten minutes before that is in use; one whose
    // last activity is its launch is idle; a keep-alive past `at` holds one.
    let at = Utc::now() + Duration::hours(3);
    let rfc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (idle, rest) = ids.split_at(700);
    let (kept, active) = rest.split_at(100);
    set_tag(&client, active, "workstation:last-active", &rfc(at - Duration::minutes(10)));
    set_tag(&client, kept, "workstation:keep-until", &rfc(at + Duration::hours(1)));
    // Claims a box or an engineer could forge: "active in 2099" and "keep
    // until 2099" (beyond max_keep). Both are idle by their launch time.
    set_tag(&client, &idle[..50], "workstation:last-active", "2099-01-01T00:00:00Z");
    set_tag(&client, &idle[50..100], "workstation:keep-until", "2099-01-01T00:00:00Z");
    let at_arg = rfc(at);

    let plan = env.json(&["reap", "--dry-run", "--at", &at_arg]);
    assert_eq!(plan["report"]["plan"].as_array().unwrap().len(), 700, "dry run plans the idle ones");
    assert_eq!(states(&client, "stopped").len(), 0, "a dry run stops nothing");

    let done = env.json(&["reap", "--at", &at_arg]);
    let report = &done["report"];
    assert_eq!(report["examined"], 2000);
    assert_eq!(report["stopped"].as_array().unwrap().len(), 700, "{}", report["failed"]);
    assert!(report["failed"].as_array().unwrap().is_empty());
    let stopped = states(&client, "stopped");
    let expected: std::collections::BTreeSet<String> = idle.iter().cloned().collect();
    assert_eq!(stopped, expected, "exactly the idle instances are stopped");
    // Pages of up to 1000 (moto answers in one), one more call for the
    // previews, and batches of 100: the minimum, plus one tag call per batch.
    let calls = &done["api_calls"];
    assert!(calls["DescribeInstances"].as_u64().unwrap() <= 3, "{calls}");
    assert_eq!(calls["StopInstances"], 7, "{calls}");
    assert_eq!(calls["CreateTags"], 7, "{calls}");

    // Run again: nothing left to stop.
    let again = env.json(&["reap", "--at", &at_arg]);
    assert_eq!(again["report"]["examined"], 1300);
    assert!(again["report"]["stopped"].as_array().unwrap().is_empty());
}

#[test]
fn boxes_stopped_or_terminated_mid_reap_are_not_errors() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let ids = workstation_tests::moto::launch_fleet(&client, 30);
    let provider = AwsProvider::new(client.clone(), env.moto.as_ref().unwrap().sqs_client(), AddressKind::Private);
    let at = Utc::now() + Duration::hours(3);
    // The plan is made...
    let running = block_on(provider.running()).unwrap();
    let plan = workstation::idle::reap::plan(workstation::idle::reap::Policies::same(&IdlePolicy::default()), &running, at);
    assert_eq!(plan.len(), 30);
    // ...then someone terminates some and stops others before the stop.
    block_on(async {
        client.terminate_instances().set_instance_ids(Some(ids[..5].to_vec())).send().await.unwrap();
        client.stop_instances().set_instance_ids(Some(ids[5..10].to_vec())).send().await.unwrap();
    });
    let plan_ids: Vec<String> = plan.iter().map(|p| p.id.clone()).collect();
    let done = block_on(provider.stop_batch(&plan_ids, "test", false));
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(done.stopped.len() + done.gone.len(), 30);
    assert!(ids[..5].iter().all(|id| done.gone.contains(id) || done.stopped.contains(id)));
    assert_eq!(states(&client, "running").len(), 0);
    let tagged = block_on(provider.describe(&ids[20])).unwrap();
    assert_eq!(tagged.stopped_by.as_deref(), Some("test"));
}

/// The scheduled Lambda's request (terraform/reaper.tf): the policy comes
/// from the manifest text in the event, not from a file.
#[test]
fn the_scheduled_reaper_takes_its_policy_from_the_event() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let ids = workstation_tests::moto::launch_fleet(&client, 6);
    let provider = AwsProvider::new(client.clone(), env.moto.as_ref().unwrap().sqs_client(), AddressKind::Private);
    // 45 minutes after launch and reap's grace on top.
    let at = Utc::now() + Duration::minutes(45) + workstation::idle::reap::GRACE;
    let rfc = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    set_tag(&client, &ids[..2], "workstation:last-active", &rfc(at - Duration::minutes(5)));
    let manifest = workstation_tests::manifest_text("image_id = \"ami-12c6146b\"", "") + "\n[idle]\ntimeout = \"30m\"\n";
    let request = |manifest: &str, dry_run: bool| -> workstation::idle::reap::Request {
        serde_json::from_value(serde_json::json!({ "manifest": manifest, "dry_run": dry_run, "at": rfc(at) })).unwrap()
    };

    // Idle under this manifest's 30m (not under the default 45m + grace
    // if reap used its own file).
    let s3 = env.moto.as_ref().unwrap().s3_client();
    let report = block_on(workstation::idle::reap::handle(&provider, &s3, request(&manifest, false), 4)).unwrap();
    assert_eq!(report.stopped.len(), 4, "{report:?}");
    assert_eq!(states(&client, "running"), ids[..2].iter().cloned().collect());

    let bad = manifest.replace("timeout = \"30m\"", "timeout = \"soon\"");
    let err = block_on(workstation::idle::reap::handle(&provider, &s3, request(&bad, true), 4)).unwrap_err().to_string();
    assert!(err.contains("manifest") && err.contains("timeout"), "{err}");
    let unknown = serde_json::from_value::<workstation::idle::reap::Request>(serde_json::json!({ "manifest": "", "dryrun": true }));
    assert!(unknown.unwrap_err().to_string().contains("dryrun"));
}
