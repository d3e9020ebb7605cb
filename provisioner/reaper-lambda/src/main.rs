//! The account's Lambda functions, one build (custom runtime, `bootstrap`):
//! - `workstation reap`: EventBridge Scheduler invokes it with
//!   `{"manifest_url": "s3://..."}`, the deployed manifest
//!   (terraform/reaper.tf); the response is the reap report. Failed stops
//!   fail the invocation, so the schedule's retries and the dead-letter
//!   queue see them.
//! - the webhook endpoint: its function URL (terraform/webhooks.tf) invokes
//!   it with each third-party callback (payload format 2.0); it sends the
//!   callback to every running preview and team box (workstation::webhooks)
//!   and answers the third party. Its manifest is WORKSTATION_MANIFEST_URL.
//!
//! Which one an invocation is, the event tells: a function URL event has
//! `rawPath`.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use workstation::idle::reap::{self, ReapReport, Request};
use workstation::manifest::{deployed, Manifest, S3Url};
use workstation::provider::aws::AwsProvider;
use workstation::provider::AddressKind;
use workstation::webhooks::{self, FunctionUrlRequest, FunctionUrlResponse};

/// StopInstances calls in flight, as `workstation reap`'s default.
const CONCURRENCY: usize = 4;
/// Where the webhook endpoint reads the deployed manifest (terraform).
const MANIFEST_URL_ENV: &str = "WORKSTATION_MANIFEST_URL";

#[tokio::main]
async fn main() -> Result<(), Error> {
    workstation::logging::init(0);
    // Region and credentials come from the Lambda environment. Webhooks go
    // to boxes' private addresses: the function runs in the VPC.
    let sdk = workstation::provider::aws::sdk::config(None, None).await;
    // SQS: an expired preview's queues go with it.
    let provider = AwsProvider::new(
        aws_sdk_ec2::Client::from_conf(workstation::provider::aws::sdk::ec2_config(&sdk).build()),
        aws_sdk_sqs::Client::new(&sdk),
        AddressKind::Private,
    );
    let s3 = workstation::provider::aws::sdk::s3_client(&sdk);
    let (provider, s3) = (&provider, &s3);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if event.payload.get("rawPath").is_some() {
            let request: FunctionUrlRequest = serde_json::from_value(event.payload)?;
            return Ok::<Value, Error>(serde_json::to_value(webhook(provider, s3, request).await)?);
        }
        let request: Request = serde_json::from_value(event.payload)?;
        let report: ReapReport = reap::handle(provider, s3, request, CONCURRENCY).await?;
        tracing::info!(examined = report.examined, stopped = report.stopped.len(), gone = report.gone.len(), failed = report.failed.len(), "reaped");
        if !report.failed.is_empty() {
            return Err(Error::from(format!("{} boxes failed to stop: {:?}", report.failed.len(), report.failed)));
        }
        Ok(serde_json::to_value(report)?)
    }))
    .await
}

/// One callback: the deployed manifest (read per callback, so a published
/// manifest applies at once), then the fan-out. Its failures are answers
/// to the third party (5xx), never a failed invocation.
async fn webhook(provider: &AwsProvider, s3: &aws_sdk_s3::Client, request: FunctionUrlRequest) -> FunctionUrlResponse {
    let manifest = async {
        let url = std::env::var(MANIFEST_URL_ENV).map_err(|_| format!("{MANIFEST_URL_ENV} is not set (terraform/webhooks.tf sets it)"))?;
        let text = deployed::fetch(s3, &S3Url::parse(&url)?).await.map_err(|e| e.to_string())?;
        Manifest::parse(&text).map_err(|e| e.to_string())
    };
    match manifest.await {
        Ok(manifest) => {
            let handled = webhooks::handle(provider, &manifest, request, webhooks::TIMEOUT).await;
            let failed = handled.deliveries.iter().filter(|d| !d.accepted()).count();
            tracing::info!(name = handled.name, targets = handled.deliveries.len(), failed, status = handled.response.status_code, "webhook");
            handled.response
        }
        Err(why) => {
            tracing::error!(error = why, "webhook: no manifest");
            FunctionUrlResponse::json(503, &serde_json::json!({"error": "the endpoint has no manifest"}))
        }
    }
}
