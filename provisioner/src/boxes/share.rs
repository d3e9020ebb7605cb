//! `share`: point the manifest's hostnames at a colleague's box for a demo,
//! and back at your own.

use indicatif::ProgressBar;

use super::{Context, LifecycleError};
use crate::laptop::hosts::{self, ClientError, Pointed};
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::LoadedManifest;
use crate::provider::{BoxInfo, BoxState};

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

impl Context {
    /// Someone's running box, to share. A stopped one is an error that says
    /// so (pointing at it would just time out); with `start`, it is started,
    /// if its owner lets colleagues start it (the `workstation:shareable`
    /// tag, which the engineers' IAM policy checks too).
    pub async fn shared_box(&self, owner: &Owner, name: &BoxName, start: bool, progress: Option<&ProgressBar>) -> Result<BoxInfo, LifecycleError> {
        let mut info = self.provider.find(owner, name).await?.ok_or_else(|| match owner == &self.owner {
            true => LifecycleError::UnknownBox { owner: owner.to_string(), name: name.to_string() },
            false => LifecycleError::UnknownShared { owner: owner.to_string(), name: name.to_string() },
        })?;
        if info.state != BoxState::Running && start {
            if !info.shareable && owner != &self.owner {
                return Err(LifecycleError::NotShareable { owner: owner.to_string(), name: info.name });
            }
            // Running is enough: the hostnames go to its address, and its
            // host key is not ours to pin.
            info = self.power_on(info, progress).await?;
            // `wait` follows a replaced box among *your* boxes: never point
            // a colleague's label at one of them.
            if info.owner != owner.as_str() {
                return Err(LifecycleError::Gone { name: name.to_string(), id: info.id, what: "starting", state: "terminated" });
            }
        }
        if info.state != BoxState::Running {
            return Err(LifecycleError::NotRunning { owner: owner.to_string(), name: info.name, state: info.state.as_str() });
        }
        if info.address.is_none() {
            return Err(LifecycleError::NoAddress { name: info.name, id: info.id });
        }
        Ok(info)
    }
}
