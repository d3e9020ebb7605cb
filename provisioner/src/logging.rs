//! Log lines on stderr (progress, debug detail), for the CLI and the Lambda.

/// Crates whose trace-level logs hold request or response bodies.
const BODY_LOGGERS: [&str; 6] = ["aws_smithy_runtime", "aws_smithy_runtime_api", "aws_smithy_http", "hyper", "hyper_util", "h2"];

/// `WORKSTATION_LOG` (an EnvFilter) wins; otherwise -v is debug, -vv trace
/// (including the SDK's own logs, but never a request's or answer's body).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "workstation=info",
        1 => "workstation=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WORKSTATION_LOG").unwrap_or_else(|_| default.into());
    // At trace the SDK's runtime and the HTTP stack print whole requests,
    // bodies included: a PutParameter's value (`secrets set`). Never,
    // whatever the filter asks for.
    let no_bodies = tracing_subscriber::filter::filter_fn(|m| !(*m.level() == tracing::Level::TRACE && BODY_LOGGERS.iter().any(|t| m.target().starts_with(t))));
    // Colour only for a person at a terminal: never in a log file or CI,
    // and never with NO_COLOR (https://no-color.org).
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).without_time().with_target(false);
    tracing_subscriber::registry().with(lines.with_filter(no_bodies).with_filter(filter)).init();
}
