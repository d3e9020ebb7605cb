//! The data volume as the laptop sees it: which kept volume `create`
//! reattaches, and `destroy --purge` of a box that is already gone.

use super::{Context, LifecycleError};
use crate::manifest::name::BoxName;
use crate::provider::DataVolume;

/// What `create` does when a kept data volume of the name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DataOnCreate {
    /// Reattach it: the box comes back with its home, `src/` and stores.
    #[default]
    Reattach,
    /// A new, empty volume; the kept one stays (`list --volumes`).
    New,
}

/// What `destroy` does with the box's data volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOnDestroy {
    /// Kept for the name's next box (the default).
    Keep,
    Purge,
}

impl Context {
    /// Data volumes: yours, or everyone's.
    pub async fn volumes(&self, all: bool) -> Result<Vec<DataVolume>, LifecycleError> {
        Ok(self.provider.volumes(if all { None } else { Some(&self.owner) }).await?)
    }

    /// The kept volumes of your box `name`, oldest first.
    pub async fn kept_volumes(&self, name: &BoxName) -> Result<Vec<DataVolume>, LifecycleError> {
        let mut kept: Vec<DataVolume> = self.volumes(false).await?.into_iter().filter(|v| v.is_kept() && v.name == name.as_str()).collect();
        kept.sort_by_key(|v| v.created_at);
        Ok(kept)
    }

    /// The newest kept volume of your box `name`, if any: what `create`
    /// reattaches.
    pub async fn kept_volume(&self, name: &BoxName) -> Result<Option<DataVolume>, LifecycleError> {
        Ok(self.kept_volumes(name).await?.pop())
    }

    /// Deletes these kept volumes (`destroy NAME --purge` once the box is
    /// gone, after the engineer confirmed them); returns them.
    pub async fn delete_kept(&self, kept: &[DataVolume]) -> Result<Vec<DataVolume>, LifecycleError> {
        for v in kept {
            self.provider.delete_volume(v).await?;
        }
        Ok(kept.to_vec())
    }
}
