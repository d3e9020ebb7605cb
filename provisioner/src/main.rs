use std::process::ExitCode;

use workstation::cli::error::{self, Bug};

/// `workstation --version`: the crate's version and the commit it was built
/// from: WORKSTATION_COMMIT (the flake sets it from the flake's revision),
/// else GITHUB_SHA (a release built by .github/workflows/release.yml).
fn version() -> &'static str {
    let commit = option_env!("WORKSTATION_COMMIT").or(option_env!("GITHUB_SHA")).unwrap_or("commit unknown: built outside a release");
    // Once per run, for clap, which keeps it for the whole parse.
    Box::leak(format!("{} ({commit})", env!("CARGO_PKG_VERSION")).into_boxed_str())
}

fn main() -> ExitCode {
    error::quiet_on_closed_pipe();
    // Usage errors end here: clap's message (or, with -o json, a JSON
    // error on stdout) and exit code 2.
    let cli = error::parse_or_exit(version());
    workstation::logging::init(cli.verbose);
    let json = cli.output == workstation::cli::Format::Json;
    error::run_guarded(json, || {
        let runtime = tokio::runtime::Runtime::new().map_err(|e| Bug(format!("cannot start the async runtime: {e}")))?;
        let done = runtime.block_on(workstation::cli::run(cli));
        // A verb interrupted by Ctrl-C may leave blocking work behind (an
        // rsync's thread, a disk read): not waited for past a moment.
        runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        done
    })
}
