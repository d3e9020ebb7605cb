//! Log lines on stderr (progress, debug detail), for the CLI and the Lambda.

/// `WORKSTATION_LOG` (an EnvFilter) wins; otherwise -v is debug, -vv trace
/// (including the SDK's own logs).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "workstation=info",
        1 => "workstation=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WORKSTATION_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().with_target(false).init();
}
