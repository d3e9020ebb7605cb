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
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use super::error::aws_failure;
use super::{tags, BoxInfo, ProviderError, Result};
pub use crate::manifest::QueuePlan;
use crate::manifest::{Store, StoreKind};
use crate::poll::{Backoff, Pauses};

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

/// Refuses a plan whose names SQS would not take (at most 80
/// characters), before any queue is made.
pub fn check_length(plan: &QueuePlan) -> Result<()> {
    match [&plan.name, &plan.dead_letter].into_iter().find(|n| n.len() > NAME_MAX) {
        None => Ok(()),
        Some(name) => Err(ProviderError::Api {
            operation: "CreateQueue",
            message: format!(
                "queue {:?} would be named {name:?}, {} characters; SQS takes {NAME_MAX}. Use a shorter queue name in the manifest, or a shorter box name",
                plan.queue,
                name.len()
            ),
        }),
    }
}

/// Makes `plan`'s dead-letter queue and queue unless they exist, with
/// `tags` on both, and sets (again) what ties them: the queue's redrive to
/// its dead-letter queue, which takes messages from that queue only
/// (RedriveAllowPolicy `byQueue`; without it any queue of the account
/// could redrive into it), and no queue's into the queue (`denyAll`).
/// Returns their URLs; run again, it changes nothing.
pub async fn ensure(sqs: &Client, plan: &QueuePlan, tags: &HashMap<String, String>) -> Result<Made> {
    check_length(plan)?;
    let retention = [(QueueAttributeName::MessageRetentionPeriod, DEAD_LETTER_RETENTION_SECS.to_string())];
    let dead_letter_url = create(sqs, &plan.dead_letter, plan.fifo, tags, &retention).await?;
    let url = create(sqs, &plan.name, plan.fifo, tags, &[]).await?;
    let dead_letter_arn = arn(sqs, &dead_letter_url, &plan.dead_letter).await?;
    // The same account and region: the queue's ARN differs in its name.
    let queue_arn = format!("{}{}", &dead_letter_arn[..dead_letter_arn.len() - plan.dead_letter.len()], plan.name);
    let allow = serde_json::json!({"redrivePermission": "byQueue", "sourceQueueArns": [queue_arn]}).to_string();
    set(sqs, &dead_letter_url, &[(QueueAttributeName::RedriveAllowPolicy, allow)]).await?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVES.to_string()}).to_string();
    let deny = serde_json::json!({"redrivePermission": "denyAll"}).to_string();
    set(sqs, &url, &[(QueueAttributeName::RedrivePolicy, redrive), (QueueAttributeName::RedriveAllowPolicy, deny)]).await?;
    Ok(Made { url, dead_letter_url })
}

/// A queue just made may not be found for a moment (SQS is eventually
/// consistent: "wait one second after creating a queue before using it",
/// CreateQueue's reference): asked again for a while.
const SETTLING: Duration = Duration::from_secs(10);
const SETTLING_POLL: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
/// SQS keeps a deleted queue's name for 60 s ("you must wait at least 60
/// seconds before creating a queue with the same name"): a box destroyed
/// and made again at once waits that out.
const NAME_REUSE: Duration = Duration::from_secs(75);

// The loops below wait with `Pauses`, not `poll::until`: its async
// closure is not `Send`, which the provider's async_trait methods need.

async fn arn(sqs: &Client, url: &str, name: &str) -> Result<String> {
    let mut pauses = Pauses::new(SETTLING, SETTLING_POLL);
    loop {
        let asked = sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn).send().await;
        match asked {
            Ok(out) => {
                let arn = out.attributes.and_then(|mut a| a.remove(&QueueAttributeName::QueueArn));
                return arn
                    .filter(|arn| arn.ends_with(&format!(":{name}")))
                    .ok_or_else(|| ProviderError::Api { operation: "GetQueueAttributes", message: format!("no ARN ending in :{name} for queue {url}") });
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) && pauses.wait().await => {}
            Err(e) => return Err(aws_failure("GetQueueAttributes")(e)),
        }
    }
}

async fn set(sqs: &Client, url: &str, attributes: &[(QueueAttributeName, String)]) -> Result<()> {
    let mut pauses = Pauses::new(SETTLING, SETTLING_POLL);
    loop {
        let mut request = sqs.set_queue_attributes().queue_url(url);
        for (k, v) in attributes {
            request = request.attributes(k.clone(), v);
        }
        let sent = request.send().await;
        match sent {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) && pauses.wait().await => {}
            Err(e) => return Err(aws_failure("SetQueueAttributes")(e)),
        }
    }
}

/// The queue `name`: found (and, with `tags`, checked to carry them: a
/// queue of this name made by someone else is refused, not used), or made
/// with the attributes and tags.
async fn create(sqs: &Client, name: &str, fifo: bool, tags: &HashMap<String, String>, extra: &[(QueueAttributeName, String)]) -> Result<String> {
    let found = sqs.get_queue_url().queue_name(name).send().await;
    match found {
        Ok(found) => {
            let url = found.queue_url.ok_or_else(|| ProviderError::Api { operation: "GetQueueUrl", message: format!("no URL for queue {name}") })?;
            if !tags.is_empty() {
                let listed = sqs.list_queue_tags().queue_url(&url).send().await.map_err(aws_failure("ListQueueTags"))?;
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
        Err(e) if !e.as_service_error().is_some_and(|e| e.is_queue_does_not_exist()) => return Err(aws_failure("GetQueueUrl")(e)),
        Err(_) => {}
    }
    let mut pauses = Pauses::new(NAME_REUSE, Backoff::new(Duration::from_secs(5), Duration::from_secs(5)));
    loop {
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
        let sent = request.send().await;
        match sent {
            Ok(made) => return made.queue_url.ok_or_else(|| ProviderError::Api { operation: "CreateQueue", message: format!("no URL for queue {name}") }),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_queue_deleted_recently()) => {
                tracing::info!("queue {name} was deleted less than a minute ago; SQS takes its name again after 60 s: waiting");
                if !pauses.wait().await {
                    return Err(aws_failure("CreateQueue")(e));
                }
            }
            Err(e) => return Err(aws_failure("CreateQueue")(e)),
        }
    }
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
