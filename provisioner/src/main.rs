use std::process::ExitCode;

use workstation::cli::error::{self, Bug};

fn main() -> ExitCode {
    error::quiet_on_closed_pipe();
    // Usage errors end here: clap's message (or, with -o json, a JSON
    // error on stdout) and exit code 2.
    let cli = error::parse_or_exit();
    workstation::logging::init(cli.verbose);
    let json = cli.output == workstation::cli::Format::Json;
    error::run_guarded(json, || {
        let runtime = tokio::runtime::Runtime::new().map_err(|e| Bug(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(workstation::cli::run(cli))
    })
}
