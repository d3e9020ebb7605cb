//! Code that runs on the box itself (first boot, timers), not the laptop.

use std::path::Path;

use aws_config::imds;
use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::types::Tag;

use crate::provider::tags;

#[derive(Debug, thiserror::Error)]
pub enum BoxSideError {
    #[error("cannot read host key {path}; is sshd's key generated yet?")]
    ReadKey {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an OpenSSH public key")]
    BadKey { path: std::path::PathBuf },
    #[error("cannot ask the instance metadata service for {what} (IMDSv2): {message}")]
    Metadata { what: &'static str, message: String },
    #[error("tagging instance {id} with its host key failed: {message}")]
    Tag { id: String, message: String },
}

/// `ssh-ed25519 AAAA...` without the comment: the comment is the box's
/// business, and tag values are limited to 256 characters.
pub fn read_host_key(path: &Path) -> Result<String, BoxSideError> {
    let text = std::fs::read_to_string(path).map_err(|source| BoxSideError::ReadKey { path: path.into(), source })?;
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(blob)) if kind.starts_with("ssh-") || kind.starts_with("ecdsa-") => Ok(format!("{kind} {blob}")),
        _ => Err(BoxSideError::BadKey { path: path.into() }),
    }
}

/// This instance's id and region, from IMDSv2 (session token first).
pub async fn instance_identity(client: &imds::Client) -> Result<(String, String), BoxSideError> {
    let get = |what: &'static str, path: &'static str| async move {
        client
            .get(path)
            .await
            .map(|v| v.as_ref().trim().to_string())
            .map_err(|e| BoxSideError::Metadata { what, message: DisplayErrorContext(&e).to_string() })
    };
    Ok((get("instance id", "/latest/meta-data/instance-id").await?, get("region", "/latest/meta-data/placement/region").await?))
}

/// Tags the box's own instance with its SSH host key. The instance role
/// allows CreateTags only on the instance itself (see terraform/).
pub async fn publish_host_key(client: &aws_sdk_ec2::Client, instance_id: &str, key: &str) -> Result<(), BoxSideError> {
    client
        .create_tags()
        .resources(instance_id)
        .tags(Tag::builder().key(tags::HOST_KEY).value(key).build())
        .send()
        .await
        .map_err(|e| BoxSideError::Tag { id: instance_id.into(), message: DisplayErrorContext(&e).to_string() })?;
    Ok(())
}
