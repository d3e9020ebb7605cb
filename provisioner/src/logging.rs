//! Log lines on stderr (progress, debug detail), for the CLI and the Lambda.

/// Crates whose trace-level logs hold request or response bodies.
const BODY_LOGGERS: [&str; 6] = ["aws_smithy_runtime", "aws_smithy_runtime_api", "aws_smithy_http", "hyper", "hyper_util", "h2"];

/// `WORKSTATION_LOG` (an EnvFilter) wins (but never shows bodies); otherwise -v is debug, -vv trace
/// (including the SDK's own logs).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "workstation=info",
        1 => "workstation=debug",
        _ => "trace",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("WORKSTATION_LOG").unwrap_or_else(|_| default.into());
    // At trace the SDK's runtime and the HTTP stack print whole requests,
    // bodies included: a PutParameter's value (`secrets set`). Never.
    for quiet in BODY_LOGGERS {
        filter = filter.add_directive(format!("{quiet}=debug").parse().expect("a valid directive"));
    }
    // Colour only for a person at a terminal: never in a log file or CI,
    // and never with NO_COLOR (https://no-color.org).
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).without_time().with_target(false).init();
}
