//! Reading secrets on a box in AWS, with the box's own role: Systems
//! Manager parameters (decrypted) and Secrets Manager secret strings. The
//! role reads `/workstation/shared/*` and its owner's `/workstation/<owner>/*`
//! only (terraform/iam.tf, box_secrets), so a box that claims another
//! owner in its tags still reads nothing of theirs.

use aws_config::imds;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::manifest::name::Owner;
use crate::manifest::SecretRef;
use crate::provider::aws::failure::AwsFailure;
use crate::provider::tags;

pub struct AwsSecrets {
    ssm: aws_sdk_ssm::Client,
    secretsmanager: aws_sdk_secretsmanager::Client,
}

impl AwsSecrets {
    pub async fn new() -> AwsSecrets {
        // The region from the environment or, on EC2, instance metadata
        // (the SDK's default chain); credentials from the instance role.
        let sdk = crate::provider::aws::sdk::config(None, None).await;
        AwsSecrets { ssm: aws_sdk_ssm::Client::new(&sdk), secretsmanager: aws_sdk_secretsmanager::Client::new(&sdk) }
    }

    /// The value `reference` (owner already filled in) names.
    pub async fn read(&self, reference: &SecretRef) -> Result<String, String> {
        match reference {
            SecretRef::Ssm(path) => {
                let out = self.ssm.get_parameter().name(path).with_decryption(true).send().await.map_err(|e| why("GetParameter", &e, "ParameterNotFound"))?;
                out.parameter().and_then(|p| p.value()).map(String::from).ok_or_else(|| "Systems Manager returned no value".into())
            }
            SecretRef::SecretsManager(id) => {
                let out =
                    self.secretsmanager.get_secret_value().secret_id(id).send().await.map_err(|e| why("GetSecretValue", &e, "ResourceNotFoundException"))?;
                out.secret_string().map(String::from).ok_or_else(|| "the secret is binary; store it as a string (SecretString)".into())
            }
        }
    }
}

/// Why a read failed, in words that name the fix: AWS's code and message,
/// or the explained failure ([`AwsFailure`]). Never the SDK's full error,
/// whose raw response may hold the value (an answer that failed to parse).
fn why<E: ProvideErrorMetadata + std::error::Error + 'static>(operation: &'static str, e: &SdkError<E, HttpResponse>, not_found: &str) -> String {
    match e.code() {
        Some(code) if code == not_found => "it does not exist (create it, or for your own values `workstation secrets set NAME`)".into(),
        Some("AccessDeniedException" | "AccessDenied") => {
            "the box's role may not read it: boxes read /workstation/shared/* and their owner's /workstation/<owner>/* (terraform/secrets.tf)".into()
        }
        _ => AwsFailure::of(operation, e).to_string(),
    }
}

/// This box's owner, from its `workstation:owner` tag in instance metadata:
/// what `{owner}` in a reference stands for. A tag is anyone's to write on
/// their own box, so it must be an owner name before it becomes a path;
/// the role decides what is readable whatever it says.
pub async fn owner_from_metadata() -> Result<Owner, String> {
    let client = imds::Client::builder().build();
    let path = format!("/latest/meta-data/tags/instance/{}", tags::OWNER);
    let value = client.get(&path).await.map_err(|e| DisplayErrorContext(&e).to_string())?;
    value.as_ref().trim().parse::<Owner>().map_err(|e| format!("the {} tag is not an owner name: {e}", tags::OWNER))
}
