//! `workstation reap` as an AWS Lambda (custom runtime, `bootstrap`):
//! EventBridge Scheduler invokes it with `{"manifest_url": "s3://..."}`, the
//! deployed manifest (terraform/reaper.tf); the response is the reap report. Failed stops
//! fail the invocation, so the schedule's retries and the dead-letter
//! queue see them.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use workstation::idle::reap::{self, ReapReport, Request};
use workstation::provider::aws::AwsProvider;
use workstation::provider::AddressKind;

/// StopInstances calls in flight, as `workstation reap`'s default.
const CONCURRENCY: usize = 4;

#[tokio::main]
async fn main() -> Result<(), Error> {
    workstation::logging::init(0);
    // Region and credentials come from the Lambda environment.
    let sdk = workstation::provider::aws::sdk::config(None, None).await;
    let provider = AwsProvider::new(aws_sdk_ec2::Client::new(&sdk), AddressKind::Private);
    let s3 = workstation::provider::aws::sdk::s3_client(&sdk);
    let (provider, s3) = (&provider, &s3);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| async move {
        let report: ReapReport = reap::handle(provider, s3, event.payload, CONCURRENCY).await?;
        tracing::info!(examined = report.examined, stopped = report.stopped.len(), gone = report.gone.len(), failed = report.failed.len(), "reaped");
        if !report.failed.is_empty() {
            return Err(Error::from(format!("{} boxes failed to stop: {:?}", report.failed.len(), report.failed)));
        }
        Ok::<_, Error>(report)
    }))
    .await
}
