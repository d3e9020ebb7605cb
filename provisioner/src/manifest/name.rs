//! Box and owner names.
//!
//! Names end up in EC2 tags, network-namespace names, SSH config `Host`
//! lines and (later) hostnames, so they are held to DNS label rules and
//! checked before any API call is made.

use std::fmt;
use std::str::FromStr;

/// DNS labels are at most 63 octets (RFC 1035 §2.3.4).
pub const MAX_LEN: usize = 63;

/// An owner is also the box's Linux account (images/workstation.nix), and
/// useradd refuses names longer than 32 characters.
pub const OWNER_MAX_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} {shown}: {reason}; use 1-{max} characters from a-z, 0-9 and '-', starting with a letter and not ending with '-' (e.g. \"dev\" or \"alice-api\")")]
pub struct NameError {
    what: &'static str,
    /// Debug-quoted so newlines, spaces and look-alike unicode are visible.
    shown: String,
    reason: String,
    max: usize,
}

/// Checks `value` against DNS label rules, naming `what` ("box name",
/// "owner") in the error.
pub fn check_label(what: &'static str, value: &str) -> Result<(), NameError> {
    let max = if what == "owner" { OWNER_MAX_LEN } else { MAX_LEN };
    let fail = |reason: String| Err(NameError { what, shown: format!("{value:?}"), reason, max });
    if value.is_empty() {
        return fail("it is empty".into());
    }
    if value.len() > max {
        return fail(format!("it is {} bytes long, the limit is {max}", value.len()));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return fail(format!("{c:?} is not allowed"));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return fail("it must start with a letter".into());
    }
    if value.ends_with('-') {
        return fail("it must not end with '-'".into());
    }
    // /workstation/shared/ holds every box's shared secrets; an owner of
    // that name would write them as their own (terraform/iam.tf, OwnSecrets).
    if what == "owner" && RESERVED_OWNERS.contains(&value) {
        return fail("it is reserved: /workstation/shared/ holds the secrets every box reads".into());
    }
    Ok(())
}

/// Owner names that are paths of their own under /workstation/.
pub const RESERVED_OWNERS: [&str; 1] = ["shared"];

macro_rules! label_type {
    ($ty:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check_label($what, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_type!(BoxName, "box name");
label_type!(Owner, "owner");
label_type!(TeamName, "team");
label_type!(EnvName, "environment name");

impl Owner {
    /// An owner name made from a login name (`$USER`), which may hold
    /// capitals, '.', '_' or digits first ("Alice.Smith", "_svc"): lower
    /// case, '.' and '_' as '-', other characters and a leading non-letter
    /// dropped, cut to the limit. None if nothing is left.
    pub fn suggest(login: &str) -> Option<Owner> {
        let mapped: String = login
            .chars()
            .filter_map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '-') => Some(c),
                '.' | '_' => Some('-'),
                _ => None,
            })
            .skip_while(|c| !c.is_ascii_lowercase())
            .take(OWNER_MAX_LEN)
            .collect();
        mapped.trim_end_matches('-').parse().ok()
    }
}

impl Default for BoxName {
    fn default() -> Self {
        Self("dev".into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_login_name_becomes_a_valid_owner() {
        assert_eq!(Owner::suggest("alice").unwrap().as_str(), "alice");
        assert_eq!(Owner::suggest("Alice.Smith").unwrap().as_str(), "alice-smith");
        assert_eq!(Owner::suggest("_svc_build_").unwrap().as_str(), "svc-build");
        assert_eq!(Owner::suggest(&"a".repeat(40)).unwrap().as_str().len(), OWNER_MAX_LEN);
        assert!(Owner::suggest("42").is_none());
        assert!("a".repeat(33).parse::<Owner>().is_err(), "longer than a Linux user name");
        assert!("shared".parse::<Owner>().is_err() && "shared".parse::<BoxName>().is_ok(), "the shared secrets' path");
    }

    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["dev", "a", "alice-api", "x1", &"a".repeat(63)] {
            assert!(ok.parse::<BoxName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long = "a".repeat(64);
        for bad in [
            "",
            "a;b",
            "a b",
            "a\nb",
            "Dev",
            "-a",
            "a-",
            "1abc",
            "a.b",
            "a_b",
            &long,
            "dеv",         // Cyrillic 'е'
            "dev\u{200b}", // zero-width space
        ] {
            let err = bad.parse::<BoxName>().unwrap_err().to_string();
            assert!(err.starts_with("invalid box name"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn error_shows_hidden_characters() {
        let err = "a\nb".parse::<Owner>().unwrap_err().to_string();
        assert!(err.contains(r#""a\nb""#), "{err}");
        assert!(err.contains("invalid owner"), "{err}");
    }
}
