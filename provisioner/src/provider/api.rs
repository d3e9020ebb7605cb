//! The [`Provider`] trait: what `aws` and `local` each do for the
//! lifecycle above them.

use chrono::{DateTime, Utc};

use super::data::{DataVolume, ImageSummary, RootReplaced};
use super::{BoxInfo, LaunchSpec, Launched, Preview, Result};
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::{MachineSpec, Store};
use crate::provider::queues::QueueEnv;
use crate::provider::ProviderKind;
use std::collections::BTreeMap;

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

    /// The oldest live box with this owner and name, the others (left by
    /// concurrent launches) terminated: their ids. Only EC2 can have them.
    async fn settle_duplicates(&self, owner: &Owner, name: &BoxName) -> Result<(Option<BoxInfo>, Vec<String>)> {
        Ok((self.find(owner, name).await?, Vec::new()))
    }

    /// Live boxes, of one owner or of everyone.
    async fn list(&self, owner: Option<&Owner>) -> Result<Vec<BoxInfo>>;

    async fn describe(&self, id: &str) -> Result<BoxInfo>;

    /// Every team box (`workstation env`), whoever's, in any state but
    /// gone: one filtered listing, not the whole fleet.
    async fn team_boxes(&self) -> Result<Vec<BoxInfo>>;

    async fn start(&self, id: &str) -> Result<()>;

    /// Stops the box; its disk (state directory) is kept. With
    /// `hibernate`, its memory too (EC2 hibernation; a box launched with
    /// it enabled).
    async fn stop(&self, id: &str, hibernate: bool) -> Result<()>;

    /// Deletes the box and its root volume; its data volume is kept for
    /// the name's next box (a preview's goes with it). `reap` reaches
    /// only this, so it never deletes data.
    async fn destroy(&self, id: &str) -> Result<()>;

    /// Deletes the box and its data volume (`destroy --purge`).
    async fn destroy_with_data(&self, id: &str) -> Result<()>;

    /// Data volumes, attached and kept, of one owner or of everyone.
    async fn volumes(&self, owner: Option<&Owner>) -> Result<Vec<DataVolume>>;

    /// Deletes a kept data volume (refused for one a box holds).
    async fn delete_volume(&self, volume: &DataVolume) -> Result<()>;

    /// Once the box runs, attaches the kept volume its launch chose to
    /// reattach (nothing when it is attached). Returns the box's data
    /// volume; None for a box made before data volumes.
    async fn attach_data(&self, info: &BoxInfo) -> Result<Option<String>>;

    /// Puts a new root volume under the running box, from `image` (None:
    /// the one it has; a local box has no images), keeping its data volume,
    /// id and addresses. Returns once the new root boots; it then publishes
    /// its new host key. Run again after an interruption, it waits for the
    /// replacement under way instead of starting another.
    async fn replace_root(&self, id: &str, image: Option<&str>) -> Result<RootReplaced>;

    /// The images the manifest's reference names, newest first (empty for
    /// an image pinned by id, and for local boxes).
    async fn images(&self, machine: &MachineSpec) -> Result<Vec<ImageSummary>>;

    /// The image a box launched from this manifest now runs (None: a
    /// local box).
    async fn launch_image(&self, machine: &MachineSpec) -> Result<Option<String>>;

    /// Records `workstation keep`: the idle policy keeps the box until then.
    async fn keep_until(&self, id: &str, until: DateTime<Utc>) -> Result<()>;

    /// Records whether the owner lets colleagues start the box.
    async fn set_shareable(&self, id: &str, shareable: bool) -> Result<()>;

    /// Records a preview box's commit and expiry (after an upload).
    async fn set_preview(&self, id: &str, preview: &Preview) -> Result<()>;

    /// Records the commit a team box's tree is at (None: an upload is
    /// under way, so the next `env up` uploads the whole tree).
    async fn set_team_commit(&self, id: &str, commit: Option<&str>) -> Result<()>;

    /// Lets the SSH key `public_key` log in as `user` on the box for the
    /// next 60 s (EC2 Instance Connect's SendSSHPublicKey; a local box's
    /// pushed-keys file): how engineers reach a team box with their own
    /// key. Refused unless the caller's team is the box's (terraform).
    async fn push_key(&self, info: &BoxInfo, user: &str, public_key: &str) -> Result<()>;

    /// Records that a bring-up started (None) or ended healthy with the
    /// manifest whose hash is given (the box now runs that manifest).
    async fn record_bring_up(&self, id: &str, finished: Option<&str>) -> Result<()>;

    /// The queues of the manifest's sqs store for this box, made if
    /// missing (SQS's for a box in AWS; a local box's own server makes its
    /// own): the URLs its services get, by variable (queues.rs).
    async fn queues(&self, info: &BoxInfo, stores: &BTreeMap<String, Store>) -> Result<QueueEnv>;
}
