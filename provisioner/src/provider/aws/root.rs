//! `upgrade` on EC2: the root volume replacement task
//! (CreateReplaceRootVolumeTask with an image id). EC2 keeps the instance,
//! so its id, addresses, tags, IAM role and the data volume at
//! [`crate::provider::data::DEVICE`] stay, and reboots it onto a new root
//! made from the image; the old root is deleted once the task succeeds, and
//! a task that fails leaves it attached ("failed"). Nothing here detaches
//! the data volume, so no step leaves the box without its data.

use std::time::Duration;

use aws_sdk_ec2::types::{Filter, ReplaceRootVolumeTask, ReplaceRootVolumeTaskState};
use sha2::{Digest, Sha256};

use super::instances::{api, tag};
use super::AwsProvider;
use crate::poll::{Backoff, Pauses};
use crate::provider::{tags, Provider, ProviderError, Result, RootReplaced};

/// A replacement takes minutes (a volume from the image's snapshot, a
/// reboot); generous for a large root.
const TASK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const TASK_POLL: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));

impl AwsProvider {
    pub(super) async fn replace_root_volume(&self, id: &str, image: Option<&str>) -> Result<RootReplaced> {
        let first = self.describe(id).await?.image_id;
        let Some(image) = image.or(first.as_deref()).map(str::to_owned) else {
            return Err(ProviderError::Api {
                operation: "CreateReplaceRootVolumeTask",
                message: format!("box {id} runs no known image; name one with --image"),
            });
        };
        let mut from = first.clone();
        // At most two rounds: a replacement already under way (an
        // interrupted upgrade's, perhaps to another image), then ours.
        for _ in 0..2 {
            let tasks = self.root_tasks(id).await?;
            let task = match tasks.first() {
                // An upgrade interrupted while EC2 worked: wait for that one.
                Some(t) if !finished(t) => t.clone(),
                // An upgrade interrupted after its task succeeded: record it.
                Some(t) if succeeded(t) && t.image_id() == Some(image.as_str()) && from.as_deref() != Some(&image) => t.clone(),
                _ if from.as_deref() == Some(&image) => return Ok(RootReplaced { replaced: from != first, from: first, to: Some(image) }),
                _ => self.start_task(id, &image, &tasks).await?,
            };
            let task_id = task.replace_root_volume_task_id().unwrap_or_default().to_string();
            let done = self.wait_task(id, task).await?;
            if !succeeded(&done) {
                let state = done.task_state().map(|s| s.as_str().to_string()).unwrap_or_default();
                return Err(ProviderError::RootReplacement { id: id.into(), task: task_id, state });
            }
            let to = done.image_id().unwrap_or(&image).to_string();
            self.client.create_tags().resources(id).tags(tag(tags::IMAGE_ID, &to)).send().await.map_err(api("CreateTags"))?;
            from = Some(to);
        }
        Ok(RootReplaced { replaced: from != first, from: first, to: from })
    }

    /// The task once it has finished.
    async fn wait_task(&self, id: &str, mut task: ReplaceRootVolumeTask) -> Result<ReplaceRootVolumeTask> {
        let task_id = task.replace_root_volume_task_id().unwrap_or_default().to_string();
        let mut pauses = Pauses::new(TASK_TIMEOUT, TASK_POLL);
        while !finished(&task) {
            if !pauses.wait().await {
                return Err(ProviderError::RootReplacement { id: id.into(), task: task_id, state: format!("still under way after {TASK_TIMEOUT:?}") });
            }
            if let Some(now) = self.root_tasks(id).await?.into_iter().find(|t| t.replace_root_volume_task_id() == Some(task_id.as_str())) {
                task = now;
            }
        }
        Ok(task)
    }

    /// The instance's replacement tasks, newest first.
    async fn root_tasks(&self, id: &str) -> Result<Vec<ReplaceRootVolumeTask>> {
        let out = self
            .client
            .describe_replace_root_volume_tasks()
            .filters(Filter::builder().name("instance-id").values(id).build())
            .send()
            .await
            .map_err(api("DescribeReplaceRootVolumeTasks"))?;
        let mut tasks = out.replace_root_volume_tasks().to_vec();
        tasks.sort_by(|a, b| b.start_time().cmp(&a.start_time()));
        Ok(tasks)
    }

    /// Starts a replacement. The token (the root now, the image, and how
    /// many replacements of that root to it failed) makes two concurrent
    /// upgrades one task, and a retry after a failed task a new one; a
    /// replaced root is another volume, so a later upgrade never replays
    /// an old task.
    async fn start_task(&self, id: &str, image: &str, tasks: &[ReplaceRootVolumeTask]) -> Result<ReplaceRootVolumeTask> {
        let out = self.client.describe_instances().instance_ids(id).send().await.map_err(api("DescribeInstances"))?;
        let instance = out.reservations().iter().flat_map(|r| r.instances()).next().ok_or_else(|| ProviderError::NotFound { id: id.into() })?;
        let root = instance
            .block_device_mappings()
            .iter()
            .find(|b| b.device_name().is_some() && b.device_name() == instance.root_device_name())
            .and_then(|b| b.ebs()?.volume_id())
            .unwrap_or_default();
        let failed = tasks.iter().filter(|t| t.image_id() == Some(image) && !succeeded(t)).count();
        let token = hex::encode(&Sha256::digest(format!("{id}/{root}/{image}/{failed}"))[..16]);
        let out = self
            .client
            .create_replace_root_volume_task()
            .instance_id(id)
            .image_id(image)
            .delete_replaced_root_volume(true)
            .client_token(token)
            .send()
            .await
            .map_err(api("CreateReplaceRootVolumeTask"))?;
        out.replace_root_volume_task()
            .cloned()
            .ok_or_else(|| ProviderError::Api { operation: "CreateReplaceRootVolumeTask", message: "returned no task".into() })
    }
}

fn succeeded(t: &ReplaceRootVolumeTask) -> bool {
    t.task_state() == Some(&ReplaceRootVolumeTaskState::Succeeded)
}

/// EC2's end states: succeeded, failed (the old root is attached again)
/// and failed-detached.
fn finished(t: &ReplaceRootVolumeTask) -> bool {
    matches!(t.task_state(), Some(ReplaceRootVolumeTaskState::Succeeded | ReplaceRootVolumeTaskState::Failed | ReplaceRootVolumeTaskState::FailedDetached))
}
