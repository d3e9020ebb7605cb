//! What `workstation ssh` and `workstation cp` hand to OpenSSH besides the
//! generated config: the user's own ssh options (checked so none of them
//! turns host key pinning off) and scp operands naming a box.

use crate::manifest::name::BoxName;
use crate::ssh::ssh_config::host_alias;

/// OpenSSH options that would connect without the pinned key, or to
/// another host under the box's name: refused in `--ssh-option`.
const PINNING: [&str; 11] = [
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "knownhostscommand",
    "hostkeyalias",
    "proxycommand",
    "proxyjump",
    "hostname",
    // A shared connection another ssh opened never checks a host key.
    "controlpath",
    "controlmaster",
    "controlpersist",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("--ssh-option {0:?} is not KEY=VALUE (or \"KEY VALUE\"), as OpenSSH's -o takes it")]
    Malformed(String),
    #[error("--ssh-option {0}: workstation always connects with the host key it pinned, through its own config; this option would change that")]
    Pinning(String),
}

/// Checks one `-o`-style option for `ssh`/`scp`.
pub fn check_option(option: &str) -> Result<(), OptionError> {
    // As OpenSSH reads it: the keyword up to whitespace or '=', quotes
    // around it removed.
    let trimmed = option.trim_start();
    let end = trimmed.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(trimmed.len());
    let key = trimmed[..end].trim_matches('"');
    if key.is_empty() || end == trimmed.len() {
        return Err(OptionError::Malformed(option.to_owned()));
    }
    if PINNING.contains(&key.to_ascii_lowercase().as_str()) {
        return Err(OptionError::Pinning(key.to_owned()));
    }
    Ok(())
}

/// One `workstation cp` operand: a local path, or `BOX:PATH` on a box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Local(String),
    Remote { name: BoxName, path: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyError {
    #[error("{0:?} names no box: write BOX:PATH for a path on a box (e.g. dev:notes.txt), or ./{0} for a local file")]
    BadBox(String),
    #[error("no operand names a box; write BOX:PATH for the box's side, e.g. `workstation cp notes.txt dev:`")]
    NoRemote,
    #[error("operands name boxes {0} and {1}; copy between one box and this laptop at a time")]
    TwoBoxes(String, String),
}

impl Operand {
    /// As scp reads it: `X:PATH` is remote unless a `/` comes before the
    /// colon (`./a:b` is a local file).
    pub fn parse(word: &str) -> Result<Operand, CopyError> {
        match word.split_once(':') {
            Some((name, path)) if !name.contains('/') => {
                let name: BoxName = name.parse().map_err(|_| CopyError::BadBox(word.to_owned()))?;
                Ok(Operand::Remote { name, path: path.to_owned() })
            }
            _ => Ok(Operand::Local(word.to_owned())),
        }
    }

    /// The word scp gets: the box's Host alias in the generated config.
    pub fn for_scp(&self) -> String {
        match self {
            Operand::Local(p) => p.clone(),
            Operand::Remote { name, path } => format!("{}:{path}", host_alias(name.as_str())),
        }
    }
}

/// The one box the operands name.
pub fn the_box(operands: &[Operand]) -> Result<BoxName, CopyError> {
    let mut names = operands.iter().filter_map(|o| match o {
        Operand::Remote { name, .. } => Some(name),
        Operand::Local(_) => None,
    });
    let first = names.next().ok_or(CopyError::NoRemote)?;
    match names.find(|n| *n != first) {
        Some(other) => Err(CopyError::TwoBoxes(first.to_string(), other.to_string())),
        None => Ok(first.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_would_unpin_are_refused() {
        assert!(check_option("ServerAliveInterval=30").is_ok());
        assert!(check_option("ForwardAgent yes").is_ok());
        assert_eq!(check_option("StrictHostKeyChecking=no"), Err(OptionError::Pinning("StrictHostKeyChecking".into())));
        assert!(matches!(check_option("userknownhostsfile=/dev/null"), Err(OptionError::Pinning(_))));
        assert!(matches!(check_option("\"StrictHostKeyChecking\" no"), Err(OptionError::Pinning(_))));
        assert!(matches!(check_option("StrictHostKeyChecking\tno"), Err(OptionError::Pinning(_))));
        assert!(matches!(check_option("ControlPath=/tmp/other"), Err(OptionError::Pinning(_))));
        assert!(matches!(check_option("Compression"), Err(OptionError::Malformed(_))));
    }

    #[test]
    fn operands_are_read_as_scp_reads_them() {
        let remote = Operand::parse("dev:src/app.log").unwrap();
        assert_eq!(remote.for_scp(), "ws-dev:src/app.log");
        assert_eq!(Operand::parse("./a:b").unwrap(), Operand::Local("./a:b".into()));
        assert_eq!(Operand::parse("notes.txt").unwrap(), Operand::Local("notes.txt".into()));
        assert!(matches!(Operand::parse("Bad Box:x"), Err(CopyError::BadBox(_))));
        let ops = [Operand::parse("a.txt").unwrap(), remote.clone()];
        assert_eq!(the_box(&ops).unwrap().as_str(), "dev");
        assert_eq!(the_box(&[Operand::Local("a".into())]), Err(CopyError::NoRemote));
        assert!(matches!(the_box(&[remote, Operand::parse("api:x").unwrap()]), Err(CopyError::TwoBoxes(..))));
    }
}
