//! The `workstation` command line, one file per verb group; this one dispatches.

mod args;
mod box_arg;
mod boxes;
mod boxside;
mod context;
mod cost;
mod cp;
mod duration;
mod env;
pub mod error;
mod hosts;
mod idle;
mod image;
mod intercept;
mod interrupt;
mod output;
mod platform;
mod preview;
mod secrets;
mod setup;
mod ssh;
mod stack;
mod sync;
mod upgrade;
mod webhooks;

use anyhow::Result;
pub use args::{Cli, Command, Format};
pub use output::Output;
use std::process::ExitCode;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    interrupt::or_interrupted(interrupt::left_by(&cli.command), dispatch(cli)).await
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let global = cli.global();
    match cli.command {
        Command::Init(args) => setup::init(&global, args, <Cli as clap::CommandFactory>::command()).await,
        Command::Doctor(args) => setup::doctor(&global, args).await,
        Command::Completions(args) => setup::completions(args, <Cli as clap::CommandFactory>::command()),
        Command::Create(args) => boxes::create(&global, args).await,
        Command::List(args) => boxes::list(&global, args).await,
        Command::Status(args) => boxes::status(&global, args).await,
        Command::Start(args) => boxes::start(&global, args).await,
        Command::Stop(args) => boxes::stop(&global, args).await,
        Command::Destroy(args) => boxes::destroy(&global, args).await,
        Command::Upgrade(args) => upgrade::upgrade(&global, args).await,
        Command::Secrets(cmd) => secrets::run(&global, cmd).await,
        Command::Up(args) => stack::up(&global, args).await,
        Command::Seed(args) => stack::seed(&global, args).await,
        Command::Services(args) => stack::services(&global, args).await,
        Command::Restart(args) => stack::restart(&global, args).await,
        Command::Logs(args) => stack::logs(&global, args).await,
        Command::Intercept(args) => intercept::intercept(&global, args).await,
        Command::Render(cmd) => stack::render(&global, cmd).await,
        Command::Sync(args) => sync::sync(&global, args).await,
        Command::Preview(cmd) => preview::run(&global, cmd).await,
        Command::Env(cmd) => env::run(&global, cmd).await,
        Command::Webhooks(args) => webhooks::run(&global, args).await,
        Command::Keep(args) => idle::keep(&global, args).await,
        Command::Reap(args) => idle::reap(&global, args).await,
        Command::Cost(args) => cost::cost(&global, args).await,
        Command::Hosts(args) => hosts::hosts(&global, args).await,
        Command::Share(args) => hosts::share(&global, args).await,
        Command::Ssh(args) => ssh::ssh(&global, args).await,
        Command::Cp(args) => cp::cp(&global, args).await,
        Command::PortForward(args) => ssh::port_forward(&global, args).await,
        Command::Code(args) => ssh::code(&global, args).await,
        Command::SshConfig(args) => ssh::ssh_config(&global, args).await,
        Command::Pin(args) => ssh::pin(&global, args).await,
        Command::Proxy(args) => ssh::proxy(&global, args).await,
        Command::Image(cmd) => image::run(&global, cmd).await,
        Command::BoxSide(cmd) => boxside::run(&global, cmd).await,
        Command::Manifest(cmd) => platform::manifest(&global, cmd).await,
        Command::Admin(cmd) => platform::admin(&global, cmd).await,
    }
}
