//! Who holds a service: an intercept takes a service off the box for an
//! engineer's laptop, and records that (`<root>/run/intercepts/<service>.json`
//! beside its lock, both root's alone). The stack reads the records
//! (`services`, `restart`, `sync` leave a held service alone); the
//! intercept writes them (`crate::intercept::hold`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::stack::layout::{sh, Layout};
use crate::stack::shell::{BoxShell, ShellError};

/// Who holds an intercepted service (`<root>/run/intercepts/<service>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub service: String,
    pub by: String,
    pub since: DateTime<Utc>,
    pub ports: Vec<u16>,
}

/// Where the locks and records are.
pub fn dir(layout: &Layout) -> String {
    format!("{}/intercepts", layout.run_dir())
}

/// A shell line printing one JSON record per service held now (a record
/// whose lock is free is left over from a holder that is gone).
pub fn list_command(layout: &Layout) -> String {
    let dir = dir(layout);
    format!(
        "for f in {d}/*.json; do [ -e \"$f\" ] || continue; flock -n \"${{f%.json}}.lock\" true && continue; head -c 4096 \"$f\" | tr -d '\\n'; echo; done",
        d = sh(&dir)
    )
}

/// The records [`list_command`] printed; a line that is not a record
/// (the box writes these, so they are checked) is skipped.
pub fn parse_list(text: &str) -> Vec<Holder> {
    text.lines().filter_map(|l| serde_json::from_str::<Holder>(l).ok()).filter(|h| valid_holder(&h.by) && !h.service.is_empty()).collect()
}

/// The services held on the box now.
pub async fn holders(onbox: &BoxShell) -> Result<Vec<Holder>, ShellError> {
    Ok(parse_list(&onbox.output(&list_command(&onbox.layout)).await?))
}

/// A holder name safe to put in a record and a script: letters, digits and
/// `@._-`, at most 100.
pub fn valid_holder(by: &str) -> bool {
    !by.is_empty() && by.len() <= 100 && by.chars().all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_the_box_are_checked() {
        let rec = r#"{"service":"api","by":"alice@mac","since":"2026-12-03T10:02:00Z","ports":[8080]}"#;
        let forged = r#"{"service":"api","by":"$(rm -rf /)","since":"2026-12-03T10:02:00Z","ports":[]}"#;
        assert_eq!(parse_list(&format!("{rec}\n{forged}\nnot json\n")).len(), 1);
        assert!(!valid_holder("a b") && !valid_holder("") && valid_holder("bob@laptop-1.local"));
    }
}
