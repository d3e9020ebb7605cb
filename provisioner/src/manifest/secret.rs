//! A service's `secrets = { NAME = "ssm:/path" }`: where a value lives,
//! never the value. The box resolves it when the program starts
//! (boxside/launch.rs), so the manifest, the rendered configuration and
//! everything the laptop prints hold only these references.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Stands for the box's owner in a reference, so one manifest names each
/// engineer's own value: `ssm:/workstation/{owner}/github_token`.
pub const OWNER: &str = "{owner}";

/// Where a secret's value lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// A Systems Manager parameter (SecureString or String), by its path.
    Ssm(String),
    /// A Secrets Manager secret's string, by name or ARN.
    SecretsManager(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a secret reference: {why}; write \"ssm:/workstation/shared/NAME\", \"ssm:/workstation/{{owner}}/NAME\" or \"secretsmanager:NAME-OR-ARN\""
)]
pub struct BadSecretRef {
    pub given: String,
    pub why: &'static str,
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, BadSecretRef> {
        let bad = |why| BadSecretRef { given: s.into(), why };
        let (kind, rest) = s.split_once(':').ok_or(bad("it has no kind before ':'"))?;
        // Parameter names: a-zA-Z0-9_.-/ (Systems Manager's "Requirements
        // and constraints for parameter names"); secret names add +=@ and
        // an ARN's ':' (Secrets Manager's CreateSecret, Name).
        let (allowed, made): (&str, fn(String) -> SecretRef) = match kind {
            "ssm" => ("_.-/", SecretRef::Ssm),
            "secretsmanager" => ("_.-/+=@:", SecretRef::SecretsManager),
            _ => return Err(bad("the kind must be ssm or secretsmanager")),
        };
        if rest.is_empty() || rest.len() > 2048 {
            return Err(bad("the name is empty or longer than 2048 characters"));
        }
        if kind == "ssm" && (!rest.starts_with('/') || rest.contains("//") || rest.ends_with('/')) {
            return Err(bad("a parameter path starts with '/' and has no empty part"));
        }
        let plain = rest.replace(OWNER, "");
        if !plain.chars().all(|c| c.is_ascii_alphanumeric() || allowed.contains(c)) {
            return Err(bad("it has a character that no parameter or secret name may have (the only placeholder is {owner})"));
        }
        Ok(made(rest.into()))
    }

    /// The parameter's path or the secret's id, as written.
    pub fn name(&self) -> &str {
        match self {
            SecretRef::Ssm(n) | SecretRef::SecretsManager(n) => n,
        }
    }

    /// With `{owner}` replaced by the box's owner.
    pub fn for_owner(&self, owner: &str) -> SecretRef {
        match self {
            SecretRef::Ssm(n) => SecretRef::Ssm(n.replace(OWNER, owner)),
            SecretRef::SecretsManager(n) => SecretRef::SecretsManager(n.replace(OWNER, owner)),
        }
    }

    pub fn names_owner(&self) -> bool {
        self.name().contains(OWNER)
    }

    /// An engineer's own value `name`, as `workstation secrets set` writes it.
    pub fn own(owner: &str, name: &str) -> SecretRef {
        SecretRef::Ssm(format!("{}/{name}", own_path(owner)))
    }
}

/// The path under which `owner`'s own values live, and only the owner's
/// box role may read (terraform/iam.tf, box_secrets).
pub fn own_path(owner: &str) -> String {
    format!("/workstation/{owner}")
}

/// Names `workstation secrets set` accepts: they end a parameter path.
pub fn check_own_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) && !name.starts_with('.');
    match ok {
        true => Ok(()),
        false => Err(format!("{name:?} is not a secret name; use letters, digits, '_', '.' and '-' (at most 128), such as stripe_key")),
    }
}

impl TryFrom<String> for SecretRef {
    type Error = BadSecretRef;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SecretRef::parse(&s)
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Ssm(n) => write!(f, "ssm:{n}"),
            SecretRef::SecretsManager(n) => write!(f, "secretsmanager:{n}"),
        }
    }
}

impl std::str::FromStr for SecretRef {
    type Err = BadSecretRef;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_place_and_nothing_else() {
        let r = SecretRef::parse("ssm:/workstation/{owner}/github_token").unwrap();
        assert!(r.names_owner());
        assert_eq!(r.for_owner("alice").to_string(), "ssm:/workstation/alice/github_token");
        let arn = "secretsmanager:arn:aws:secretsmanager:us-east-1:111122223333:secret:plaid-AbCdEf";
        assert_eq!(SecretRef::parse(arn).unwrap().to_string(), arn);
        assert_eq!(SecretRef::own("bob", "stripe"), SecretRef::Ssm("/workstation/bob/stripe".into()));
        for bad in ["", "ssm", "ssm:", "ssm:relative", "ssm:/a//b", "ssm:/a/", "vault:/a", "ssm:/a b", "ssm:/a/$(id)", "ssm:/{user}/x", "secretsmanager:a;b"] {
            let e = SecretRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("ssm:/workstation/shared/NAME"), "{bad}: {e}");
        }
    }

    #[test]
    fn own_names_end_a_path() {
        assert!(check_own_name("stripe_key-2.test").is_ok());
        for bad in ["", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(check_own_name(bad).is_err(), "{bad}");
        }
    }
}
