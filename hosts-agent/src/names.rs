//! Which hostnames may be written: well-formed DNS names (so nothing a caller
//! sends can break a hosts line: no spaces, `#`, newlines or non-ASCII) and,
//! for callers over the socket, only names on the root-owned allowlist.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{name:?} is not a hostname: {why}")]
    Malformed { name: String, why: &'static str },
    #[error("{name:?} is not on the agent's allowlist (allowed_names / allowed_suffixes in {config}); ask an admin to add it with `workstation-hosts install --name {name}`")]
    NotAllowed { name: String, config: String },
}

/// Checks a hostname's syntax and returns it lowercased (hosts lookups are
/// case-insensitive, so `API.dev` and `api.dev` are one entry).
pub fn hostname(name: &str) -> Result<String, NameError> {
    let bad = |why| Err(NameError::Malformed { name: name.to_owned(), why });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.')) {
        return match c {
            '\n' | '\r' => bad("it contains a line break"),
            ' ' | '\t' => bad("it contains whitespace"),
            '#' => bad("it contains '#', which starts a comment in a hosts file"),
            c if !c.is_ascii() => bad("it contains non-ASCII characters (use the punycode xn-- form)"),
            _ => bad("only letters, digits, '-' and '.' are allowed"),
        };
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("it has an empty label (leading, trailing or doubled '.')");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    if name.parse::<std::net::IpAddr>().is_ok() || name.split('.').next_back().is_some_and(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return bad("it looks like an address, not a name");
    }
    Ok(name.to_ascii_lowercase())
}

/// Names callers may point: exact names, and suffixes like `.dev.example.com`
/// (which allow `api.dev.example.com` but not `dev.example.com` itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowlist {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub suffixes: Vec<String>,
}

impl Allowlist {
    pub fn allows(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
            || self.suffixes.iter().any(|s| {
                let s = s.to_ascii_lowercase();
                let s = if s.starts_with('.') { s } else { format!(".{s}") };
                name.len() > s.len() && name.ends_with(&s)
            })
    }

    /// The checked, lowercased name, or why it may not be written.
    pub fn check(&self, name: &str, config: &str) -> Result<String, NameError> {
        let name = hostname(name)?;
        if self.allows(&name) {
            Ok(name)
        } else {
            Err(NameError::NotAllowed { name, config: config.to_owned() })
        }
    }
}

/// A label the CLI attaches to a pointing ("alice/dev"), shown by status.
pub fn label(label: &str) -> Result<(), String> {
    if label.len() > 64 || !label.chars().all(|c| c.is_ascii_alphanumeric() || "._-/@".contains(c)) {
        return Err(format!("label {label:?} must be at most 64 characters of letters, digits and ._-/@"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("api.dev\n1.2.3.4 evil", "line break"),
            ("api dev", "whitespace"),
            ("api#dev", "'#'"),
            ("äpi.dev", "non-ASCII"),
            ("", "empty"),
            ("api..dev", "empty label"),
            ("api.dev.", "empty label"),
            ("-api.dev", "'-'"),
            ("10.0.0.1", "address"),
            ("api_dev", "only letters"),
        ] {
            let err = hostname(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        assert_eq!(hostname("API.Dev").unwrap(), "api.dev");
        assert!(hostname(&format!("{}.dev", "a".repeat(64))).is_err());
    }

    #[test]
    fn allowlist_matches_names_and_true_suffixes() {
        let list = Allowlist { names: vec!["api.dev".into()], suffixes: vec![".box.example.com".into(), "corp".into()] };
        assert!(list.allows("api.dev"));
        assert!(list.allows("a.box.example.com"));
        assert!(list.allows("x.corp"));
        assert!(!list.allows("box.example.com"));
        assert!(!list.allows("evilbox.example.com"));
        assert!(!list.allows("web.dev"));
        assert!(matches!(list.check("web.dev", "/etc/x.toml"), Err(NameError::NotAllowed { .. })));
        assert!(matches!(list.check("bad name", "/etc/x.toml"), Err(NameError::Malformed { .. })));
    }
}
