//! `workstation box queues`: on a local box, the queues of its `sqs` store,
//! made in the SQS server beside its services each time that server starts
//! (moto keeps them in memory), with the same code and dead-letter queues
//! as on AWS (provider/queues.rs). The store's check asks the server for
//! each queue (stack/stores.rs `ready_command`).

use std::time::Duration;

use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};

use super::BoxSideError;
use crate::poll::{self, Backoff};
use crate::provider::queues::{self, QueuePlan};

/// A Python server takes a second or two to listen.
const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes `names` in the server at `endpoint` (the box's loopback) and
/// checks that each URL is the one services were given; with `check`,
/// only whether they are all there (the store's health check).
pub async fn make(endpoint: &str, names: &[String], check: bool) -> Result<(), BoxSideError> {
    let failed = |e: &dyn std::fmt::Display| BoxSideError::Io(format!("the SQS server at {endpoint}: {e}"));
    // The local server checks no signature; the SDK signs with something.
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "workstation-local-sqs"))
        // The waits below retry; a check answers at once.
        .retry_config(RetryConfig::disabled())
        .build();
    // Not AWS: the box's own server, which no IAM policy governs.
    let server = aws_sdk_sqs::Client::from_conf(config);
    if check {
        // The dead-letter queue is made first, the queue last.
        for plan in names.iter().map(|n| QueuePlan::new("", n)) {
            for name in [&plan.dead_letter, &plan.name] {
                let asked = server.get_queue_url().queue_name(name).send().await;
                asked.map_err(|e| failed(&format!("no queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e))))?;
            }
        }
        return Ok(());
    }
    let up = poll::until(SERVER_TIMEOUT, Backoff::new(Duration::from_millis(50), Duration::from_millis(500)), async || {
        Ok::<_, BoxSideError>(server.list_queues().send().await.ok().map(|_| ()))
    })
    .await?;
    if up.is_none() {
        return Err(failed(&format!("not answering after {}s", SERVER_TIMEOUT.as_secs())));
    }
    for name in names {
        let plan = QueuePlan::new("", name);
        let made = queues::ensure(&server, &plan, &Default::default()).await.map_err(|e| failed(&e))?;
        for (got, want) in [(&made.url, &plan.name), (&made.dead_letter_url, &plan.dead_letter)] {
            let given = queues::local_url(endpoint, want);
            if *got != given {
                return Err(failed(&format!("queue {want} is at {got}, but services were given {given}; run moto's server without MOTO_ACCOUNT_ID")));
            }
        }
    }
    Ok(())
}
