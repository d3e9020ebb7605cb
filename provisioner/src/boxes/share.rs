//! `share`: point the manifest's hostnames at a colleague's box for a demo,
//! and back at your own.

use crate::boxes::lifecycle::{Context, LifecycleError};
use crate::laptop::hosts::{self, ClientError, Pointed};
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::LoadedManifest;
use crate::provider::BoxState;

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("the manifest lists no hostnames to share; add hostnames = [\"api.dev.example.com\"] to workstation.toml")]
    NoHostnames,
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Agent(#[from] ClientError),
    #[error("{0}")]
    NotPointed(String),
}

fn hostnames(manifest: Option<&LoadedManifest>) -> Result<&[String], ShareError> {
    match manifest {
        Some(m) if !m.manifest.hostnames.is_empty() => Ok(&m.manifest.hostnames),
        _ => Err(ShareError::NoHostnames),
    }
}

/// Points the hostnames at `owner`'s running box `name`; with `start`, a
/// stopped one is started first if its owner allows it.
pub async fn share(
    ctx: &Context,
    manifest: Option<&LoadedManifest>,
    owner: &Owner,
    name: &BoxName,
    start: bool,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Pointed, ShareError> {
    let names = hostnames(manifest)?;
    let info = ctx.shared_box(owner, name, start, progress).await?;
    let address = info.address.ok_or_else(|| LifecycleError::NoAddress { name: info.name.clone(), id: info.id.clone() })?;
    Ok(ctx.hosts.point(names, address, &hosts::label(owner.as_str(), &info.name)).await?)
}

/// Points the hostnames back at your box `name`. When it is not running
/// (or gone) they are cleared rather than left on a colleague's box.
pub async fn share_off(ctx: &Context, manifest: Option<&LoadedManifest>, name: &BoxName) -> Result<Pointed, ShareError> {
    let names = hostnames(manifest)?;
    match ctx.find(name).await {
        Ok(info) if info.state == BoxState::Running => match ctx.point_hostnames(&info, names).await {
            Pointed::Skipped { reason } => Err(ShareError::NotPointed(reason)),
            pointed => Ok(pointed),
        },
        _ => {
            ctx.hosts.clear(names).await?;
            Ok(Pointed::Skipped { reason: format!("your box {name} is not running; the hostnames were cleared") })
        }
    }
}

/// Lets colleagues start your box `name` with `share --start` (or stops
/// letting them).
pub async fn allow_start(ctx: &Context, name: &BoxName, allow: bool) -> Result<crate::provider::BoxInfo, ShareError> {
    let info = ctx.find(name).await?;
    ctx.provider.set_shareable(&info.id, allow).await.map_err(LifecycleError::from)?;
    Ok(info)
}
