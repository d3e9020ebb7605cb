//! `env up`: create (or find) a team's box, put one commit's tree on it
//! (whole once, then only what changed), run the manifest's installs and
//! restarts, bring the stack up with its data kept.

use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use super::{EnvError, EnvRef};
use crate::boxes::access::{public_key_path, read_public_key};
use crate::boxes::Context;
use crate::manifest::LoadedManifest;
use crate::preview::{deploy, Repo, Uploaded};
use crate::progress::step;
use crate::provider::{BoxInfo, LaunchSpec, TeamEnv};
use crate::stack::services::ProgramStatus;
use crate::sync::{Applied, Report};

pub struct UpRequest<'a> {
    pub repo: &'a Repo,
    pub git_ref: &'a str,
    pub env: &'a EnvRef,
    pub health_timeout: Duration,
}

/// What `env up` did.
#[derive(Debug, Serialize)]
pub struct EnvReport {
    pub team: String,
    pub env: String,
    #[serde(rename = "box")]
    pub info: BoxInfo,
    pub commit: String,
    /// Where the tree is on the box.
    pub path: String,
    pub hostnames: Vec<String>,
    /// False when the box existed (an update).
    pub created: bool,
    pub upload: Uploaded,
    pub applied: Applied,
    pub programs: Vec<ProgramStatus>,
    pub healthy: bool,
}

/// Creates or updates team box `req.env` at `req.git_ref`.
pub async fn up(
    ctx: &Context,
    manifest: &LoadedManifest,
    req: &UpRequest<'_>,
    progress: Option<&ProgressBar>,
    report: &dyn Report,
) -> Result<EnvReport, EnvError> {
    super::manage::check_deployer(ctx, req.env)?;
    let commit = req.repo.resolve(req.git_ref)?;
    req.repo.check_manifest(&manifest.path, &commit)?;
    let name = req.env.box_name()?;
    let label = req.env.to_string();
    // Everything that can fail here fails before a box is billed.
    let public_key = read_public_key(&public_key_path(ctx.identity()))?;
    step(progress, "checking the seed snapshots".into());
    let snapshots = ctx.snapshots(manifest).await?;
    if let Some(found) = ctx.provider().find(ctx.owner(), &name).await? {
        if !req.env.is(&found) {
            return Err(EnvError::NotThisEnv { env: label, name: name.to_string(), owner: ctx.owner().to_string() });
        }
    }
    let pending = TeamEnv { team: req.env.team.to_string(), env: req.env.env.to_string(), commit: None };
    let spec =
        LaunchSpec { owner: ctx.owner(), name: &name, manifest, public_key: &public_key, preview: None, team: Some(&pending), data: None, attempt: None };
    let ready = ctx.launch_ready(&spec, progress).await?;
    let effective = req.env.manifest_for(manifest);
    let from = ready.info.team.as_ref().filter(|_| req.env.is(&ready.info)).and_then(|t| t.commit.clone());
    let deployed = async {
        if from.as_deref() != Some(commit.as_str()) {
            // Until this run is through, the box's tree is at no known
            // commit: a run that fails halfway leaves the next a whole upload.
            ctx.provider().set_team_commit(&ready.info.id, None).await?;
        }
        Ok::<_, EnvError>(deploy(&ready, &effective, req.repo, from.as_deref(), &commit, progress, report).await?)
    };
    let (path, upload, applied) = match deployed.await {
        Ok(d) => d,
        Err(e) => {
            ready.shell.close().await;
            return Err(e);
        }
    };
    let id = ready.info.id.clone();
    let created = ctx.finish_create(ready, &effective, &snapshots, req.health_timeout, progress).await?;
    if applied.install_failed.is_empty() {
        ctx.provider().set_team_commit(&id, Some(&commit)).await?;
    }
    Ok(EnvReport {
        team: pending.team,
        env: pending.env,
        commit,
        path,
        hostnames: effective.manifest.hostnames.clone(),
        created: created.created,
        upload,
        applied,
        healthy: created.up.healthy,
        programs: created.up.programs,
        info: created.info,
    })
}
