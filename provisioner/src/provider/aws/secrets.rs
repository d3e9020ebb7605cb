//! An engineer's own secret values in Systems Manager: SecureString
//! parameters under `/workstation/<owner>/`, which the engineers' policy
//! lets each write only for themselves and the box role of that owner
//! read (terraform/iam.tf). Listing asks for names, never values.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::manifest::name::Owner;
use crate::manifest::secret::own_path;
use crate::manifest::SecretRef;

use super::failure::AwsFailure;

pub struct OwnParameters {
    ssm: aws_sdk_ssm::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("Systems Manager {operation} on {path}: {message}")]
pub struct ParameterError {
    pub operation: &'static str,
    pub path: String,
    pub message: String,
}

impl OwnParameters {
    pub fn new(sdk: &aws_config::SdkConfig) -> OwnParameters {
        OwnParameters { ssm: aws_sdk_ssm::Client::new(sdk) }
    }

    /// Writes (or replaces) `owner`'s value `name`, encrypted with the
    /// account's default key for Systems Manager.
    pub async fn put(&self, owner: &Owner, name: &str, value: &str) -> Result<(), ParameterError> {
        let path = SecretRef::own(owner.as_str(), name).name().to_owned();
        let put = self.ssm.put_parameter().name(&path).value(value).r#type(ParameterType::SecureString).overwrite(true);
        put.send().await.map(drop).map_err(|e| failed("PutParameter", &path, &e))
    }

    /// The names of `owner`'s values, without their values.
    pub async fn names(&self, owner: &Owner) -> Result<Vec<String>, ParameterError> {
        let path = own_path(owner.as_str());
        let mut names = Vec::new();
        let mut pages = self.ssm.get_parameters_by_path().path(&path).with_decryption(false).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failed("GetParametersByPath", &path, &e))?;
            names.extend(page.parameters().iter().filter_map(|p| p.name()).filter_map(|n| n.strip_prefix(&format!("{path}/")).map(String::from)));
        }
        names.sort();
        Ok(names)
    }

    /// Whether there was one to delete.
    pub async fn delete(&self, owner: &Owner, name: &str) -> Result<bool, ParameterError> {
        let path = SecretRef::own(owner.as_str(), name).name().to_owned();
        match self.ssm.delete_parameter().name(&path).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(false),
            Err(e) => Err(failed("DeleteParameter", &path, &e)),
        }
    }
}

/// AWS's own words, explained ([`AwsFailure`]): never the SDK's full
/// error, whose request or response could hold a value.
fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(operation: &'static str, path: &str, e: &SdkError<E, HttpResponse>) -> ParameterError {
    let message = match e.code() {
        Some("AccessDeniedException") => "not allowed: each engineer writes only /workstation/<their owner>/* (terraform/iam.tf, OwnSecrets)".into(),
        _ => AwsFailure::of(operation, e).to_string(),
    };
    ParameterError { operation, path: path.into(), message }
}
