//! One check of `doctor`: what it found and, for a failure, the fix.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Fail,
    /// Not checked: something it needs failed, or it does not apply.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub outcome: Outcome,
    pub detail: String,
    /// What to run or change, for a failure.
    pub fix: Option<String>,
}

pub(super) fn ok(check: &str, detail: impl Into<String>) -> Check {
    Check { check: check.into(), outcome: Outcome::Ok, detail: detail.into(), fix: None }
}

pub(super) fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check { check: check.into(), outcome: Outcome::Fail, detail: detail.into(), fix: Some(fix.into()) }
}

pub(super) fn skip(check: &str, detail: impl Into<String>) -> Check {
    Check { check: check.into(), outcome: Outcome::Skip, detail: detail.into(), fix: None }
}
