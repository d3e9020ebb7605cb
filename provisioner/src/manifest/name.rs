//! Box and owner names.
//!
//! Names end up in EC2 tags, network-namespace names, SSH config `Host`
//! lines and (later) hostnames, so they are held to DNS label rules and
//! checked before any API call is made.

use std::fmt;
use std::str::FromStr;

/// DNS labels are at most 63 octets (RFC 1035 §2.3.4).
pub const MAX_LEN: usize = 63;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} {shown}: {reason}; use 1-63 characters from a-z, 0-9 and '-', starting with a letter and not ending with '-' (e.g. \"dev\" or \"alice-api\")")]
pub struct NameError {
    what: &'static str,
    /// Debug-quoted so newlines, spaces and look-alike unicode are visible.
    shown: String,
    reason: String,
}

/// Checks `value` against DNS label rules, naming `what` ("box name",
/// "owner") in the error.
pub fn check_label(what: &'static str, value: &str) -> Result<(), NameError> {
    let fail = |reason: String| Err(NameError { what, shown: format!("{value:?}"), reason });
    if value.is_empty() {
        return fail("it is empty".into());
    }
    if value.len() > MAX_LEN {
        return fail(format!("it is {} bytes long, the limit is {MAX_LEN}", value.len()));
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
    Ok(())
}

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

impl Default for BoxName {
    fn default() -> Self {
        Self("dev".into())
    }
}

#[cfg(test)]
mod tests {
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
