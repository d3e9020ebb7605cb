//! A failed cost query, in one line with its fix.

// The SDK crates share these types; pricing's names are as good as any.
use aws_sdk_pricing::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{action} is not allowed for these credentials: {fix}")]
    NotAllowed { action: &'static str, fix: &'static str },
    #[error("{action} failed: {message}")]
    Api { action: &'static str, message: String },
}

impl CostError {
    pub fn from_sdk<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(action: &'static str, e: SdkError<E, R>) -> CostError {
        let denied =
            e.as_service_error().and_then(|s| s.code()).is_some_and(|c| matches!(c, "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation"));
        if denied {
            return CostError::NotAllowed { action, fix: fix(action) };
        }
        let message = e.as_service_error().and_then(|s| s.message()).map(String::from).unwrap_or_else(|| DisplayErrorContext(&e).to_string());
        CostError::Api { action, message }
    }
}

/// What grants `action` (terraform/cost.tf; docs/operator.md "Costs").
fn fix(action: &str) -> &'static str {
    match action {
        "ce:GetCostAndUsage" => {
            "billed dollars come from Cost Explorer, which terraform grants to the platform role only (docs/operator.md, \"Costs\"); run with that profile, or `workstation cost --estimate` for the estimate alone"
        }
        _ => "terraform grants pricing:GetProducts to engineers and the platform role (docs/operator.md, \"Costs\"); ask your platform team to apply it",
    }
}
