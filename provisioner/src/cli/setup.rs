//! init, doctor, completions: from a fresh laptop to a working box, and
//! telling what is wrong when it stops working.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use clap_complete::Shell;
use indicatif::ProgressBar;

use super::box_arg::BoxArg;
use super::boxes;
use super::context::Global;
use super::output::{self, Output};
use crate::boxes::doctor::{self, Outcome};
use crate::boxes::init::{self, Done, Step};
use crate::boxes::Context;
use crate::laptop::paths::Paths;
use crate::manifest::LoadedManifest;
use crate::provider::ProviderKind;

/// Set this laptop up and create your box: every step is checked first and
/// skipped when already done, so running init again resumes after a failure.
///
/// Steps: prerequisites, settings, SSH key, AWS identity and key pair (aws),
/// SSH config Include, hosts agent (sudo, once), shell completions, create.
/// Interactive unless --yes; --provider local makes boxes on this machine.
///
/// Examples:
///   workstation init
///   workstation init --yes --owner alice --profile dev-sso --region eu-west-1
///   workstation init --provider local --until completions
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct InitArgs {
    /// Answer every question with its default or the flags; never prompt.
    #[arg(long, short)]
    yes: bool,
    /// Your owner name (tags your boxes; default: $USER).
    #[arg(long)]
    owner: Option<String>,
    /// The box to create.
    #[command(flatten)]
    target: BoxArg,
    /// Stop after this step (e.g. `--until completions` sets up without a box).
    #[arg(long, value_enum, value_name = "STEP")]
    until: Option<Step>,
    #[command(flatten)]
    timeout: super::stack::HealthTimeout,
}

/// Check every piece: credentials, the box, SSH with the pinned key,
/// services, seeds, the idle timer, the hosts agent and where the
/// hostnames really resolve (through the OS resolver). Exits 1 when a check
/// fails; each failure comes with its fix.
///
/// Examples:
///   workstation doctor
///   workstation doctor api-test -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DoctorArgs {
    #[command(flatten)]
    target: BoxArg,
}

/// Print the shell completion script (init installs them).
///
/// Examples:
///   mkdir -p ~/.zfunc && workstation completions zsh > ~/.zfunc/_workstation
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CompletionsArgs {
    shell: Shell,
}

/// `cli`: the whole command line, whose completions are written.
pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> Result<ExitCode> {
    // Into a buffer, then out: clap_complete panics on a failed write,
    // while a closed pipe (`| head`) is an error that ends quietly.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "workstation", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(global: &Global, args: DoctorArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    let checks = doctor::run(&ctx, &manifest, &args.target.get()).await;
    let failed = checks.iter().any(|c| c.outcome == Outcome::Fail);
    match global.output {
        Output::Json => output::json(&checks)?,
        Output::Text => {
            for c in &checks {
                let mark = match c.outcome {
                    Outcome::Ok => "ok  ",
                    Outcome::Fail => "FAIL",
                    Outcome::Skip => "skip",
                };
                println!("{mark} {:<12} {}", c.check, c.detail);
                if let Some(fix) = &c.fix {
                    println!("     {:<12} fix: {fix}", "");
                }
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub async fn init(global: &Global, args: InitArgs, cli: clap::Command) -> Result<ExitCode> {
    let paths = Paths::from_env()?;
    let interactive = !args.yes;
    if interactive && !std::io::stdin().is_terminal() {
        bail!("init asks questions and stdin is not a terminal; pass --yes (with --owner, --provider, --profile, --region as needed) to run unattended");
    }
    let opts = init::Options {
        interactive,
        owner: args.owner,
        provider: global.provider,
        profile: global.profile.clone(),
        region: global.region.clone(),
        name: args.target.get(),
        until: args.until.unwrap_or(Step::Create),
        health_timeout: args.timeout.value,
    };
    let done = init::run(&paths, &opts, &CliEnv(global, cli), &Terminal(global.output)).await?;
    let Some(report) = done.create else {
        if global.output == Output::Json {
            output::json(&serde_json::json!({ "steps": done.steps }))?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "steps": done.steps, "create": report }))?,
        Output::Text => {
            boxes::print_created(&report);
            eprintln!("next: `workstation doctor` checks every piece, `workstation ssh` logs in");
        }
    }
    Ok(if report.up.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The command line's manifest and context for init.
/// The run's global options, and the command line (for completions).
struct CliEnv<'a>(&'a Global, clap::Command);

impl init::Env for CliEnv<'_> {
    fn manifest(&self) -> Result<LoadedManifest> {
        self.0.load_manifest()
    }

    async fn context(&self, provider: ProviderKind, manifest: &LoadedManifest) -> Result<Context> {
        Global { provider: Some(provider), ..self.0.clone() }.context(Some(manifest)).await
    }

    async fn aws(&self, profile: Option<&str>, region: Option<String>) -> (aws_sdk_sts::Client, aws_sdk_ec2::Client, aws_sdk_sqs::Client) {
        let sdk = crate::provider::aws::sdk::config(profile, region).await;
        (aws_sdk_sts::Client::new(&sdk), aws_sdk_ec2::Client::from_conf(crate::provider::aws::sdk::ec2_config(&sdk).build()), aws_sdk_sqs::Client::new(&sdk))
    }

    fn completion_script(&self, shell: Shell) -> Vec<u8> {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut self.1.clone(), "workstation", &mut script);
        script
    }
}

/// Questions on stderr, answers from stdin; a line per finished step.
struct Terminal(Output);

impl init::Ui for Terminal {
    fn ask(&self, question: &str, default: &str) -> Result<String> {
        eprint!("{question} [{default}]: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.trim();
        Ok(if line.is_empty() { default.to_string() } else { line.to_string() })
    }

    fn spinner(&self) -> Option<ProgressBar> {
        output::spinner(self.0)
    }

    fn say(&self, text: &str) {
        eprintln!("{text}");
    }

    fn done(&self, done: &Done) {
        if self.0 == Output::Text {
            let name = done.step.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            eprintln!("{} {name:<14} {}", if done.changed { "✔" } else { "·" }, done.detail);
        }
    }
}
