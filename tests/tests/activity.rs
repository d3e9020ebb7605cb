//! Activity reports at fleet scale: a day of N boxes in one account and
//! region. Each simulated box does, every minute at its own second, what its
//! idle check does (`workstation box idle-check`): decide its own stop on
//! fresh data, report `last-active` when `workstation::idle::report` says so,
//! and tag + stop itself when idle, all through the box's real client
//! (`SelfApi`), to moto behind the throttling shim holding EC2's default
//! buckets on a simulated clock. At each check, reap's rule
//! (`reap::acts_on`) is asked of what the box has reported; at [`REAP_AT`]
//! `reap`'s own plan over the tags moto holds is compared with the truth;
//! at the end each box's tag in moto must be what it reported.
//!
//! The buckets (capacity, refill a second) are AWS's "Request throttling for
//! the Amazon EC2 API" (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
//! CreateTags has its own, 100 and 10 ("Uncategorized actions");
//! StopInstances is a "Mutating action", 50 and 5. A smaller fleet gets
//! buckets scaled by N / 10,000, so its load on them is the same.
//!
//! moto stamps LaunchTime with the real clock, so reap's view takes each
//! box's start from the simulation; everything else it reads from moto.

use std::collections::BTreeMap;

use aws_config::imds;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use chrono::{DateTime, Duration, TimeZone, Utc};
use workstation::boxside::self_api::SelfApi;
use workstation::idle::policy::{self, Seen, Verdict};
use workstation::idle::{reap, report};
use workstation::manifest::IdlePolicy;
use workstation::provider::aws::AwsProvider;
use workstation::provider::tags;
use workstation::provider::AddressKind;
use workstation_tests::moto::{block_on, Moto};
use workstation_tests::shim::{Bucket, Shim};
use workstation_tests::REGION;

const FULL_FLEET: f64 = 10_000.0;
/// When (simulated minutes from 08:00) reap's own plan is asked of moto's
/// tags: at 12:00, when most boxes run. Once, because over 10,000
/// instances moto's DescribeInstances takes five minutes; reap's rule is
/// asked of every box's report at every check anyway.
const REAP_AT: i64 = 4 * 60;
const CREATE_TAGS: (f64, f64) = (100.0, 10.0);
const STOP_INSTANCES: (f64, f64) = (50.0, 5.0);

/// One engineer's day: in use from `start` to `end`, except a break; the
/// box's check dies at `dead_at` for a few (what reap is for).
struct Day {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    gap: Option<(DateTime<Utc>, DateTime<Utc>)>,
    dead_at: Option<DateTime<Utc>>,
    /// The second of the minute its timer fires.
    second: u32,
}

impl Day {
    fn in_use(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end && !self.gap.is_some_and(|(a, b)| a <= t && t < b)
    }
}

#[derive(Default)]
struct Box {
    last_active: Option<DateTime<Utc>>,
    reported: Option<DateTime<Utc>>,
    /// Since when a report has been due without landing.
    due_since: Option<DateTime<Utc>>,
    stopped: bool,
    reaped: bool,
    /// The old rule, for comparison: a tag every 5 minutes while in use.
    old_tagged: Option<DateTime<Utc>>,
}

/// A small deterministic generator (splitmix64): the fleet's days are the
/// same every run (the report jitter, from moto's random instance ids, is
/// not).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn minutes(&mut self, lo: i64, hi: i64) -> Duration {
        Duration::minutes(lo + (self.next() % (hi - lo) as u64) as i64)
    }
}

fn days(n: usize, t0: DateTime<Utc>) -> Vec<Day> {
    let mut rng = Rng(7);
    (0..n)
        .map(|i| {
            // Arrivals over two hours, sessions of 1 to 9 hours, a third
            // with a break shorter than the timeout, 1 in 100 checks dying.
            let start = t0 + rng.minutes(0, 120);
            let end = start + rng.minutes(60, 540);
            let gap = rng.next().is_multiple_of(3).then(|| {
                let at = start + Duration::minutes((end - start).num_minutes() / 2);
                (at, at + rng.minutes(20, 40))
            });
            let dead_at = (i % 100 == 42).then(|| start + rng.minutes(10, (end - start).num_minutes().max(11)));
            Day { start, end, gap, dead_at, second: (rng.next() % 60) as u32 }
        })
        .collect()
}

#[derive(Debug, Default)]
struct Outcome {
    boxes: usize,
    reports: u64,
    reports_failed: u64,
    /// Longest a due report waited to land, in checks.
    longest_wait_checks: i64,
    stops: u64,
    /// Reap planned a box whose check was running (decided on stale tags).
    stale_stops: u64,
    /// Reap stopped a box whose check had died.
    reaped_dead: u64,
    dead: u64,
    /// Boxes whose tag at the end differs from what they reported.
    lost: u64,
    /// CreateTags a box sends when it stops itself (the reason).
    stop_tags: u64,
    /// All CreateTags (reports and stop reasons) in the busiest minute.
    peak_tags_per_minute: u64,
    busiest_minute: String,
    old_rule_tags: u64,
    old_rule_peak_per_minute: u64,
    simulated_hours: f64,
    stats: serde_json::Value,
}

fn client(url: &str) -> aws_sdk_ec2::Client {
    // No SDK retries: a box's next check is its retry, and a retry's
    // backoff runs on the real clock while the buckets run on the simulated one.
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

/// Every instance's last-active tag, running or stopped.
async fn last_active_tags(client: &aws_sdk_ec2::Client) -> BTreeMap<String, Option<DateTime<Utc>>> {
    let mut pages = client.describe_instances().into_paginator().send();
    let mut out = BTreeMap::new();
    while let Some(page) = pages.next().await {
        for i in page.unwrap().reservations().iter().flat_map(|r| r.instances()) {
            let tag = i.tags().iter().find(|t| t.key() == Some(tags::LAST_ACTIVE)).and_then(|t| t.value());
            let at = tag.map(|v| DateTime::parse_from_rfc3339(v).unwrap().with_timezone(&Utc));
            out.insert(i.instance_id().unwrap().to_string(), at);
        }
    }
    out
}

fn simulate(n: usize) -> Outcome {
    let moto = Moto::start();
    let scale = n as f64 / FULL_FLEET;
    let buckets = [
        Bucket { action: "CreateTags", capacity: CREATE_TAGS.0 * scale, refill: CREATE_TAGS.1 * scale },
        Bucket { action: "StopInstances", capacity: STOP_INSTANCES.0 * scale, refill: STOP_INSTANCES.1 * scale },
    ];
    let shim = Shim::start(&moto.url, 0, &buckets);
    let started = std::time::Instant::now();
    let ids = workstation_tests::moto::launch_fleet(&moto.client(), n);
    eprintln!("launched {n} instances in moto in {:.1?}", started.elapsed());
    let index: std::collections::HashMap<String, usize> = ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
    let via_shim = client(&shim.url);
    let apis: Vec<SelfApi> = ids.iter().map(|id| SelfApi::Ec2 { client: via_shim.clone(), imds: imds::Client::builder().build(), id: id.clone() }).collect();
    // reap reads moto directly: its few Describe calls are not what is measured.
    let reaper = AwsProvider::new(moto.client(), moto.sqs_client(), AddressKind::Private);

    let policy = IdlePolicy::default();
    let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    let days = days(n, t0);
    let by_second: BTreeMap<u32, Vec<usize>> = days.iter().enumerate().fold(BTreeMap::new(), |mut m, (i, d)| {
        m.entry(d.second).or_default().push(i);
        m
    });
    let mut boxes: Vec<Box> = (0..n).map(|_| Box::default()).collect();
    let mut out = Outcome { boxes: n, dead: days.iter().filter(|d| d.dead_at.is_some()).count() as u64, ..Default::default() };
    let (mut per_minute, mut old_per_minute) = (BTreeMap::<i64, u64>::new(), BTreeMap::<i64, u64>::new());
    let done = |b: &Box| b.stopped || b.reaped;

    block_on(async {
        let mut minute = 0i64;
        while !boxes.iter().all(done) {
            let at_minute = t0 + Duration::minutes(minute);
            if minute == REAP_AT {
                let asked = std::time::Instant::now();
                let mut running = reaper.running().await.unwrap();
                running.retain_mut(|info| {
                    let i = index[&info.id];
                    info.launched_at = Some(days[i].start);
                    days[i].start <= at_minute && !done(&boxes[i])
                });
                for planned in reap::plan(reap::Policies::same(&policy), &running, at_minute) {
                    let i = index[&planned.id];
                    if days[i].dead_at.is_some_and(|d| d <= at_minute) {
                        out.reaped_dead += 1;
                        boxes[i].reaped = true;
                    } else {
                        out.stale_stops += 1;
                        eprintln!(
                            "stale stop at {at_minute}: box {i} ({:?}), reported {:?}, last active {:?}",
                            planned.verdict, boxes[i].reported, boxes[i].last_active
                        );
                    }
                }
                eprintln!("{}: reap over moto's tags in {:.1?}", at_minute.format("%H:%M"), asked.elapsed());
            }
            // Reap's rule, every minute, for boxes whose check died (no
            // check asks it for them): what a reap run then would stop.
            for (i, day) in days.iter().enumerate() {
                let b = &mut boxes[i];
                if b.reaped || day.dead_at.is_none_or(|d| d > at_minute) {
                    continue;
                }
                let as_reported = Seen { last_active: b.reported, started_at: Some(day.start), keep_until: None };
                if reap::acts_on(&policy, &as_reported, at_minute).is_some() {
                    b.reaped = true;
                    out.reaped_dead += 1;
                }
            }
            for (second, indices) in &by_second {
                let now = at_minute + Duration::seconds(*second as i64);
                let mut clock_set = false;
                for &i in indices {
                    let (day, b) = (&days[i], &mut boxes[i]);
                    if now < day.start || done(b) || day.dead_at.is_some_and(|d| d <= now) {
                        continue;
                    }
                    if day.in_use(now) {
                        b.last_active = Some(now);
                        if b.old_tagged.is_none_or(|t| now - t >= Duration::minutes(5)) {
                            b.old_tagged = Some(now);
                            out.old_rule_tags += 1;
                            *old_per_minute.entry(minute).or_default() += 1;
                        }
                    }
                    let truth = Seen { last_active: b.last_active, started_at: Some(day.start), keep_until: None };
                    let verdict = policy::decide(&policy, &truth, now);
                    let as_reported = Seen { last_active: b.reported, ..truth };
                    // Reap, at this moment, from what the box reported (what
                    // moto holds: checked above and at the end).
                    if !verdict.is_stop() && reap::acts_on(&policy, &as_reported, now).is_some() {
                        out.stale_stops += 1;
                        eprintln!("reap would stop box {i} at {now} from its report {:?}; last active {:?}", b.reported, b.last_active);
                    }
                    let due = report::due(b.reported, Some(day.start), b.last_active, now, report::jitter(&ids[i], b.reported));
                    if !verdict.is_stop() && !due {
                        continue;
                    }
                    if !clock_set {
                        shim.set_clock(now.timestamp() as f64);
                        clock_set = true;
                    }
                    let api = &apis[i];
                    if let Verdict::Stop { reason, .. } = verdict {
                        // As the check does: the reason, then the stop; a
                        // failure is retried by the next minute's check.
                        let tagged = api.tag(tags::STOPPED_BY, &reason.chars().take(256).collect::<String>()).await.is_ok();
                        if tagged {
                            out.stop_tags += 1;
                            *per_minute.entry(minute).or_default() += 1;
                            *old_per_minute.entry(minute).or_default() += 1;
                        }
                        if tagged && api.stop(false).await.is_ok() {
                            b.stopped = true;
                            out.stops += 1;
                        }
                        continue;
                    }
                    let last = b.last_active.unwrap();
                    let since = *b.due_since.get_or_insert(now);
                    match api.tag(tags::LAST_ACTIVE, &last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).await {
                        Ok(()) => {
                            b.reported = Some(last);
                            b.due_since = None;
                            out.reports += 1;
                            out.longest_wait_checks = out.longest_wait_checks.max((now - since).num_minutes());
                            *per_minute.entry(minute).or_default() += 1;
                        }
                        Err(_) => out.reports_failed += 1,
                    }
                }
            }
            minute += 1;
            assert!(minute < 48 * 60, "the simulated day did not end");
        }
        out.simulated_hours = minute as f64 / 60.0;

        // No report lost: each box's tag is what it last reported.
        let tagged = last_active_tags(&moto.client()).await;
        out.lost = boxes.iter().enumerate().filter(|(i, b)| tagged.get(&ids[*i]).copied().flatten() != b.reported).count() as u64;
    });
    let (peak_minute, peak) = per_minute.iter().max_by_key(|(_, c)| **c).map(|(m, c)| (*m, *c)).unwrap_or_default();
    out.peak_tags_per_minute = peak;
    out.busiest_minute = (t0 + Duration::minutes(peak_minute)).format("%H:%M").to_string();
    out.old_rule_peak_per_minute = old_per_minute.values().copied().max().unwrap_or_default();
    out.stats = shim.stats();
    out
}

fn check(out: &Outcome) {
    assert_eq!(out.stale_stops, 0, "reap decided on stale tags: {out:#?}");
    assert_eq!(out.lost, 0, "reports lost: {out:#?}");
    assert_eq!(out.reaped_dead, out.dead, "reap stops every box whose check died: {out:#?}");
    assert_eq!(out.stops + out.reaped_dead, out.boxes as u64, "{out:#?}");
    assert!(out.longest_wait_checks < report::LEAD.num_minutes(), "a report waited longer than its lead: {out:#?}");
}

fn print(out: &Outcome) {
    let per_s = |count: u64| count as f64 / (out.simulated_hours * 3600.0);
    let ours_peak = out.peak_tags_per_minute as f64 / 60.0;
    let ours_mean = per_s(out.reports + out.stop_tags);
    let old_peak = out.old_rule_peak_per_minute as f64 / 60.0;
    let throttled = out.stats["actions"]["CreateTags"]["throttled"].as_u64().unwrap_or(0);
    println!(
        "{} boxes, {:.1} simulated hours: {} activity reports and {} stop reasons tagged ({:.2} CreateTags/s mean, {:.2}/s in the busiest minute {}), {} failed and retried, longest wait {} checks; {} self-stops, {} dead checks reaped, {} stale stops, {} lost",
        out.boxes, out.simulated_hours, out.reports, out.stop_tags, ours_mean, ours_peak, out.busiest_minute, out.reports_failed, out.longest_wait_checks, out.stops, out.reaped_dead, out.stale_stops, out.lost
    );
    println!(
        "old rule (a tag every 5 minutes in use): {} tags, {:.2}/s mean, {:.2}/s in its busiest minute",
        out.old_rule_tags + out.stop_tags,
        per_s(out.old_rule_tags + out.stop_tags),
        old_peak
    );
    println!("shim: {}", out.stats["actions"]);
    println!(
        "activity: boxes={} createtags_per_s_peak={:.2} createtags_per_s_mean={:.3} bucket_refill_per_s={} old_rule_per_s_peak={:.2} throttled={} lost={} stale_stops={}",
        out.boxes, ours_peak, ours_mean, CREATE_TAGS.1 * out.boxes as f64 / FULL_FLEET, old_peak, throttled, out.lost, out.stale_stops
    );
}

/// 400 boxes against buckets scaled to them: no report lost, no stop on
/// stale tags, every dead check reaped.
#[test]
fn reports_scale_without_loss_or_stale_stops() {
    let out = simulate(400);
    print(&out);
    check(&out);
}

/// The full fleet: 10,000 boxes against EC2's default buckets
/// (bench/activity.sh).
#[test]
#[ignore = "a bench: minutes of moto (bench/activity.sh)"]
fn ten_thousand_boxes() {
    let out = simulate(10_000);
    print(&out);
    check(&out);
}
