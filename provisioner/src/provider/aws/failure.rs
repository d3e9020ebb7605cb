//! AWS failures in words: what went wrong and the command that fixes it,
//! in one line, instead of the SDK's `DispatchFailure { … }` chain (which
//! stays available with -v).

use std::error::Error;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// One failed AWS request, explained.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {cause}; {fix}")]
pub struct AwsFailure {
    pub operation: &'static str,
    pub kind: FailureKind,
    pub cause: String,
    pub fix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    NoCredentials,
    UnknownProfile,
    SsoExpired,
    NoRegion,
    Unreachable,
    Throttled,
    Unauthorized,
    BadCredentials,
    Service,
    Other,
}

impl FailureKind {
    /// Stable names, for `error.kind` in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::NoCredentials => "aws-no-credentials",
            FailureKind::UnknownProfile => "aws-unknown-profile",
            FailureKind::SsoExpired => "aws-session-expired",
            FailureKind::NoRegion => "aws-no-region",
            FailureKind::Unreachable => "aws-unreachable",
            FailureKind::Throttled => "aws-throttled",
            FailureKind::Unauthorized => "aws-unauthorized",
            FailureKind::BadCredentials => "aws-bad-credentials",
            FailureKind::Service => "aws-service",
            FailureKind::Other => "aws-other",
        }
    }
}

impl AwsFailure {
    /// Explains `err`, a failure of `operation`; the raw chain goes to the
    /// debug log (`-v`).
    pub fn of<E, R>(operation: &'static str, err: &SdkError<E, R>) -> AwsFailure
    where
        E: ProvideErrorMetadata + Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        tracing::debug!("{operation} failed: {}", DisplayErrorContext(err));
        let profile = super::sdk::profile_in_use();
        let (kind, cause, fix) = match err {
            SdkError::ServiceError(e) => service(e.err().code(), e.err().message()),
            SdkError::TimeoutError(_) => unreachable_endpoint("the request timed out"),
            _ => {
                let chain = chain(err);
                let dispatch_io = matches!(err, SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout());
                local(&chain, dispatch_io, profile.as_deref())
            }
        };
        AwsFailure { operation, kind, cause, fix }
    }
}

/// Every message in the error's source chain, outermost first.
fn chain(err: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

type Explained = (FailureKind, String, String);

/// Failures before AWS answered: configuration, credentials, network.
fn local(chain: &[String], dispatch_io: bool, profile: Option<&str>) -> Explained {
    let has = |needle: &str| chain.iter().any(|m| m.to_lowercase().contains(&needle.to_lowercase()));
    let login = match profile {
        Some(p) => format!("aws sso login --profile {p}"),
        None => "aws sso login --profile PROFILE".into(),
    };
    let undefined = chain.iter().find_map(|m| m.split("profile `").nth(1).and_then(|r| r.split('`').next())).filter(|_| has("was not defined"));
    // Without any ~/.aws/config the SDK only says its profile provider was
    // "not enabled"; a profile was asked for all the same.
    let no_config = profile.filter(|_| has("Profile: the credential provider was not enabled"));
    if let Some(p) = undefined.or(no_config) {
        return (
            FailureKind::UnknownProfile,
            format!("the AWS profile {p:?} is not in ~/.aws/config"),
            "run `aws configure list-profiles` (or `aws configure sso` to add it) and set `[aws] profile` in ~/.config/workstation/config.toml, or pass --profile".into(),
        );
    }
    if has("sso") && (has("expired") || has("token") || has("refresh")) {
        return (FailureKind::SsoExpired, "the AWS SSO session has expired".into(), format!("run `{login}`"));
    }
    if has("region") && !dispatch_io {
        return (
            FailureKind::NoRegion,
            "no AWS region is configured".into(),
            "set `[aws] region` in ~/.config/workstation/config.toml, `region` in workstation.toml's [box], or pass --region".into(),
        );
    }
    if has("credential") {
        return (
            FailureKind::NoCredentials,
            "no AWS credentials were found".into(),
            format!("run `{login}` (SSO) or `aws configure`, or set `[aws] profile` in ~/.config/workstation/config.toml"),
        );
    }
    if dispatch_io {
        let detail = chain.last().cloned().unwrap_or_default();
        return unreachable_endpoint(&format!("cannot reach the AWS API ({detail})"));
    }
    (FailureKind::Other, chain.last().cloned().unwrap_or_else(|| "unknown error".into()), "run again with -v for the full error".into())
}

fn unreachable_endpoint(what: &str) -> Explained {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let fix = match endpoint {
        Some(url) => format!("check AWS_ENDPOINT_URL ({url}) and that it is up"),
        None => "check your network, VPN and proxy settings, then try again".into(),
    };
    (FailureKind::Unreachable, what.into(), fix)
}

/// Failures AWS answered with a code.
fn service(code: Option<&str>, message: Option<&str>) -> Explained {
    let message = message.unwrap_or_default();
    match code.unwrap_or_default() {
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
            let fix = match message.split("Encoded authorization failure message:").nth(1).map(str::trim) {
                Some(encoded) if !encoded.is_empty() => format!(
                    "ask the platform team for the permission; `aws sts decode-authorization-message --encoded-message {}` shows the denied action and resource",
                    encoded.split_whitespace().next().unwrap_or(encoded)
                ),
                _ => "ask the platform team for the permission (terraform/iam.tf lists what engineers may do)".into(),
            };
            let first = message.split(". Encoded").next().unwrap_or(message).trim_end_matches('.');
            (FailureKind::Unauthorized, format!("not allowed: {first}"), fix)
        }
        "AuthFailure" | "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" => (
            FailureKind::BadCredentials,
            "AWS did not accept your credentials".into(),
            "check the profile in use (`aws sts get-caller-identity`), or log in again with `aws sso login`".into(),
        ),
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
            (FailureKind::SsoExpired, "your AWS session has expired".into(), "log in again (`aws sso login --profile PROFILE`)".into())
        }
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "TooManyRequestsException" => (
            FailureKind::Throttled,
            "AWS is throttling this account's requests (the SDK retried already)".into(),
            "wait a minute and run the command again".into(),
        ),
        "" => (FailureKind::Service, format!("AWS refused the request: {message}"), "run again with -v for the full error".into()),
        code => (FailureKind::Service, format!("{code}: {message}"), "run again with -v for the full error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(chain: &[&str], io: bool) -> Explained {
        local(&chain.iter().map(|s| s.to_string()).collect::<Vec<_>>(), io, Some("dev"))
    }

    #[test]
    fn configuration_failures_name_their_fix() {
        let (kind, cause, fix) = words(&["dispatch failure", "other", "profile `nope` was not defined: not in config"], false);
        assert_eq!(kind, FailureKind::UnknownProfile);
        assert!(cause.contains("\"nope\"") && fix.contains("list-profiles"), "{cause}; {fix}");
        let (kind, _, fix) =
            words(&["dispatch failure", "an error occurred while loading credentials", "the SSO token has expired and cannot be refreshed"], false);
        assert_eq!((kind, fix.as_str()), (FailureKind::SsoExpired, "run `aws sso login --profile dev`"));
        let (kind, ..) = words(&["dispatch failure", "the credential provider was not enabled"], false);
        assert_eq!(kind, FailureKind::NoCredentials);
        let no_config = ["no credentials found in chain. Attempted:\n  Profile: the credential provider was not enabled\n  Environment: ..."];
        let (kind, cause, _) = words(&no_config, false);
        assert_eq!((kind, cause.as_str()), (FailureKind::UnknownProfile, "the AWS profile \"dev\" is not in ~/.aws/config"));
        let (kind, ..) = local(&no_config.map(String::from), false, None);
        assert_eq!(kind, FailureKind::NoCredentials, "without a profile asked for, it is the credentials");
        let (kind, ..) = words(&["failed to construct request", "A region must be set when sending requests"], false);
        assert_eq!(kind, FailureKind::NoRegion);
        let (kind, cause, _) = words(&["dispatch failure", "io error", "Connection refused (os error 111)"], true);
        assert_eq!(kind, FailureKind::Unreachable);
        assert!(cause.contains("Connection refused"), "{cause}");
    }

    #[test]
    fn service_failures_name_their_fix() {
        let (kind, cause, fix) = service(
            Some("UnauthorizedOperation"),
            Some("You are not authorized to perform this operation. User: arn:aws:iam::1:user/bob is not authorized to perform: ec2:StopInstances. Encoded authorization failure message: AbC123-xyz"),
        );
        assert_eq!(kind, FailureKind::Unauthorized);
        assert!(cause.starts_with("not allowed: You are not authorized"), "{cause}");
        assert!(fix.contains("--encoded-message AbC123-xyz"), "{fix}");
        assert_eq!(service(Some("RequestLimitExceeded"), Some("Request limit exceeded.")).0, FailureKind::Throttled);
        assert_eq!(service(Some("AuthFailure"), None).0, FailureKind::BadCredentials);
        assert_eq!(service(Some("ExpiredToken"), None).0, FailureKind::SsoExpired);
        let (kind, cause, _) = service(Some("InvalidParameterValue"), Some("bad subnet"));
        assert_eq!((kind, cause.as_str()), (FailureKind::Service, "InvalidParameterValue: bad subnet"));
    }
}
