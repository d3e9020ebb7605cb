//! How a failure ends the process. Its kind decides the exit code, as in
//! jj: 2 for usage (clap's own, before anything runs), 1 for a request that
//! failed (bad input or manifest, an unknown box, an unreachable box or
//! API), 3 for a bug in workstation. A `hint:` line follows where the error
//! itself does not already say what to do. `--help` lists the codes.

use std::process::ExitCode;

use crate::manifest::ConfigError;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_BUG: u8 = 3;

/// A broken invariant: reported as a bug (exit 3), never as the user's fault.
#[derive(Debug, thiserror::Error)]
#[error("internal error: {0}")]
pub struct Bug(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Bug,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Failed => EXIT_FAILED,
            Kind::Bug => EXIT_BUG,
        }
    }
}

/// The kind of `e`, and a hint when the message alone does not teach the fix.
pub fn classify(e: &anyhow::Error) -> (Kind, Option<String>) {
    for cause in e.chain() {
        if cause.is::<Bug>() || cause.is::<tokio::task::JoinError>() {
            return (Kind::Bug, Some(BUG_HINT.into()));
        }
        if let Some(c) = cause.downcast_ref::<ConfigError>() {
            let hint = match c {
                ConfigError::Parse { .. } | ConfigError::Invalid { .. } => {
                    Some("fix the fields named above; examples/workstation.toml documents every field with an example".into())
                }
                ConfigError::NotFound { .. } | ConfigError::Read { .. } => None,
            };
            return (Kind::Failed, hint);
        }
    }
    (Kind::Failed, None)
}

const BUG_HINT: &str = "this is a bug in workstation; please report it with the output of the same command with -v";

/// Prints the error, its causes (one per line) and its hint; returns the
/// exit code of its kind.
pub fn report(e: &anyhow::Error) -> ExitCode {
    let (kind, hint) = classify(e);
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(kind.code())
}

/// Runs the command; a panic is a bug (exit 3), not a crash with 101.
pub fn run_guarded(command: impl FnOnce() -> anyhow::Result<ExitCode> + std::panic::UnwindSafe) -> ExitCode {
    match std::panic::catch_unwind(command) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => report(&e),
        Err(_) => {
            // The panic hook has printed where it happened.
            eprintln!("error: workstation stopped on an internal error\nhint: {BUG_HINT}");
            ExitCode::from(EXIT_BUG)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::manifest::Problem;

    #[test]
    fn a_bad_manifest_is_the_users_with_a_hint() {
        let e = anyhow::Error::from(ConfigError::Invalid {
            path: PathBuf::from("workstation.toml"),
            problems: vec![Problem { field: "box.disk_gib".into(), message: "2 is out of range".into() }],
        });
        let (kind, hint) = classify(&e.context("loading the manifest"));
        assert_eq!(kind.code(), 1);
        assert!(hint.unwrap().contains("examples/workstation.toml"));
    }

    #[test]
    fn bugs_exit_3_and_other_failures_1() {
        assert_eq!(classify(&anyhow::Error::from(Bug("no address after the check".into()))).0.code(), 3);
        assert_eq!(classify(&anyhow::anyhow!("box dev is not running")).0, Kind::Failed);
        assert_eq!(run_guarded(|| Ok(ExitCode::SUCCESS)), ExitCode::SUCCESS);
        assert_eq!(run_guarded(|| Err(anyhow::anyhow!("no such box"))), ExitCode::from(1));
        assert_eq!(run_guarded(|| panic!("invariant broken")), ExitCode::from(3));
    }
}
