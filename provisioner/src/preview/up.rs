//! `preview up`: create (or find) box `pr-N`, put one commit's tree on
//! it (whole once, then only what changed), run the manifest's installs and
//! restarts, bring the stack up with its data kept, name it in Route 53.

use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use serde::Serialize;

use super::names::{box_name, checkout_path, hostnames, manifest_for, url};
use super::upload::{self, Mode, Uploaded};
use super::{dns, list, PreviewError, Repo};
use crate::boxes::access::{public_key_path, read_public_key};
use crate::boxes::{Context, Ready};
use crate::laptop::hosts::Pointed;
use crate::manifest::LoadedManifest;
use crate::progress::step;
use crate::provider::{BoxInfo, LaunchSpec, Preview};
use crate::stack::services::ProgramStatus;
use crate::sync::Report;
use crate::sync::{Applied, Rules};

pub struct UpRequest<'a> {
    pub repo: &'a Repo,
    pub git_ref: &'a str,
    pub number: u32,
    /// From now: each `up` (a push) extends the preview's life.
    pub ttl: Duration,
    pub zone: Option<&'a dns::Zone>,
    pub health_timeout: Duration,
    /// Previews of this owner at most: a new one beyond is refused.
    pub max: usize,
}

/// What `preview up` did, for the pull request's comment.
#[derive(Debug, Serialize)]
pub struct PreviewReport {
    pub number: u32,
    #[serde(rename = "box")]
    pub info: BoxInfo,
    pub commit: String,
    /// Where the tree is on the box.
    pub path: String,
    pub url: Option<String>,
    pub hostnames: Vec<String>,
    pub expires: DateTime<Utc>,
    /// False when the box existed (an update).
    pub created: bool,
    pub upload: Uploaded,
    pub applied: Applied,
    pub programs: Vec<ProgramStatus>,
    pub healthy: bool,
    /// The hosts agent on this machine, if any (CI has none).
    pub pointed: Pointed,
    /// Records written in the Route 53 zone.
    pub dns: bool,
}

/// The longest `--ttl`: a forgotten preview still ends.
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Creates or updates preview `req.number` at `req.git_ref`.
pub async fn up(
    ctx: &Context,
    manifest: &LoadedManifest,
    req: &UpRequest<'_>,
    progress: Option<&ProgressBar>,
    report: &dyn Report,
) -> Result<PreviewReport, PreviewError> {
    if req.ttl > MAX_TTL {
        return Err(PreviewError::Ttl);
    }
    let commit = req.repo.resolve(req.git_ref)?;
    req.repo.check_manifest(&manifest.path, &commit)?;
    let name = box_name(req.number);
    // Everything that can fail here fails before a box is billed.
    let public_key = read_public_key(&public_key_path(ctx.identity()))?;
    step(progress, "checking the seed snapshots".into());
    let snapshots = ctx.snapshots(manifest).await?;
    let expires = Utc::now() + chrono::Duration::from_std(req.ttl).unwrap_or_default();
    let pending = Preview { number: req.number, commit: None, expires: Some(expires) };
    // A box of this name that is not this preview is someone's own: its
    // files are not ours to replace, nor is it ours to start.
    match ctx.provider().find(ctx.owner(), &name).await? {
        Some(found) if found.preview.as_ref().is_none_or(|p| p.number != req.number) => {
            return Err(PreviewError::NotAPreview { name: name.to_string(), owner: ctx.owner().to_string() });
        }
        Some(_) => {}
        None => {
            let running = list(ctx).await?.into_iter().filter(|b| b.owner == ctx.owner().as_str()).count();
            if running >= req.max {
                return Err(PreviewError::TooMany { count: running, max: req.max });
            }
        }
    }
    let spec =
        LaunchSpec { owner: ctx.owner(), name: &name, manifest, public_key: &public_key, preview: Some(&pending), team: None, data: None, attempt: None };
    let ready = ctx.launch_ready(&spec, progress).await?;
    let names = hostnames(&manifest.manifest.hostnames, req.number);
    let url = url(&names, ready.info.address);
    let effective = manifest_for(manifest, req.number, url.as_deref());
    let from = ready.info.preview.as_ref().filter(|p| p.number == req.number).and_then(|p| p.commit.clone());
    if from.as_deref() != Some(commit.as_str()) {
        // Until this run is through, the box's tree is at no known commit:
        // a run that fails halfway leaves the next one a whole upload.
        if let Err(e) = ctx.provider().set_preview(&ready.info.id, &pending).await {
            ready.shell.close().await;
            return Err(e.into());
        }
    }
    let prepared = match deploy(&ready, &effective, req.repo, from.as_deref(), &commit, progress, report).await {
        Ok(p) => p,
        Err(e) => {
            ready.shell.close().await;
            return Err(e);
        }
    };
    let (dir, uploaded, applied) = prepared;
    let info = ready.info.clone();
    let created = ctx.finish_create(ready, &effective, &snapshots, req.health_timeout, progress).await?;
    if applied.install_failed.is_empty() {
        let done = Preview { commit: Some(commit.clone()), ..pending };
        ctx.provider().set_preview(&info.id, &done).await?;
    }
    let mut dns = false;
    if let (Some(zone), Some(address)) = (req.zone, info.private_address) {
        step(progress, format!("writing {} in Route 53", names.join(", ")));
        zone.upsert(&names, address).await?;
        dns = true;
    }
    Ok(PreviewReport {
        number: req.number,
        commit,
        path: dir,
        url,
        hostnames: names,
        expires,
        created: created.created,
        upload: uploaded,
        applied,
        healthy: created.up.healthy,
        programs: created.up.programs,
        pointed: created.hostnames,
        dns,
        info: created.info,
    })
}

/// The part of `up` between launch and bring-up, on the ready box (a
/// preview's or a team's): the tree of `commit` uploaded (only what
/// changed since `from`, the commit the box's tree is at), then the
/// manifest's installs and restarts for what changed. The caller records
/// the box's tree as at no known commit first. Returns where the tree is,
/// what was uploaded and what ran.
#[allow(clippy::too_many_arguments)]
pub async fn deploy(
    ready: &Ready,
    effective: &LoadedManifest,
    repo: &Repo,
    from: Option<&str>,
    commit: &str,
    progress: Option<&ProgressBar>,
    report: &dyn Report,
) -> Result<(String, Uploaded, Applied), PreviewError> {
    let dir = format!("{}/{}", ready.shell.layout.root(), checkout_path(effective, repo));
    step(progress, format!("uploading {} to {}", &commit[..12], ready.info.name));
    let uploaded = upload::upload(&ready.shell, repo, from, commit, &dir).await?;
    let mut actions = Rules::new(&effective.manifest).actions(&uploaded.changed);
    // A new box's services first start after the installs (in `up`); a
    // whole new tree under running services restarts them all, but for
    // those an install holds back (they restart if it succeeds).
    let fresh = ready.created && uploaded.mode == Mode::Full;
    if uploaded.mode == Mode::Full && !ready.created {
        let installing: std::collections::BTreeSet<&String> = actions.installs.values().flatten().collect();
        let all: Vec<String> = effective.manifest.services.keys().filter(|s| !installing.contains(s)).cloned().collect();
        actions.restarts.extend(all);
    }
    let applied = crate::sync::apply_with(&ready.shell, &dir, &actions, !fresh, report).await?;
    Ok((dir, uploaded, applied))
}
