//! The [`Provider`] trait: what `aws` and `local` each do for the
//! lifecycle above them.

use chrono::{DateTime, Utc};

use super::{BoxInfo, LaunchSpec, Launched, Preview, Result};
use crate::manifest::name::{BoxName, Owner};
use crate::provider::ProviderKind;

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Why the box's sshd refused a key, when the provider can read its
    /// log (a local box can; an EC2 box's log is on the box).
    fn sshd_refusal(&self, _id: &str) -> Option<String> {
        None
    }

    /// Launches the box, or returns the live one with this owner and name.
    async fn launch(&self, spec: &LaunchSpec<'_>) -> Result<Launched>;

    /// The live box with this owner and name, if any.
    async fn find(&self, owner: &Owner, name: &BoxName) -> Result<Option<BoxInfo>>;

    /// Live boxes, of one owner or of everyone.
    async fn list(&self, owner: Option<&Owner>) -> Result<Vec<BoxInfo>>;

    async fn describe(&self, id: &str) -> Result<BoxInfo>;

    async fn start(&self, id: &str) -> Result<()>;

    /// Stops the box; its disk (state directory) is kept. With
    /// `hibernate`, its memory too (EC2 hibernation; a box launched with
    /// it enabled).
    async fn stop(&self, id: &str, hibernate: bool) -> Result<()>;

    /// Deletes the box and its disk.
    async fn destroy(&self, id: &str) -> Result<()>;

    /// Records `workstation keep`: the idle policy keeps the box until then.
    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()>;

    /// Records whether the owner lets colleagues start the box.
    async fn set_shareable(&self, id: &str, shareable: bool) -> Result<()>;

    /// Records a preview box's commit and expiry (after an upload).
    async fn set_preview(&self, id: &str, preview: &Preview) -> Result<()>;

    /// Records that a bring-up started (None) or ended healthy with the
    /// manifest whose hash is given (the box now runs that manifest).
    async fn record_bring_up(&self, id: &str, finished: Option<&str>) -> Result<()>;
}
