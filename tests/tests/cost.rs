//! `workstation cost` against moto's Cost Explorer (its canned results,
//! set through moto's API) and the shim's Price List API: sums per owner,
//! box and month, the estimate from each box's hours ledger, what auto-stop
//! saved, kept volumes, the day's price cache, and a missing permission in
//! one line with its fix. And the ledger a start writes.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use chrono::Utc;
use workstation::provider::usage::{Month, Usage};
use workstation_tests::moto::{self, Moto};
use workstation_tests::shim::Shim;
use workstation_tests::TestEnv;

const T3_MEDIUM: f64 = 0.0416;
const M7I_LARGE: f64 = 0.1008;
const GP3: f64 = 0.08;

fn prices() -> serde_json::Value {
    let compute = |t: &str, usd: &str| serde_json::json!({"attributes": {"regionCode": "us-east-1", "instanceType": t, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used", "usagetype": format!("BoxUsage:{t}")}, "usd": usd});
    serde_json::json!([
        // Another region's price for the same type must not be taken.
        {"attributes": {"regionCode": "eu-west-1", "instanceType": "t3.medium", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}, "usd": "9.99"},
        compute("t3.medium", "0.0416"),
        compute("m7i.large", "0.1008"),
        {"attributes": {"regionCode": "us-east-1", "productFamily": "Storage", "volumeApiName": "gp3", "usagetype": "EBS:VolumeUsage.gp3"}, "usd": "0.08", "unit": "GB-Mo"},
        {"attributes": {"regionCode": "us-east-1", "productFamily": "Storage Snapshot", "usagetype": "EBS:SnapshotArchiveStorage"}, "usd": "0.0125", "unit": "GB-Mo"},
        {"attributes": {"regionCode": "us-east-1", "productFamily": "Storage Snapshot", "usagetype": "EBS:SnapshotUsage"}, "usd": "0.05", "unit": "GB-Mo"},
    ])
}

/// An instance in moto tagged as `owner`'s box `name`, with `tags`.
fn instance(moto: &Moto, owner: &str, name: &str, instance_type: &str, tags: &[(&str, String)]) -> String {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance).tags(tag("workstation:owner", owner)).tags(tag("workstation:name", name));
    for (k, v) in tags {
        spec = spec.tags(tag(k, v));
    }
    let run =
        moto.client().run_instances().image_id("ami-12c6146b").instance_type(instance_type.into()).min_count(1).max_count(1).tag_specifications(spec.build());
    moto::block_on(run.send()).unwrap().instances()[0].instance_id().unwrap().to_string()
}

/// Queues moto's Cost Explorer answers, one per distinct request.
fn bill(moto: &Moto, results: serde_json::Value) {
    workstation_tests::run_ok(
        std::process::Command::new("curl")
            .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &results.to_string()])
            .arg(format!("{}/moto-api/static/ce/cost-and-usage-results", moto.url)),
    );
}

fn page(groups: &[(&str, &str, &str)], token: Option<&str>) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = groups
        .iter()
        .map(|(o, n, usd)| serde_json::json!({"Keys": [format!("workstation:owner${o}"), format!("workstation:name${n}")], "Metrics": {"UnblendedCost": {"Amount": usd, "Unit": "USD"}}}))
        .collect();
    let mut page = serde_json::json!({"ResultsByTime": [{"TimePeriod": {"Start": "2026-12-01", "End": "2026-12-06"}, "Total": {}, "Groups": groups, "Estimated": true}], "DimensionValueAttributes": []});
    if let Some(t) = token {
        page["NextPageToken"] = t.into();
    }
    page
}

fn row<'a>(report: &'a serde_json::Value, owner: &str, name: &str) -> &'a serde_json::Value {
    report["boxes"].as_array().unwrap().iter().find(|b| b["owner"] == owner && b["name"] == name).unwrap_or_else(|| panic!("no {owner}/{name} in {report:#}"))
}

fn near(v: &serde_json::Value, want: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - want).abs() < 0.01)
}

#[test]
fn cost_sums_the_bill_by_owner_box_and_month_and_estimates_from_each_boxs_hours() {
    let mut env = TestEnv::aws_api_only();
    let shim = Shim::in_front_of(&mut env, 0);
    shim.set_prices(prices());
    let moto = env.moto.as_ref().unwrap();
    let now = Utc::now();
    let this = Month::of(now);
    // tester's box runs on while the test does: its hours grow by this much.
    let since_start = || (Utc::now() - now).num_seconds() as f64 / 3600.0 + 0.001;
    // tester's box runs: 10 h run, 2 h stopped by its idle check and 1 h by
    // reap this month, by its ledger; bob's was just stopped by reap.
    let ledger = format!("v1 since={} {this}=r36000/i7200/p3600/o0", now.timestamp());
    instance(moto, "tester", "dev", "t3.medium", &[("workstation:usage", ledger)]);
    let reaped = format!("reap at {}: idle per policy", now.format("%Y-%m-%dT%H:%M:%SZ"));
    let bobs = instance(moto, "bob", "dev", "m7i.large", &[("workstation:usage", format!("v1 {this}=r3600/i0/p0/o0")), ("workstation:stopped-by", reaped)]);
    moto::block_on(moto.client().stop_instances().instance_ids(&bobs).send()).unwrap();
    // carol's type has no price in the list: no estimate, asked once a day.
    instance(moto, "carol", "dev", "t3.nano", &[]);
    // tester's kept data volume: billed while no box holds it.
    let volume_tags = TagSpecification::builder()
        .resource_type(ResourceType::Volume)
        .tags(Tag::builder().key("workstation:owner").value("tester").build())
        .tags(Tag::builder().key("workstation:name").value("old").build())
        .build();
    moto::block_on(moto.client().create_volume().availability_zone("us-east-1a").size(50).tag_specifications(volume_tags).send()).unwrap();
    // This month's bill in two pages, then last month's.
    bill(
        moto,
        serde_json::json!({"results": [
            page(&[("tester", "dev", "3.00"), ("bob", "dev", "1.00")], Some("page-2")),
            page(&[("tester", "dev", "0.50"), ("", "", "100.00")], None),
            page(&[("tester", "old", "7.25")], None),
        ]}),
    );

    let mine = env.json(&["cost"]);
    assert_eq!(mine["month"], this.to_string());
    assert_eq!(mine["boxes"].as_array().unwrap().len(), 1, "only tester's: {mine:#}");
    let dev = row(&mine, "tester", "dev");
    let running = dev["running_hours"].as_f64().unwrap();
    assert!((10.0..10.0 + since_start()).contains(&running) && near(&dev["idle_stopped_hours"], 3.0), "{dev:#}");
    assert!(near(&dev["billed_usd"], 3.50), "both pages summed: {dev:#}");
    assert!(near(&dev["saved_usd"], 3.0 * T3_MEDIUM), "{dev:#}");
    // The root (the manifest's 30 GiB) for the hours it existed.
    let month_hours = (this.next().start() - this.start()).num_hours() as f64;
    assert!(near(&dev["estimate_usd"], running * T3_MEDIUM + 30.0 * GP3 * (running + 3.0) / month_hours), "{dev:#}");
    assert_eq!(mine["kept_volumes"][0]["size_gib"], 50);
    assert!(near(&mine["kept_volumes"][0]["monthly_usd"], 50.0 * GP3), "{mine:#}");
    assert!(near(&mine["prices"]["snapshot_gib_month"], 0.05), "the standard tier, not the archive: {mine:#}");
    assert_eq!(shim.requests("GetProducts").len(), 3, "t3.medium, gp3 and snapshots: {:#?}", shim.requests("GetProducts"));

    let all = env.json(&["cost", "--all"]);
    let asked = shim.requests("GetProducts").len();
    assert_eq!(asked, 5, "only bob's m7i.large and carol's t3.nano were not cached yet");
    let carol = row(&all, "carol", "dev");
    assert!(carol["estimate_usd"].is_null() && carol["saved_usd"].is_null(), "{carol:#}");
    let owners: Vec<(String, f64)> =
        all["owners"].as_array().unwrap().iter().map(|o| (o["owner"].as_str().unwrap().to_owned(), o["billed_usd"].as_f64().unwrap())).collect();
    assert_eq!(owners, [("bob".to_owned(), 1.0), ("carol".to_owned(), 0.0), ("tester".to_owned(), 3.5)]);
    assert!(near(&all["untagged_usd"], 100.0), "{all:#}");
    let bob = row(&all, "bob", "dev");
    assert_eq!(bob["state"], "stopped");
    assert!(near(&bob["running_hours"], 1.0) && near(&bob["estimate_usd"], M7I_LARGE + 30.0 * GP3 * 1.0 / month_hours), "{bob:#}");
    let text = env.ok(&["cost", "--all"]);
    assert!(text.contains("SAVED BY AUTO-STOP") && text.contains("kept volume") && text.contains("$3.50"), "{text}");

    // Last month: a box destroyed since shows as gone, with its bill.
    let last = this.previous().to_string();
    let before = env.json(&["cost", "--all", "--month", &last]);
    let old = row(&before, "tester", "old");
    assert!(old["id"].is_null() && near(&old["billed_usd"], 7.25), "{before:#}");
    assert_eq!(shim.requests("GetProducts").len(), asked, "prices came from the day's cache");
    let ce: Vec<serde_json::Value> = shim.requests("GetCostAndUsage");
    assert!(
        ce.iter().all(|r| r["GroupBy"] == serde_json::json!([{"Type": "TAG", "Key": "workstation:owner"}, {"Type": "TAG", "Key": "workstation:name"}])),
        "{ce:#?}"
    );
    assert_eq!(ce.last().unwrap()["TimePeriod"]["Start"], format!("{last}-01"));

    // status: the box's cost this month on one line.
    let status = env.ok(&["status", "dev"]);
    let line = status.lines().find(|l| l.starts_with("cost: ~$")).unwrap_or_else(|| panic!("{status}"));
    assert!(line.contains(&format!("in {this} so far (")) && line.contains(" h running, $0.12 saved by 3.0 h stopped idle)"), "{line}");

    // No Cost Explorer read: the estimate, and one line saying why.
    shim.fail("GetCostAndUsage", "AccessDeniedException", 1);
    let out = env.run(&["cost", "-o", "json"]);
    assert!(out.status.success(), "{out:?}");
    let denied: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let why = denied["billed_unavailable"].as_str().unwrap();
    assert!(
        why.starts_with("ce:GetCostAndUsage is not allowed") && why.contains("platform role") && why.contains("--estimate") && !why.contains('\n'),
        "{why}"
    );
    assert!(row(&denied, "tester", "dev")["billed_usd"].is_null());
    // No list prices: an error naming the permission and who grants it.
    std::fs::remove_dir_all(env.home.join(".cache/workstation")).unwrap();
    shim.fail("GetProducts", "AccessDeniedException", 1);
    let err = env.fails(&["cost", "--estimate"]);
    assert!(err.contains("pricing:GetProducts is not allowed for these credentials: terraform grants pricing:GetProducts"), "{err}");
    let err = env.fails(&["cost", "--month", "2026-13"]);
    assert!(err.contains("\"2026-13\" is not a month; write it as YYYY-MM"), "{err}");
    let next = this.next().to_string();
    assert!(env.fails(&["cost", "--month", &next]).contains("has not begun"));
}

/// A start through workstation records the run and the stop that ended.
#[test]
fn a_start_records_the_hours_in_the_boxs_ledger() {
    let env = TestEnv::aws();
    env.ok(&["create", "dev"]);
    env.ok(&["stop", "dev"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    env.ok(&["start", "dev"]);
    let moto = env.moto.as_ref().unwrap();
    let out = moto::block_on(
        moto.client().describe_instances().filters(aws_sdk_ec2::types::Filter::builder().name("tag:workstation:name").values("dev").build()).send(),
    )
    .unwrap();
    let instance = out.reservations()[0].instances()[0].clone();
    let tag = instance.tags().iter().find(|t| t.key() == Some("workstation:usage")).and_then(|t| t.value()).map(String::from);
    let usage = Usage::parse(tag.as_deref());
    let hours = usage.months.get(&Month::of(Utc::now())).copied().unwrap_or_default();
    assert!(usage.since.is_some() && hours.running_s >= 1 && hours.stopped_other_s >= 1, "{tag:?} -> {usage:?}");
    env.ok(&["destroy", "dev", "--yes"]);
}
