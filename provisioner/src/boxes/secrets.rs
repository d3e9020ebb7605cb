//! Where an engineer's own secret values live, for `workstation secrets`:
//! Systems Manager under `/workstation/<owner>/` for boxes in AWS (their
//! role reads them there), the laptop's 0600 file for local boxes (handed
//! over at `up`). Values come in on stdin and never go out: `list` gives
//! names only.

use crate::laptop::secrets::{LaptopSecrets, LaptopSecretsError};
use crate::manifest::name::Owner;
use crate::manifest::secret::check_own_name;
use crate::manifest::SecretRef;
use crate::provider::aws::secrets::OwnParameters;

pub enum SecretStore {
    Laptop(LaptopSecrets),
    Ssm(OwnParameters),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("{0}")]
    Name(String),
    #[error(transparent)]
    Laptop(#[from] LaptopSecretsError),
    #[error(transparent)]
    Ssm(#[from] crate::provider::aws::secrets::ParameterError),
}

impl SecretStore {
    /// Where `owner`'s value `name` lives, as a manifest refers to it.
    pub fn reference(owner: &Owner, name: &str) -> Result<SecretRef, SecretStoreError> {
        check_own_name(name).map_err(SecretStoreError::Name)?;
        Ok(SecretRef::own(owner.as_str(), name))
    }

    pub async fn set(&self, owner: &Owner, name: &str, value: &str) -> Result<SecretRef, SecretStoreError> {
        let reference = Self::reference(owner, name)?;
        match self {
            SecretStore::Laptop(l) => l.set(&reference, value)?,
            SecretStore::Ssm(s) => s.put(owner, name, value).await?,
        }
        Ok(reference)
    }

    pub async fn names(&self, owner: &Owner) -> Result<Vec<String>, SecretStoreError> {
        Ok(match self {
            SecretStore::Laptop(l) => l.names(owner)?,
            SecretStore::Ssm(s) => s.names(owner).await?,
        })
    }

    /// Whether there was one to remove.
    pub async fn remove(&self, owner: &Owner, name: &str) -> Result<bool, SecretStoreError> {
        let reference = Self::reference(owner, name)?;
        Ok(match self {
            SecretStore::Laptop(l) => l.remove(&reference)?,
            SecretStore::Ssm(s) => s.delete(owner, name).await?,
        })
    }

    /// Where the values live, for messages.
    pub fn place(&self, owner: &Owner) -> String {
        match self {
            SecretStore::Laptop(l) => l.path().display().to_string(),
            SecretStore::Ssm(_) => format!("Systems Manager, {}/", crate::manifest::secret::own_path(owner.as_str())),
        }
    }
}
