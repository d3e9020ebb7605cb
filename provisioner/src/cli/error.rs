//! How a failure ends the process. Its kind decides the exit code, as in
//! jj: 2 for usage (clap's own, before anything runs), 1 for a request that
//! failed (bad input or manifest, an unknown box, an unreachable box or
//! API), 3 for a bug in workstation. A `hint:` line follows where the error
//! itself does not already say what to do. `--help` lists the codes.

use std::process::ExitCode;

use super::interrupt::Interrupted;
use crate::manifest::ConfigError;
use crate::provider::aws::failure::AwsFailure;
use crate::ssh::remote::RemoteError;
use crate::stack::seed::SeedError;

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
    Interrupted,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Failed => EXIT_FAILED,
            Kind::Bug => EXIT_BUG,
            Kind::Interrupted => super::interrupt::EXIT_INTERRUPTED,
        }
    }
}

/// The kind of `e`, and a hint when the message alone does not teach the fix.
pub fn classify(e: &anyhow::Error) -> (Kind, Option<String>) {
    for cause in e.chain() {
        if cause.is::<Bug>() || cause.is::<tokio::task::JoinError>() {
            return (Kind::Bug, Some(BUG_HINT.into()));
        }
        if let Some(i) = cause.downcast_ref::<Interrupted>() {
            return (Kind::Interrupted, Some(format!("run `{}` again: it finishes what this run started, and does nothing twice", i.again)));
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

/// A stable name for what failed, for scripts (`error.kind` in JSON).
pub fn kind_name(e: &anyhow::Error) -> &'static str {
    use crate::boxes::LifecycleError;
    for cause in e.chain() {
        if cause.is::<Bug>() || cause.is::<tokio::task::JoinError>() {
            return "bug";
        }
        if cause.is::<Interrupted>() {
            return "interrupted";
        }
        if cause.is::<ConfigError>() {
            return "manifest";
        }
        if let Some(f) = aws_failure(cause) {
            return f.kind.as_str();
        }
        if cause.is::<SeedError>() {
            return "seed";
        }
        if cause.is::<RemoteError>() {
            return "ssh";
        }
        match cause.downcast_ref::<LifecycleError>() {
            Some(LifecycleError::UnknownBox { .. } | LifecycleError::UnknownShared { .. }) => return "unknown-box",
            Some(LifecycleError::Stopped { .. } | LifecycleError::NotRunning { .. }) => return "box-not-running",
            Some(LifecycleError::NotShareable { .. }) => return "not-shareable",
            _ => {}
        }
    }
    "failed"
}

/// The AWS failure in `cause`: the errors that carry one transparently
/// (so its line is printed once) hide it from the source chain.
fn aws_failure<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a AwsFailure> {
    use crate::boxes::LifecycleError;
    use crate::image::ImageError;
    use crate::provider::ProviderError;
    let provider = |p: &'a ProviderError| match p {
        ProviderError::Aws(f) => Some(f),
        _ => None,
    };
    if let Some(f) = cause.downcast_ref::<AwsFailure>() {
        return Some(f);
    }
    if let Some(p) = cause.downcast_ref::<ProviderError>() {
        return provider(p);
    }
    if let Some(LifecycleError::Provider(p)) = cause.downcast_ref::<LifecycleError>() {
        return provider(p);
    }
    match cause.downcast_ref::<ImageError>() {
        Some(ImageError::Aws(f)) => Some(f),
        _ => None,
    }
}

/// Prints the error, its causes (one per line) and its hint on stderr (and,
/// with `json`, as one object on stdout); returns the exit code of its kind.
pub fn report(e: &anyhow::Error, json: bool) -> ExitCode {
    if closed_pipe(e) {
        return ExitCode::SUCCESS;
    }
    let (kind, hint) = classify(e);
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(hint) = &hint {
        eprintln!("hint: {hint}");
    }
    if json {
        let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
        let body = serde_json::json!({ "error": { "kind": kind_name(e), "message": e.to_string(), "causes": causes, "hint": hint, "exit_code": kind.code() } });
        println!("{body}");
    }
    ExitCode::from(kind.code())
}

/// Whether `e` is a write into stdout whose reader has gone (`| head`):
/// the reader has what it wanted, so, as in ripgrep, that ends the
/// command quietly with success. A broken pipe anywhere else (the hosts
/// agent's socket, a child's stdin) is a real failure.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) && stdout_reader_gone()
}

/// stdout is a pipe or socket with nobody left to read it: poll(2)
/// reports POLLERR on a pipe's write end, POLLHUP on a socket whose peer
/// has gone.
fn stdout_reader_gone() -> bool {
    let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// `println!` panics when stdout is a closed pipe (Rust ignores SIGPIPE):
/// that panic ends the process quietly with success instead of being
/// reported as a bug. Every other panic goes to the default hook.
pub fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied());
        // std's message: "failed printing to stdout: Broken pipe (os error 32)".
        if message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("os error 32")) && stdout_reader_gone() {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Parses the command line. A usage error exits 2 with clap's message on
/// stderr and, when `-o json` was asked for, a JSON error on stdout too
/// (help and --version print as usual).
/// `version` is what `--version` prints (the binary's, with its commit).
pub fn parse_or_exit(version: &'static str) -> crate::cli::Cli {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = crate::cli::Cli::command().version(version).try_get_matches_from(&args).and_then(|m| crate::cli::Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli,
        Err(mut e) => {
            use clap::error::ErrorKind;
            if let Some(tip) = dash_dash_tip(&e, &args) {
                e.insert(clap::error::ContextKind::Suggested, clap::error::ContextValue::StyledStrs(vec![tip.into()]));
            }
            let usage = !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
            if usage && asks_for_json(&args) {
                let message = e.render().to_string();
                let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
                println!(
                    "{}",
                    serde_json::json!({ "error": { "kind": "usage", "message": first, "causes": [], "hint": message.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "), "exit_code": EXIT_USAGE } })
                );
            }
            e.exit()
        }
    }
}

/// `workstation ssh dev echo hi`: the command's first word taken for an
/// unknown argument. The tip shows the line with the `--` ssh needs.
fn dash_dash_tip(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    if words.iter().skip(1).find(|w| !w.starts_with('-')).map(String::as_str) != Some("ssh") || words.iter().any(|w| w == "--") {
        return None;
    }
    let clap::error::ContextValue::String(bad) = e.get(clap::error::ContextKind::InvalidArg)? else { return None };
    let at = words.iter().position(|w| w == bad)?;
    let quoted = |ws: &[String]| ws.iter().map(|w| shlex::try_quote(w).map(|q| q.into_owned()).unwrap_or_default()).collect::<Vec<_>>().join(" ");
    Some(format!("to run a command on the box, put `--` before it: `workstation {} -- {}`", quoted(&words[1..at]), quoted(&words[at..])))
}

/// `-o json`, `-ojson`, `--output json` or `--output=json` before any `--`.
fn asks_for_json(args: &[std::ffi::OsString]) -> bool {
    let words: Vec<&str> = args.iter().skip(1).map(|a| a.to_str().unwrap_or_default()).take_while(|a| *a != "--").collect();
    words.iter().zip(words.iter().skip(1)).any(|(a, b)| matches!(*a, "-o" | "--output") && *b == "json")
        || words.iter().any(|a| matches!(*a, "-ojson" | "--output=json"))
}

/// Runs the command; a panic is a bug (exit 3), not a crash with 101.
pub fn run_guarded(json: bool, command: impl FnOnce() -> anyhow::Result<ExitCode> + std::panic::UnwindSafe) -> ExitCode {
    match std::panic::catch_unwind(command) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => report(&e, json),
        Err(_) => {
            // The panic hook has printed where it happened.
            eprintln!("error: workstation stopped on an internal error\nhint: {BUG_HINT}");
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "error": { "kind": "bug", "message": "internal error", "causes": [], "hint": BUG_HINT, "exit_code": EXIT_BUG } })
                );
            }
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
        assert_eq!(run_guarded(false, || Ok(ExitCode::SUCCESS)), ExitCode::SUCCESS);
        assert_eq!(run_guarded(false, || Err(anyhow::anyhow!("no such box"))), ExitCode::from(1));
        assert_eq!(run_guarded(true, || panic!("invariant broken")), ExitCode::from(3));
        assert_eq!(kind_name(&anyhow::Error::from(Bug("x".into()))), "bug");
        assert_eq!(kind_name(&anyhow::anyhow!("other")), "failed");
    }

    #[test]
    fn a_closed_pipe_is_success_and_json_is_found_before_the_command() {
        // Only stdout's reader gone makes a broken pipe a quiet success
        // (here stdout is the test harness's, which still reads).
        let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("talking to the hosts agent");
        assert_eq!(report(&pipe, false), ExitCode::from(EXIT_FAILED));
        let args = |s: &str| s.split(' ').map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(asks_for_json(&args("workstation list -o json --bad")));
        assert!(asks_for_json(&args("workstation --output=json list")));
        assert!(!asks_for_json(&args("workstation ssh dev -- -o json")));
        assert!(!asks_for_json(&args("workstation list -o text")));
    }
}
