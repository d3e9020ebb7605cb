//! `workstation preview`: a box per pull request, run by CI. `up` creates
//! (or finds) the box `pr-N`, puts the tree of one commit on it (the whole
//! `git archive` once, then only what changed), runs the manifest's install
//! and restart rules as `sync` does, and brings the stack up with its seeds
//! kept. Its tags (`workstation:preview`, `:ref`, `:expires`) say which
//! pull request, which commit, and when `reap` terminates it.
//!
//! A preview's hostnames are the manifest's with `pr-N` as a label
//! (`api.dev.example.com` -> `api.pr-12.dev.example.com`), so previews and
//! engineers' boxes never claim the same name.

pub mod dns;
mod git;
pub mod key;
pub mod summary;
mod upload;

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use serde::Serialize;

pub use git::Repo;
pub use upload::{Mode, Uploaded};

use crate::boxes::access::{public_key_path, read_public_key};
use crate::boxes::{Context, LifecycleError, Ready};
use crate::laptop::hosts::{self, Pointed};
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::progress::step;
use crate::provider::{BoxInfo, LaunchSpec, Preview, ProviderError};
use crate::stack::services::ProgramStatus;
use crate::stack::shell::ShellError;
use crate::sync::Report;
use crate::sync::{Applied, Rules};

/// The variables every service of a preview gets.
pub const PREVIEW_ENV: &str = "WORKSTATION_PREVIEW";
pub const PREVIEW_URL_ENV: &str = "WORKSTATION_PREVIEW_URL";

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("--ref {name}: {why}")]
    Ref { name: String, why: String },
    #[error("`{command}` failed: {stderr}")]
    Git { command: String, stderr: String },
    #[error("{what} on the box failed (exit {status}): {stderr}")]
    Upload { what: String, status: u32, stderr: String },
    #[error("{0}")]
    Zone(String),
    #[error("no preview #{number} (taken down, expired, or never made); `workstation preview list` shows the previews")]
    NotFound { number: u32 },
    #[error("--ttl is longer than 90 days; a preview lives at most that long after its last push")]
    Ttl,
    #[error("{count} previews exist already, the most allowed (--max / WORKSTATION_PREVIEW_MAX {max}); nothing was launched: take one down (`workstation preview down N`) or raise the limit")]
    TooMany { count: usize, max: usize },
    #[error(
        "{owner}'s box {name} exists and is not a preview; preview up replaces a preview's files only: destroy that box or use another pull request number"
    )]
    NotAPreview { name: String, owner: String },
    #[error("the manifest {path} is a symlink, or leads outside the repository: a pull request's manifest must be a file of its tree; nothing was read")]
    ManifestOutside { path: String },
    #[error("the manifest {path} differs from its copy at {commit}: a preview runs the manifest of its commit; check that commit out (CI does), or commit the manifest")]
    ManifestDiffers { path: String, commit: String },
    #[error("preview #{number} exists for several owners ({owners}); name the owner (`workstation share OWNER --preview N`)")]
    Ambiguous { number: u32, owners: String },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// The box of pull request `number`.
pub fn box_name(number: u32) -> BoxName {
    format!("pr-{number}").parse().expect("pr-N is a box name")
}

/// The manifest's hostnames for preview `number`: `pr-N` after the first
/// label (a one-label name gets it as a suffix: `api` -> `api.pr-N`).
pub fn hostnames(names: &[String], number: u32) -> Vec<String> {
    names
        .iter()
        .map(|n| match n.split_once('.') {
            Some((first, rest)) => format!("{first}.pr-{number}.{rest}"),
            None => format!("{n}.pr-{number}"),
        })
        .collect()
}

/// Where reviewers open the preview: its first hostname, else its address.
pub fn url(hostnames: &[String], address: Option<IpAddr>) -> Option<String> {
    hostnames.first().map(|h| format!("http://{h}")).or_else(|| address.map(|a| format!("http://{a}")))
}

/// The manifest as preview `number` runs it: its hostnames, and the
/// preview variables in every service's environment.
pub fn manifest_for(manifest: &LoadedManifest, number: u32, url: Option<&str>) -> LoadedManifest {
    let mut m = manifest.clone();
    m.manifest.hostnames = hostnames(&manifest.manifest.hostnames, number);
    for service in m.manifest.services.values_mut() {
        service.environment.insert(PREVIEW_ENV.into(), number.to_string());
        service.environment.insert(PREVIEW_URL_ENV.into(), url.unwrap_or_default().into());
    }
    m
}

/// Where the tree goes on the box, relative to its root: `sync.path`, else
/// `src/<repository directory name>` (where `sync` puts a checkout).
pub fn checkout_path(manifest: &LoadedManifest, repo: &Repo) -> String {
    let name = repo.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkout".into());
    manifest.manifest.sync.path.clone().unwrap_or_else(|| format!("src/{name}"))
}

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
    let spec = LaunchSpec { owner: ctx.owner(), name: &name, manifest, public_key: &public_key, preview: Some(&pending) };
    let ready = ctx.launch_ready(&spec, progress).await?;
    let names = hostnames(&manifest.manifest.hostnames, req.number);
    let url = url(&names, ready.info.address);
    let effective = manifest_for(manifest, req.number, url.as_deref());
    let prepared = match prepare(ctx, &ready, &effective, req, &commit, &pending, progress, report).await {
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

/// The part of `up` between launch and bring-up, on the ready box: the
/// tree uploaded (the box tagged as at no known commit meanwhile), then the
/// manifest's installs and restarts for what changed. Returns where the
/// tree is, what was uploaded and what ran.
#[allow(clippy::too_many_arguments)]
async fn prepare(
    ctx: &Context,
    ready: &Ready,
    effective: &LoadedManifest,
    req: &UpRequest<'_>,
    commit: &str,
    pending: &Preview,
    progress: Option<&ProgressBar>,
    report: &dyn Report,
) -> Result<(String, Uploaded, Applied), PreviewError> {
    let from = ready.info.preview.as_ref().filter(|p| p.number == req.number).and_then(|p| p.commit.clone());
    let dir = format!("{}/{}", ready.shell.layout.root(), checkout_path(effective, req.repo));
    if from.as_deref() != Some(commit) {
        // Until this run is through, the box's tree is at no known commit:
        // a run that fails halfway leaves the next one a whole upload.
        ctx.provider().set_preview(&ready.info.id, pending).await?;
    }
    step(progress, format!("uploading {} to {}", &commit[..12], ready.info.name));
    let uploaded = upload::upload(&ready.shell, req.repo, from.as_deref(), commit, &dir).await?;
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

/// Every owner's previews, by number.
pub async fn list(ctx: &Context) -> Result<Vec<BoxInfo>, PreviewError> {
    let mut previews: Vec<BoxInfo> = ctx.provider().list(None).await?.into_iter().filter(|b| b.preview.is_some()).collect();
    previews.sort_by_key(|b| (b.preview.as_ref().map(|p| p.number), b.owner.clone()));
    Ok(previews)
}

/// Preview `number`: of `owner` when given, else of whoever has one.
pub async fn find(ctx: &Context, number: u32, owner: Option<&str>) -> Result<BoxInfo, PreviewError> {
    let mut found: Vec<BoxInfo> =
        list(ctx).await?.into_iter().filter(|b| b.preview.as_ref().is_some_and(|p| p.number == number) && owner.is_none_or(|o| b.owner == o)).collect();
    match found.len() {
        0 => Err(PreviewError::NotFound { number }),
        1 => Ok(found.remove(0)),
        _ => Err(PreviewError::Ambiguous { number, owners: found.iter().map(|b| b.owner.clone()).collect::<Vec<_>>().join(", ") }),
    }
}

/// What `preview down` removed.
#[derive(Debug, Serialize)]
pub struct Down {
    /// The box terminated (None: it was gone already, e.g. expired and
    /// reaped).
    #[serde(rename = "box")]
    pub info: Option<BoxInfo>,
    /// Route 53 records deleted.
    pub records: Vec<String>,
}

/// Terminates your preview `number` (its data goes with it) and removes its
/// hostnames from the zone and this machine's agent. The records go even
/// when the box is gone already (reap terminated it), and a failure to
/// remove them still takes the box down.
pub async fn down(ctx: &Context, number: u32, zone: Option<&dns::Zone>, progress: Option<&ProgressBar>) -> Result<Down, PreviewError> {
    let found = match find(ctx, number, Some(ctx.owner().as_str())).await {
        Ok(b) => Some(b),
        Err(PreviewError::NotFound { .. }) if zone.is_some() => None,
        Err(e) => return Err(e),
    };
    let records = match zone {
        Some(zone) => {
            step(progress, "removing the Route 53 records".into());
            // Only the records naming this box, while it exists: another
            // owner's preview of the same number keeps its own.
            zone.delete_preview(number, found.as_ref().and_then(|b| b.private_address)).await
        }
        None => Ok(Vec::new()),
    };
    let info = match &found {
        Some(b) => {
            let name: BoxName = b.name.parse().map_err(|_| PreviewError::NotFound { number })?;
            Some(ctx.destroy(&name, progress).await?.0)
        }
        None => None,
    };
    let records = records?;
    if info.is_none() && records.is_empty() {
        return Err(PreviewError::NotFound { number });
    }
    Ok(Down { info, records })
}

/// Points this laptop's preview hostnames for `number` at that preview
/// (`share --preview N`), through the hosts agent.
pub async fn share(ctx: &Context, manifest: &LoadedManifest, number: u32, owner: Option<&str>) -> Result<Pointed, PreviewError> {
    let info = find(ctx, number, owner).await?;
    let owner: crate::manifest::name::Owner = info.owner.parse().map_err(|_| PreviewError::NotFound { number })?;
    let name: BoxName = info.name.parse().map_err(|_| PreviewError::NotFound { number })?;
    // Running, with an address: the same checks as sharing a colleague's box.
    let info = ctx.shared_box(&owner, &name, false, None).await?;
    let address = info.address.ok_or_else(|| LifecycleError::NoAddress { name: info.name.clone(), id: info.id.clone() })?;
    let names = hostnames(&manifest.manifest.hostnames, number);
    if names.is_empty() {
        return Ok(Pointed::NoHostnames);
    }
    Ok(ctx.hosts().point(&names, address, &hosts::label(owner.as_str(), &info.name)).await.map_err(LifecycleError::from)?)
}

/// Takes preview `number`'s hostnames off this laptop (`share --preview N --off`).
pub async fn unshare(ctx: &Context, manifest: &LoadedManifest, number: u32) -> Result<Vec<String>, PreviewError> {
    let names = hostnames(&manifest.manifest.hostnames, number);
    ctx.hosts().clear(&names).await.map_err(LifecycleError::from)?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_hostnames_take_the_pull_request_as_a_label() {
        let names = vec!["api.dev.example.com".to_owned(), "web.dev.example.com".to_owned(), "api".to_owned()];
        assert_eq!(hostnames(&names, 123), ["api.pr-123.dev.example.com", "web.pr-123.dev.example.com", "api.pr-123"]);
        assert_eq!(url(&hostnames(&names, 7), None).as_deref(), Some("http://api.pr-7.dev.example.com"));
        assert_eq!(url(&[], Some("10.0.0.5".parse().unwrap())).as_deref(), Some("http://10.0.0.5"));
        assert_eq!(box_name(42).as_str(), "pr-42");
    }

    #[test]
    fn every_service_gets_the_preview_variables() {
        let m = crate::manifest::Manifest::parse(
            "hostnames = [\"api.dev.example.com\"]\n[box]\ninstance_type = \"t3.micro\"\ndisk_gib = 8\nimage_id = \"ami-1\"\n\
             [services.api]\ncommand = \"x\"\nenvironment = { KEEP = \"1\" }\n[services.web]\ncommand = \"y\"\n",
        )
        .unwrap();
        let loaded = LoadedManifest { path: "workstation.toml".into(), manifest: m, hash: "h".into() };
        let p = manifest_for(&loaded, 9, Some("http://api.pr-9.dev.example.com"));
        assert_eq!(p.manifest.hostnames, ["api.pr-9.dev.example.com"]);
        for s in p.manifest.services.values() {
            assert_eq!(s.environment[PREVIEW_ENV], "9");
            assert_eq!(s.environment[PREVIEW_URL_ENV], "http://api.pr-9.dev.example.com");
        }
        assert_eq!(p.manifest.services["api"].environment["KEEP"], "1");
    }
}
