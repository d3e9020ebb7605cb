//! A box's SQS queues on AWS (provider/queues.rs names and makes them):
//! made by each `up` (a second run finds them), deleted with the box by
//! `destroy`, and by `reap` before it ends an expired preview.

use std::collections::BTreeMap;

use super::instances::{api, AwsProvider};
use crate::manifest::{QueuePlan, Store};
use crate::provider::queues::{self, QueueEnv};
use crate::provider::{tags, BoxInfo, Result};

impl AwsProvider {
    /// Makes the box's queues (all at once) and returns their URLs, with
    /// the store's variable set to the SQS endpoint they are on.
    pub(super) async fn ensure_queues(&self, info: &BoxInfo, stores: &BTreeMap<String, Store>) -> Result<QueueEnv> {
        let Some((name, store)) = queues::sqs_store(stores) else { return Ok(QueueEnv::new()) };
        let sqs = &self.sqs;
        let prefix = queues::aws_prefix(&info.owner, &info.name);
        let box_tags = queues::box_tags(info);
        let plans: Vec<QueuePlan> = store.queues.iter().map(|queue| QueuePlan::new(&prefix, queue)).collect();
        // Every name first: none made when one cannot be.
        plans.iter().try_for_each(queues::check_length)?;
        let made = futures::future::try_join_all(plans.iter().map(|plan| {
            let box_tags = &box_tags;
            async move { queues::ensure(sqs, plan, box_tags).await.map(|made| (&plan.queue, made)) }
        }))
        .await?;
        let mut env = QueueEnv::new();
        // https://sqs.REGION.amazonaws.com/ACCOUNT/NAME: the endpoint is
        // what comes before the account, the same for every queue.
        let endpoint = made.first().and_then(|(_, m)| m.url.match_indices('/').nth(2).map(|(at, _)| m.url[..at].to_string()));
        env.extend(endpoint.map(|e| (store.url_env(name), e)));
        for (queue, made) in made {
            env.insert(store.queue_env(name, queue, false), made.url);
            env.insert(store.queue_env(name, queue, true), made.dead_letter_url);
        }
        Ok(env)
    }

    /// Deletes the queues of `owner`'s box `name`: those with its prefix
    /// whose tags say they are its (a queue of that name made by hand
    /// elsewhere is left). Queues already gone are not an error, so a
    /// `destroy` run again converges. Returns how many it deleted.
    pub async fn delete_queues(&self, owner: &str, name: &str) -> Result<usize> {
        let sqs = &self.sqs;
        let prefix = queues::aws_prefix(owner, name);
        let mut pages = sqs.list_queues().queue_name_prefix(&prefix).max_results(1000).into_paginator().send();
        let mut urls = Vec::new();
        while let Some(page) = pages.next().await {
            urls.extend(page.map_err(api("ListQueues"))?.queue_urls.unwrap_or_default());
        }
        let mut deleted = 0;
        for url in urls {
            let listed = sqs.list_queue_tags().queue_url(&url).send().await;
            let found = match listed {
                Ok(found) => found.tags.unwrap_or_default(),
                Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => continue,
                Err(e) => return Err(api("ListQueueTags")(e)),
            };
            if found.get(tags::OWNER).map(String::as_str) != Some(owner) || found.get(tags::NAME).map(String::as_str) != Some(name) {
                tracing::warn!("queue {url} has the prefix of {owner}'s box {name} but not its tags; left as it is");
                continue;
            }
            let deleting = sqs.delete_queue().queue_url(&url).send().await;
            match deleting {
                Ok(_) => deleted += 1,
                Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => {}
                Err(e) => return Err(api("DeleteQueue")(e)),
            }
        }
        Ok(deleted)
    }
}
