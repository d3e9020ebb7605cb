//! Team boxes once they exist: listing and finding them, taking one down,
//! what is happening on one, and pointing this laptop's hostnames at one.

use indicatif::ProgressBar;
use serde::Serialize;

use super::{EnvError, EnvRef};
use crate::boxes::data::DataOnDestroy;
use crate::boxes::{Context, LifecycleError};
use crate::boxside::access::{self, Entry};
use crate::laptop::hosts::{self, Pointed};
use crate::manifest::name::{BoxName, TeamName};
use crate::manifest::LoadedManifest;
use crate::provider::{BoxInfo, BoxState};
use crate::stack::services::ProgramStatus;

/// How many access log entries `env status` shows.
const RECENT: usize = 50;

/// Every team box (of `team` when given), by team and environment.
pub async fn list(ctx: &Context, team: Option<&TeamName>) -> Result<Vec<BoxInfo>, EnvError> {
    let wanted = |b: &BoxInfo| b.team.as_ref().is_some_and(|t| team.is_none_or(|want| t.team == want.as_str()));
    let mut boxes: Vec<BoxInfo> = ctx.provider().team_boxes().await?.into_iter().filter(|b| wanted(b) && super::names::is_deployed(b)).collect();
    boxes.sort_by_key(|b| (b.team.as_ref().map(|t| (t.team.clone(), t.env.clone())), b.launched_at));
    Ok(boxes)
}

/// Team box `env`.
pub async fn find(ctx: &Context, env: &EnvRef) -> Result<BoxInfo, EnvError> {
    list(ctx, Some(&env.team)).await?.into_iter().find(|b| env.is(b)).ok_or_else(|| EnvError::NotFound { env: env.to_string() })
}

/// Terminates your team box `env` with its data (a team box's data is
/// seeded, and `env up` seeds the next one).
pub async fn down(ctx: &Context, env: &EnvRef, progress: Option<&ProgressBar>) -> Result<BoxInfo, EnvError> {
    check_deployer(ctx, env)?;
    let found = find(ctx, env).await?;
    let name: BoxName = found.name.parse().map_err(|_| EnvError::NotFound { env: env.to_string() })?;
    Ok(ctx.destroy(&name, DataOnDestroy::Purge, progress).await?.0)
}

/// Refuses to act on `env`'s box as anyone but the team's deployer.
pub(super) fn check_deployer(ctx: &Context, env: &EnvRef) -> Result<(), EnvError> {
    let deployer = super::deployer(env.team.as_str())?;
    if ctx.owner() != &deployer {
        return Err(EnvError::NotDeployer { env: env.to_string(), deployer: deployer.to_string(), owner: ctx.owner().to_string(), team: env.team.to_string() });
    }
    Ok(())
}

/// `env status`: the box, its programs with the personal routes in place,
/// and the last logins and intercepts its access log recorded.
#[derive(Debug, Serialize)]
pub struct EnvStatus {
    #[serde(rename = "box")]
    pub info: BoxInfo,
    /// Empty when the box is not running.
    pub programs: Vec<ProgramStatus>,
    /// Oldest first.
    pub access: Vec<Entry>,
}

pub async fn status(ctx: &Context, manifest: &LoadedManifest, env: &EnvRef) -> Result<EnvStatus, EnvError> {
    let info = find(ctx, env).await?;
    if info.state != BoxState::Running {
        return Ok(EnvStatus { info, programs: Vec::new(), access: Vec::new() });
    }
    let effective = env.manifest_for(manifest);
    let (programs, access) = ctx
        .on_box(&info, async |shell| {
            let programs = crate::stack::services::status(shell, &effective.manifest, None).await?;
            let log = shell.output(&format!("tail -n {RECENT} {} 2>/dev/null", crate::stack::layout::sh(&shell.layout.access_log()))).await?;
            Ok::<_, EnvError>((programs, access::parse(&log)))
        })
        .await?;
    Ok(EnvStatus { info, programs, access })
}

/// Points this laptop's hostnames for `env` at that team box (`share --env`).
pub async fn share(ctx: &Context, manifest: &LoadedManifest, env: &EnvRef) -> Result<Pointed, EnvError> {
    let info = find(ctx, env).await?;
    if info.state != BoxState::Running {
        return Err(LifecycleError::Stopped { name: info.name.clone(), state: info.state.as_str() }.into());
    }
    let address = info.address.ok_or_else(|| LifecycleError::NoAddress { name: info.name.clone(), id: info.id.clone() })?;
    let names = env.hostnames(&manifest.manifest.hostnames);
    if names.is_empty() {
        return Ok(Pointed::NoHostnames);
    }
    Ok(ctx.hosts().point(&names, address, &hosts::label(&info.owner, &info.name)).await.map_err(LifecycleError::from)?)
}

/// Takes `env`'s hostnames off this laptop (`share --env TEAM/ENV --off`).
pub async fn unshare(ctx: &Context, manifest: &LoadedManifest, env: &EnvRef) -> Result<Vec<String>, EnvError> {
    let names = env.hostnames(&manifest.manifest.hostnames);
    ctx.hosts().clear(&names).await.map_err(LifecycleError::from)?;
    Ok(names)
}
