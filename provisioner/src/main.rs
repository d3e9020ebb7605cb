use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = workstation::cli::Cli::parse();
    workstation::cli::init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(workstation::cli::EXIT_INTERNAL);
        }
    };
    match runtime.block_on(workstation::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            workstation::cli::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
