//! `workstation reap`: the central backstop for boxes that did not stop
//! themselves (a wedged timer, a box without the image's timer). Run from
//! cron; pages through every owner's running boxes, asks the same idle
//! policy the boxes use ([`crate::idle::policy`]) of their tags, and stops
//! the ones that should have stopped at least [`GRACE`] ago, in batches with
//! bounded concurrency. Preview boxes (of the preview owner) past their
//! `workstation:expires` tag are terminated instead, running or stopped: a
//! preview is disposable, and a stopped one still pays for its disk. Team
//! boxes (`workstation env`) follow `[team_idle]` when the manifest has
//! one, and a stopped team box inside one of its `start` windows (working
//! hours) is started.

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::idle::policy::{self, Seen, Verdict};
pub use crate::idle::team::{to_start, Policies};
use crate::manifest::deployed;
use crate::manifest::{IdlePolicy, Manifest, S3Url};
use crate::provider::aws::AwsProvider;
use crate::provider::usage::StoppedBy;
use crate::provider::{BoxInfo, BoxState, Provider, ProviderError};

/// Instance ids per StopInstances call (the API takes more, but a smaller
/// batch keeps a throttled or failing call cheap to retry one by one).
pub const BATCH: usize = 100;

/// How long after its tags say a box should have stopped reap stops it. A
/// box whose check runs stops itself on time from fresh data and reports
/// activity only before this runs out ([`crate::idle::report`]), which keeps
/// a fleet's CreateTags far inside EC2's throttling; a box whose check does
/// not run is billed this much longer than its policy.
pub const GRACE: Duration = Duration::hours(2);

#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub last_active: Option<DateTime<Utc>>,
    /// Hibernated rather than stopped (launched with hibernation).
    pub hibernate: bool,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// A preview box past its expiry.
#[derive(Debug, Clone, Serialize)]
pub struct Expired {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub preview: u32,
    pub expires: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub id: String,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ReapReport {
    pub at: DateTime<Utc>,
    pub dry_run: bool,
    /// Running boxes looked at.
    pub examined: usize,
    /// The boxes to stop, and why.
    pub plan: Vec<Planned>,
    /// Preview boxes past their expiry, to terminate.
    pub expired: Vec<Expired>,
    /// Stopped team boxes inside a `start` window, to start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to_start: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub terminated: Vec<String>,
    /// Stopped or terminated by someone else while we worked: not an error.
    pub gone: Vec<String>,
    pub failed: Vec<Failed>,
    /// Owners with more boxes than the manifest's box.max_boxes_per_owner
    /// (reported, never acted on: which box goes is the owner's call).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub over_limit: Vec<OverLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverLimit {
    pub owner: String,
    pub boxes: usize,
    pub max: u32,
}

/// Owners of more than `max` of `boxes` (any state but gone), by name.
pub fn over_limit(boxes: &[BoxInfo], max: u32) -> Vec<OverLimit> {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for b in boxes.iter().filter(|b| b.preview.is_none()) {
        *counts.entry(b.owner.as_str()).or_default() += 1;
    }
    counts.into_iter().filter(|(_, n)| *n > max as usize).map(|(owner, boxes)| OverLimit { owner: owner.into(), boxes, max }).collect()
}

/// What the policy says of each running box at `at`: the ones to stop.
pub fn plan(policies: Policies<'_>, boxes: &[BoxInfo], at: DateTime<Utc>) -> Vec<Planned> {
    boxes
        .iter()
        .filter_map(|b| {
            acts_on(policies.of_box(b), &Seen::of(b), at).map(|verdict| Planned {
                id: b.id.clone(),
                owner: b.owner.clone(),
                name: b.name.clone(),
                last_active: b.last_active,
                hibernate: b.hibernate,
                verdict,
            })
        })
        .collect()
}

/// The preview boxes whose expiry is at or before `at`.
pub fn expired(previews: &[BoxInfo], at: DateTime<Utc>) -> Vec<Expired> {
    previews
        .iter()
        .filter_map(|b| {
            let p = b.preview.as_ref()?;
            let expires = p.expires.filter(|e| *e <= at)?;
            Some(Expired { id: b.id.clone(), owner: b.owner.clone(), name: b.name.clone(), preview: p.number, expires })
        })
        .collect()
}

/// Whether reap stops a box it sees so at `at`: when the box should have
/// stopped at least [`GRACE`] ago.
pub fn acts_on(policy: &IdlePolicy, seen: &Seen, at: DateTime<Utc>) -> Option<Verdict> {
    let verdict = policy::decide(policy, seen, at);
    (verdict.is_stop() && at - verdict.stop_at() >= GRACE).then_some(verdict)
}

/// One run of reap.
pub struct Run<'a> {
    pub policies: Policies<'a>,
    /// Decide as of this time (a plan for later, or a simulation).
    pub at: DateTime<Utc>,
    pub dry_run: bool,
    /// API calls in flight at once.
    pub concurrency: usize,
    /// Whose previews expire: the owner CI's previews run under, the only
    /// one whose boxes the reaper's IAM policy lets it terminate.
    pub preview_owner: &'a str,
    /// box.max_boxes_per_owner: reap reports owners over it.
    pub max_boxes_per_owner: Option<u32>,
}

/// The owner previews run under unless told otherwise (terraform's
/// `preview_owner`).
pub const PREVIEW_OWNER: &str = "preview";

/// What one run will do, from the previews and the running boxes found:
/// the previews of `run.preview_owner` past their expiry, and the other
/// running boxes the policy stops.
fn planned(run: &Run<'_>, previews: &[BoxInfo], running: Vec<BoxInfo>) -> ReapReport {
    let Run { policies, at, dry_run, preview_owner, .. } = *run;
    // Terminating cannot be undone: a run that acts ends only previews
    // expired by now, whatever --at says.
    let expiry_at = if dry_run { at } else { at.min(Utc::now()) };
    let previews: Vec<BoxInfo> = previews.iter().filter(|b| b.owner == preview_owner).cloned().collect();
    let expired = expired(&previews, expiry_at);
    let boxes: Vec<BoxInfo> = running.into_iter().filter(|b| !expired.iter().any(|e| e.id == b.id)).collect();
    let plan = plan(policies, &boxes, at);
    ReapReport { at, dry_run, examined: boxes.len() + expired.len(), plan, expired, ..Default::default() }
}

pub async fn reap(provider: &AwsProvider, run: &Run<'_>) -> Result<ReapReport, ProviderError> {
    let mut report = planned(run, &provider.previews().await?, provider.running().await?);
    // Counting and starting need stopped boxes too: one more listing,
    // only when asked.
    if let Some(max) = run.max_boxes_per_owner {
        report.over_limit = over_limit(&provider.list(None).await?, max);
    }
    if policy::start_window(run.policies.teams, start_at(run)).is_some() {
        report.to_start = to_start(run.policies.teams, &provider.team_boxes().await?, start_at(run));
    }
    if run.dry_run {
        return Ok(report);
    }
    start_all(provider, &mut report).await;
    let concurrency = run.concurrency.max(1);
    // An expired preview's queues go first. One whose queues could not be
    // deleted is ended all the same (a running box costs; an idle queue
    // does not), and the failure reported.
    let expired: Vec<String> = report.expired.iter().map(|e| e.id.clone()).collect();
    let mut queues =
        stream::iter(report.expired.clone()).map(|e| async move { (provider.delete_queues(&e.owner, &e.name).await, e.id) }).buffer_unordered(concurrency);
    while let Some((deleted, id)) = queues.next().await {
        if let Err(e) = deleted {
            report.failed.push(Failed { id, error: format!("its queues were not deleted: {e}") });
        }
    }
    drop(queues);
    let mut ends = stream::iter(expired.chunks(BATCH)).map(|chunk| provider.terminate_batch(chunk)).buffer_unordered(concurrency);
    while let Some(done) = ends.next().await {
        report.terminated.extend(done.stopped);
        report.gone.extend(done.gone);
        report.failed.extend(done.failed.into_iter().map(|(id, error)| Failed { id, error }));
    }
    let reason = StoppedBy::Reap.tag(run.at, "idle per policy");
    // One StopInstances call hibernates all its instances or none.
    let ids = |hibernate: bool| report.plan.iter().filter(|p| p.hibernate == hibernate).map(|p| p.id.clone()).collect::<Vec<_>>();
    let (plain, hibernating) = (ids(false), ids(true));
    let chunks = plain.chunks(BATCH).map(|c| (c, false)).chain(hibernating.chunks(BATCH).map(|c| (c, true)));
    let mut batches = stream::iter(chunks).map(|(chunk, hibernate)| provider.stop_batch(chunk, &reason, hibernate)).buffer_unordered(concurrency);
    while let Some(done) = batches.next().await {
        report.stopped.extend(done.stopped);
        report.gone.extend(done.gone);
        report.failed.extend(done.failed.into_iter().map(|(id, error)| Failed { id, error }));
    }
    Ok(report)
}

/// `reap` over a provider without fleet-wide batch calls (local boxes:
/// only this HOME's are listed, not other HOMEs' on the machine): the same
/// plan as [`reap`], one destroy or stop per box.
pub async fn reap_listed(provider: &dyn Provider, run: &Run<'_>) -> Result<ReapReport, ProviderError> {
    let all = provider.list(None).await?;
    let previews: Vec<BoxInfo> = all.iter().filter(|b| b.preview.is_some()).cloned().collect();
    let running: Vec<BoxInfo> = all.iter().filter(|b| b.state == BoxState::Running).cloned().collect();
    let mut report = planned(run, &previews, running);
    if let Some(max) = run.max_boxes_per_owner {
        report.over_limit = over_limit(&all, max);
    }
    report.to_start = to_start(run.policies.teams, &all, start_at(run));
    if run.dry_run {
        return Ok(report);
    }
    start_all(provider, &mut report).await;
    for id in report.expired.iter().map(|e| e.id.clone()).collect::<Vec<_>>() {
        // Only previews expire, and their data volumes go with them
        // (launched so): reap never deletes a volume itself.
        match provider.destroy(&id).await {
            Ok(()) => report.terminated.push(id),
            Err(e) => report.failed.push(Failed { id, error: e.to_string() }),
        }
    }
    for (id, hibernate) in report.plan.iter().map(|p| (p.id.clone(), p.hibernate)).collect::<Vec<_>>() {
        match provider.stop(&id, hibernate).await {
            Ok(()) => report.stopped.push(id),
            Err(e) => report.failed.push(Failed { id, error: e.to_string() }),
        }
    }
    Ok(report)
}

/// Starting a box cannot be taken back by the next run: a run that acts
/// starts only boxes due by now, whatever --at says.
fn start_at(run: &Run<'_>) -> DateTime<Utc> {
    if run.dry_run {
        run.at
    } else {
        run.at.min(Utc::now())
    }
}

/// Starts the team boxes of `report.to_start`, one by one (a team has a
/// few): a failure is reported and the others still start.
async fn start_all(provider: &dyn Provider, report: &mut ReapReport) {
    for id in report.to_start.clone() {
        match provider.start(&id).await {
            Ok(()) => report.started.push(id),
            Err(e) => report.failed.push(Failed { id, error: e.to_string() }),
        }
    }
}

/// What the scheduled reaper receives (terraform/reaper.tf): where the
/// deployed manifest is (`manifest_url`, published by `workstation manifest
/// publish`), or the manifest's text itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub manifest: Option<String>,
    pub manifest_url: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// Decide as of this time instead of now.
    pub at: Option<DateTime<Utc>>,
    /// Whose previews expire (default [`PREVIEW_OWNER`]).
    pub preview_owner: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the request's manifest: {0}")]
    Manifest(#[from] crate::manifest::ParseError),
    #[error("the request must carry exactly one of manifest and manifest_url (terraform/reaper.tf sends manifest_url)")]
    NoManifest,
    #[error("the request's manifest_url: {0}")]
    Url(String),
    #[error(transparent)]
    Deployed(#[from] deployed::DeployedError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// One scheduled run: the manifest's [idle] policy over every running box.
/// `s3` reads a `manifest_url`.
pub async fn handle(provider: &AwsProvider, s3: &aws_sdk_s3::Client, request: Request, concurrency: usize) -> Result<ReapReport, RequestError> {
    let text = match (request.manifest, request.manifest_url) {
        (Some(text), None) => text,
        (None, Some(url)) => deployed::fetch(s3, &S3Url::parse(&url).map_err(RequestError::Url)?).await?,
        _ => return Err(RequestError::NoManifest),
    };
    let manifest = Manifest::parse(&text)?;
    let at = request.at.unwrap_or_else(Utc::now);
    let preview_owner = request.preview_owner.as_deref().unwrap_or(PREVIEW_OWNER);
    let run = Run {
        policies: Policies::of(&manifest),
        at,
        dry_run: request.dry_run,
        concurrency,
        preview_owner,
        max_boxes_per_owner: manifest.machine.max_boxes_per_owner,
    };
    Ok(reap(provider, &run).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::BoxState;

    fn boxed(id: &str, idle_for: Option<i64>, now: DateTime<Utc>) -> BoxInfo {
        BoxInfo {
            launched_at: Some(now - Duration::days(1)),
            last_active: idle_for.map(|m| now - Duration::minutes(m)),
            ..BoxInfo::example(id, BoxState::Running)
        }
    }

    #[test]
    fn plans_exactly_the_idle_boxes() {
        let now = Utc::now();
        let policy = IdlePolicy::default(); // 45m timeout
        let boxes =
            [boxed("fresh", Some(5), now), boxed("in-grace", Some(45 + 119), now), boxed("stale", Some(45 + 121), now), boxed("never-reported", None, now)];
        let ids: Vec<String> = plan(Policies::same(&policy), &boxes, now).into_iter().map(|p| p.id).collect();
        // No tag at all: launched a day ago and never active since. One
        // that should have stopped less than GRACE ago may still report.
        assert_eq!(ids, vec!["stale", "never-reported"]);
    }

    #[test]
    fn previews_expire_by_their_tag_and_an_unreadable_one_never_does() {
        let now = Utc::now();
        let preview = |id: &str, expires: Option<DateTime<Utc>>| BoxInfo {
            preview: Some(crate::provider::Preview { number: 7, commit: None, expires }),
            ..boxed(id, Some(5), now)
        };
        let boxes = [
            preview("past", Some(now - Duration::minutes(1))),
            preview("future", Some(now + Duration::hours(1))),
            preview("unreadable", None),
            boxed("engineer", None, now),
        ];
        let ids: Vec<String> = expired(&boxes, now).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, vec!["past"]);
    }
}
