//! The queues of a box's `sqs` store, made with the SDK: each queue with a
//! dead-letter queue of its own. A box in AWS gets real SQS queues, named
//! after its owner and name, tagged with both (the box role's and the
//! engineers' policies match those tags: terraform/queues.tf) and
//! encrypted; a local box gets them from the SQS server its `sqs` store
//! runs beside its services (`workstation box queues` makes them there).
//!
//! Facts from AWS's CreateQueue reference (also in botocore's SQS model):
//! a name is at most 80 characters of A-Z, a-z, 0-9, '-' and '_', a FIFO
//! queue's ends in `.fifo` and is made with `FifoQueue`, and "the
//! dead-letter queue of a FIFO queue must also be a FIFO queue". A queue
//! found is used as it is (CreateQueue would fail on one whose attributes
//! differ), once its tags say it is this box's. SSE-SQS is the default only
//! on TLS endpoints, so it is asked for (`SqsManagedSseEnabled`).

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use super::{tags, BoxInfo, ProviderError, Result};
pub use crate::manifest::QueuePlan;
use crate::manifest::{Store, StoreKind};

/// Receives of one message before SQS moves it to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;
/// Dead letters are kept for SQS's longest, 14 days, to be looked at.
const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 3600;
/// SQS's longest queue name.
const NAME_MAX: usize = 80;
/// The account moto's server puts in its queue URLs (moto/core/models.py
/// DEFAULT_ACCOUNT_ID): a local box's server is moto's.
const LOCAL_ACCOUNT: &str = "123456789012";

/// A box's queues on AWS start with `ws_OWNER_BOX_`: owner and box names
/// have no '_' (manifest/name.rs), so one box's prefix is never the start
/// of another's, and the policies can name an owner's queues by it.
pub fn aws_prefix(owner: &str, name: &str) -> String {
    format!("ws_{owner}_{name}_")
}

/// The queue URLs services get for the manifest's sqs store, by variable
/// (manifest/store.rs `queue_env`), with the store's own variable as the
/// endpoint.
pub type QueueEnv = std::collections::BTreeMap<String, String>;

/// The manifest's sqs store and its queues, if it has one (validate.rs
/// allows one).
pub fn sqs_store(stores: &std::collections::BTreeMap<String, Store>) -> Option<(&String, &Store)> {
    stores.iter().find(|(_, s)| s.kind == StoreKind::Sqs)
}

/// What a local box's services get: its own server's URLs, which moto
/// builds from the address it was asked at (127.0.0.1) and its account.
pub fn local_env(stores: &std::collections::BTreeMap<String, Store>) -> QueueEnv {
    let Some((name, store)) = sqs_store(stores) else { return QueueEnv::new() };
    let endpoint = store.url(name);
    // Services' AWS SDKs send SQS requests to the box's server unasked.
    let mut env = QueueEnv::from([(store.url_env(name), endpoint.clone()), ("AWS_ENDPOINT_URL_SQS".to_string(), endpoint.clone())]);
    for queue in &store.queues {
        let plan = QueuePlan::new("", queue);
        env.insert(store.queue_env(name, queue, false), local_url(&endpoint, &plan.name));
        env.insert(store.queue_env(name, queue, true), local_url(&endpoint, &plan.dead_letter));
    }
    env
}

/// A queue's URL on a local box's server at `endpoint`.
pub fn local_url(endpoint: &str, name: &str) -> String {
    format!("{endpoint}/{LOCAL_ACCOUNT}/{name}")
}

/// A queue and its dead-letter queue, as made.
#[derive(Debug, Clone)]
pub struct Made {
    pub url: String,
    pub dead_letter_url: String,
}

/// Makes `plan`'s dead-letter queue and queue unless they exist (with
/// these attributes), with `tags` on both, and returns their URLs. Run
/// again, it changes nothing.
pub async fn ensure(sqs: &Client, plan: &QueuePlan, tags: &HashMap<String, String>) -> Result<Made> {
    for name in [&plan.name, &plan.dead_letter] {
        if name.len() > NAME_MAX {
            return Err(ProviderError::Api {
                operation: "CreateQueue",
                message: format!(
                    "queue {:?} would be named {name:?}, {} characters; SQS takes {NAME_MAX}. Use a shorter queue name in the manifest, or a shorter box name",
                    plan.queue,
                    name.len()
                ),
            });
        }
    }
    let dead_letter_url =
        create(sqs, &plan.dead_letter, plan.fifo, tags, &[(QueueAttributeName::MessageRetentionPeriod, DEAD_LETTER_RETENTION_SECS.to_string())]).await?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(failed("GetQueueAttributes"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| ProviderError::Api { operation: "GetQueueAttributes", message: format!("no QueueArn for {}", plan.dead_letter) })?;
    // Set apart from CreateQueue, so that it converges on a queue found.
    let url = create(sqs, &plan.name, plan.fifo, tags, &[]).await?;
    let redrive = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES.to_string()}).to_string();
    sqs.set_queue_attributes().queue_url(&url).attributes(QueueAttributeName::RedrivePolicy, redrive).send().await.map_err(failed("SetQueueAttributes"))?;
    Ok(Made { url, dead_letter_url })
}

/// The queue `name`: found (and, with `tags`, checked to carry them: a
/// queue of this name made by someone else is refused, not used), or made
/// with the attributes and tags.
async fn create(sqs: &Client, name: &str, fifo: bool, tags: &HashMap<String, String>, extra: &[(QueueAttributeName, String)]) -> Result<String> {
    let found = sqs.get_queue_url().queue_name(name).send().await;
    match found {
        Ok(found) => {
            let url = found.queue_url.unwrap_or_default();
            if !tags.is_empty() {
                let listed = sqs.list_queue_tags().queue_url(&url).send().await.map_err(failed("ListQueueTags"))?;
                let theirs = listed.tags.unwrap_or_default();
                let mut wrong: Vec<String> = tags
                    .iter()
                    .filter(|(k, v)| theirs.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k} {:?}, not {v:?}", theirs.get(k).map(String::as_str).unwrap_or("missing")))
                    .collect();
                if !wrong.is_empty() {
                    wrong.sort();
                    return Err(ProviderError::Api {
                        operation: "GetQueueUrl",
                        message: format!(
                            "queue {name} exists but is not this box's ({}); nothing was sent to it. Ask the platform team whose it is",
                            wrong.join(", ")
                        ),
                    });
                }
            }
            return Ok(url);
        }
        Err(e) if !e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => return Err(failed("GetQueueUrl")(e)),
        Err(_) => {}
    }
    let mut request = sqs.create_queue().queue_name(name).attributes(QueueAttributeName::SqsManagedSseEnabled, "true");
    if fifo {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    for (k, v) in extra {
        request = request.attributes(k.clone(), v);
    }
    if !tags.is_empty() {
        request = request.set_tags(Some(tags.clone()));
    }
    let made = request.send().await.map_err(failed("CreateQueue"))?;
    made.queue_url.ok_or_else(|| ProviderError::Api { operation: "CreateQueue", message: format!("no URL for queue {name}") })
}

/// A failed SQS request, explained as the provider's others are.
fn failed<E, R>(operation: &'static str) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> ProviderError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    move |e| ProviderError::Aws(super::aws::failure::AwsFailure::of(operation, &e))
}

/// The tags a box's queues carry on AWS: its owner and name (what the
/// policies match), and its pull request for a preview's.
pub fn box_tags(info: &BoxInfo) -> HashMap<String, String> {
    let mut out = HashMap::from([(tags::OWNER.to_string(), info.owner.clone()), (tags::NAME.to_string(), info.name.clone())]);
    if let Some(preview) = &info.preview {
        out.insert(tags::PREVIEW.into(), preview.number.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_box_gets_its_servers_urls_by_variable() {
        let m = crate::manifest::Manifest::parse(
            "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n\
             [stores.jobs]\nkind = \"sqs\"\nqueues = [\"emails\", \"payments.fifo\"]\n",
        )
        .unwrap();
        let env = local_env(&m.stores);
        assert_eq!(env["WORKSTATION_SQS_JOBS_URL"], "http://127.0.0.1:9324");
        assert_eq!(env["WORKSTATION_SQS_JOBS_EMAILS_URL"], "http://127.0.0.1:9324/123456789012/emails");
        assert_eq!(env["WORKSTATION_SQS_JOBS_PAYMENTS_DLQ_URL"], "http://127.0.0.1:9324/123456789012/payments_dlq.fifo");
        assert_eq!(env["AWS_ENDPOINT_URL_SQS"], "http://127.0.0.1:9324");
        assert_eq!(env.len(), 6);
    }
}
