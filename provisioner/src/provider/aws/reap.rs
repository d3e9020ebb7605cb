//! The reaper's side of EC2: every owner's running boxes, and stops in
//! batches that tell a failure from a box that stopped meanwhile.

use aws_sdk_ec2::types::Filter;

use super::instances::tag;
use super::AwsProvider;
use crate::provider::{tags, BoxInfo, Result};

/// How one StopInstances (or TerminateInstances) batch went, per instance.
#[derive(Debug, Default)]
pub struct Stopped {
    pub stopped: Vec<String>,
    /// Already stopping, stopped or terminated by the time we asked.
    pub gone: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// EC2 error codes that mean "this instance is no longer running".
const GONE_CODES: [&str; 3] = ["IncorrectInstanceState", "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"];

impl AwsProvider {
    /// Every owner's running boxes (the reaper's view), page by page.
    pub async fn running(&self) -> Result<Vec<BoxInfo>> {
        let filters =
            vec![Filter::builder().name("tag-key").values(tags::OWNER).build(), Filter::builder().name("instance-state-name").values("running").build()];
        Ok(self.instances(filters).await?.iter().map(|i| self.info(i)).collect())
    }

    /// Every owner's preview boxes that are not terminated, whatever their
    /// state: an expired preview is terminated even when stopped.
    pub async fn previews(&self) -> Result<Vec<BoxInfo>> {
        let filters = vec![
            Filter::builder().name("tag-key").values(tags::PREVIEW).build(),
            Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build(),
        ];
        Ok(self.instances(filters).await?.iter().map(|i| self.info(i)).filter(|b| b.preview.is_some()).collect())
    }

    /// Terminates `ids` in one call; as [`AwsProvider::stop_batch`], a
    /// rejected batch is retried one instance at a time.
    pub async fn terminate_batch(&self, ids: &[String]) -> Stopped {
        let mut out = Stopped::default();
        match self.client.terminate_instances().set_instance_ids(Some(ids.to_vec())).send().await {
            Ok(_) => out.stopped = ids.to_vec(),
            Err(e) if ids.len() > 1 => {
                tracing::debug!("batch terminate failed ({}); retrying one by one", aws_sdk_ec2::error::DisplayErrorContext(&e));
                for id in ids {
                    let one = Box::pin(self.terminate_batch(std::slice::from_ref(id))).await;
                    out.stopped.extend(one.stopped);
                    out.gone.extend(one.gone);
                    out.failed.extend(one.failed);
                }
            }
            Err(e) => {
                use aws_sdk_ec2::error::ProvideErrorMetadata;
                if e.code().is_some_and(|c| GONE_CODES.contains(&c)) {
                    out.gone = ids.to_vec();
                } else {
                    out.failed = vec![(ids[0].clone(), aws_sdk_ec2::error::DisplayErrorContext(&e).to_string())];
                }
            }
        }
        out
    }

    /// Stops `ids` in one call and tags them with `reason`. An instance that
    /// stopped or vanished meanwhile is not a failure: a batch the API
    /// rejects is retried one instance at a time to tell which.
    pub async fn stop_batch(&self, ids: &[String], reason: &str, hibernate: bool) -> Stopped {
        let mut out = Stopped::default();
        match self.stop_instances(ids, hibernate).await {
            Ok(_) => out.stopped = ids.to_vec(),
            Err(e) if ids.len() > 1 => {
                tracing::debug!("batch stop failed ({}); retrying one by one", aws_sdk_ec2::error::DisplayErrorContext(&e));
                for id in ids {
                    let one = Box::pin(self.stop_batch(std::slice::from_ref(id), reason, hibernate)).await;
                    out.stopped.extend(one.stopped);
                    out.gone.extend(one.gone);
                    out.failed.extend(one.failed);
                }
                return out;
            }
            Err(e) => {
                use aws_sdk_ec2::error::ProvideErrorMetadata;
                if e.code().is_some_and(|c| GONE_CODES.contains(&c)) {
                    out.gone = ids.to_vec();
                } else {
                    out.failed = vec![(ids[0].clone(), aws_sdk_ec2::error::DisplayErrorContext(&e).to_string())];
                }
                return out;
            }
        }
        // The reason is worth a call: "why did my box stop?" is answered by
        // `workstation status`. Tag values are limited to 256 characters.
        let value: String = reason.chars().take(256).collect();
        if let Err(e) = self.client.create_tags().set_resources(Some(out.stopped.clone())).tags(tag(tags::STOPPED_BY, &value)).send().await {
            tracing::warn!("tagging stopped boxes with the reason failed: {}", aws_sdk_ec2::error::DisplayErrorContext(&e));
        }
        out
    }
}
