//! Previews once they exist: listing and finding them, taking one down,
//! and pointing this laptop's hostnames at one.

use indicatif::ProgressBar;
use serde::Serialize;

use super::names::hostnames;
use super::{dns, PreviewError};
use crate::boxes::data::DataOnDestroy;
use crate::boxes::{Context, LifecycleError};
use crate::laptop::hosts::{self, Pointed};
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::progress::step;
use crate::provider::BoxInfo;

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
            // A preview's data volume goes with its instance (launched so).
            Some(ctx.destroy(&name, DataOnDestroy::Keep, progress).await?.0)
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
