use std::process::ExitCode;

use clap::Parser;
use workstation::cli::error::{self, Bug};

fn main() -> ExitCode {
    // Usage errors end here, with clap's message and exit code 2.
    let cli = workstation::cli::Cli::parse();
    workstation::logging::init(cli.verbose);
    let json = cli.output == workstation::cli::Format::Json;
    error::run_guarded(json, || {
        let runtime = tokio::runtime::Runtime::new().map_err(|e| Bug(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(workstation::cli::run(cli))
    })
}
