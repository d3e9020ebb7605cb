//! The one place SDK clients are configured: aws-config's credential
//! chain, profiles, SSO and `AWS_ENDPOINT_URL` (moto in tests), retries,
//! and the counter of API calls that `reap` reports.

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::SharedCredentialsProvider;
use aws_sdk_ec2::config::SharedIdentityCache;

/// SDK attempts per API call. The SDK retries throttling
/// (RequestLimitExceeded) and transient errors with jittered exponential
/// backoff; five attempts ride out a burst of throttling during a fleet-wide
/// `reap` without hiding a real outage for long.
const MAX_ATTEMPTS: u32 = 5;

/// The profile the SDK was configured with (settings, `--profile`, else
/// AWS_PROFILE): failures name it in the command that fixes them.
static PROFILE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

pub fn profile_in_use() -> Option<String> {
    PROFILE.get().cloned().flatten().or_else(|| std::env::var("AWS_PROFILE").ok())
}

/// A role this process works as, with one session tag: a preview run
/// becomes the session of its pull request (terraform/preview.tf), whose
/// policy reaches only that pull request's box and records.
#[derive(Debug, Clone)]
pub struct Session {
    pub role_arn: String,
    pub session_name: String,
    pub tag: (String, String),
}

static SESSION: std::sync::OnceLock<Session> = std::sync::OnceLock::new();
/// The session's credentials and their cache, shared by every client: one
/// AssumeRole a run (each configuration would otherwise cache its own).
static SESSION_CREDENTIALS: tokio::sync::OnceCell<(SharedCredentialsProvider, SharedIdentityCache)> = tokio::sync::OnceCell::const_new();

/// Every client this process configures from now on works as `session`
/// (STS AssumeRole with its tag, from the credentials the chain finds).
/// The first call wins: one process is one run.
pub fn assume(session: Session) {
    let _ = SESSION.set(session);
}

/// The SDK configuration for `profile` (else the default chain) and
/// `region` (else aws-config's own lookup), as the [`assume`]d session if
/// any.
pub async fn config(profile: Option<&str>, region: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    // One process works with one profile; the first configuration names it.
    let _ = PROFILE.set(profile.map(String::from));
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    let base = loader.load().await;
    let Some(session) = SESSION.get() else { return base };
    let credentials = SESSION_CREDENTIALS
        .get_or_init(|| async {
            let tag = [session.tag.clone()];
            let role = AssumeRoleProvider::builder(&session.role_arn).session_name(&session.session_name).tags(tag).configure(&base).build().await;
            (SharedCredentialsProvider::new(role), IdentityCache::lazy().build())
        })
        .await;
    base.into_builder().credentials_provider(credentials.0.clone()).identity_cache(credentials.1.clone()).build()
}

/// Path-style addressing when the endpoint is overridden (a local S3 such
/// as moto has no per-bucket host names).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Counts API requests by operation (every attempt, retries included):
/// `reap` reports them, and its benchmark compares them with the minimum.
#[derive(Debug, Clone, Default)]
pub struct ApiCalls(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>);

impl ApiCalls {
    pub fn counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl aws_sdk_ec2::config::Intercept for ApiCalls {
    fn name(&self) -> &'static str {
        "ApiCalls"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>().map_or("unknown", |m| m.name()).to_owned();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(operation).or_default() += 1;
        Ok(())
    }
}

/// The EC2 client's configuration, as every caller builds it: with [`NoCapacityIsFinal`].
pub fn ec2_config(sdk: &SdkConfig) -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::from(sdk).retry_classifier(NoCapacityIsFinal)
}

/// EC2 answers InsufficientInstanceCapacity with HTTP 500, which the SDK
/// would retry like any server error. A zone out of an instance type stays
/// so for minutes, and `create` tries the next subnet or type itself
/// (launch.rs): retrying the same one only delays that.
#[derive(Debug)]
pub struct NoCapacityIsFinal;

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry for NoCapacityIsFinal {
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_sdk_ec2::error::ProvideErrorMetadata;
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        let Some(Err(e)) = ctx.output_or_error() else { return RetryAction::NoActionIndicated };
        let Some(e) = e.as_operation_error() else { return RetryAction::NoActionIndicated };
        let code = e
            .downcast_ref::<aws_sdk_ec2::operation::run_instances::RunInstancesError>()
            .and_then(|e| e.code())
            .or_else(|| e.downcast_ref::<aws_sdk_ec2::operation::start_instances::StartInstancesError>().and_then(|e| e.code()));
        match code {
            Some("InsufficientInstanceCapacity") => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "NoCapacityIsFinal"
    }
}
