//! First boot: publish the box's SSH host key as the EC2 tag
//! `workstation:host-key`, which the laptop pins (never a key seen on the
//! network).

use std::path::Path;

use super::self_api::SelfApi;
use super::BoxSideError;
use crate::provider::tags;

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

/// Tags the box's own instance with its SSH host key.
pub async fn publish(api: &SelfApi, key: &str) -> Result<(), BoxSideError> {
    api.tag(tags::HOST_KEY, key).await.map_err(|e| match e {
        BoxSideError::Api { message, .. } => BoxSideError::Tag { id: api.id().into(), message },
        other => other,
    })
}
