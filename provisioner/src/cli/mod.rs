//! The `workstation` command line: parse, build the context once, call the
//! library, print. One file per verb group.

mod boxes;
mod boxside;
mod hosts;
mod idle;
mod image;
mod output;
mod setup;
mod ssh;
mod stack;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::{Parser, Subcommand};

use crate::config::{LoadedManifest, Manifest};
use crate::known_hosts::KnownHosts;
use crate::lifecycle::Context;
use crate::paths::Paths;
use crate::provider::aws::{ApiCalls, AwsProvider};
use crate::provider::local::LocalProvider;
use crate::provider::Provider;
use crate::settings::{AwsSettings, ProviderKind, Settings};

pub use output::Output;

/// Exit code for bugs and environment failures, as opposed to 1 (the
/// request failed: bad input, unknown box) and 2 (usage).
pub const EXIT_INTERNAL: u8 = 3;

/// SDK attempts per API call. The SDK retries throttling
/// (RequestLimitExceeded) and transient errors with jittered exponential
/// backoff; five attempts ride out a burst of throttling during a fleet-wide
/// `reap` without hiding a real outage for long.
const AWS_MAX_ATTEMPTS: u32 = 5;

const EXAMPLES: &str = "\
Examples:
  workstation init                         set up this laptop and create your box (resumable)
  workstation doctor                       check every piece; each failure with its fix
  workstation completions zsh > _workstation   shell completions (init installs them)
  workstation create                       launch your box \"dev\" and pin its host key
  workstation create --name api-test       a second box
  workstation list --output json           your boxes, for scripts
  workstation ssh dev -- make test         run a command on the box
  workstation services                     state and health of every program
  workstation logs api -f                  follow a service's log
  workstation seed main --reset            reload a store from its snapshot
  workstation up                           apply an edited workstation.toml to the box
  workstation restart api                  restart one service under supervisord
  workstation render supervisord --out DIR the configuration the box runs (Nix image)
  workstation image build && workstation image publish   the box image, as an AMI
  workstation ssh-config && ssh ws-dev     plain OpenSSH / VS Code with the pinned key
  workstation share alice                  point the hostnames at alice's box (demo)
  workstation share --off                  and back at yours
  workstation hosts                        where this laptop's hostnames point
  workstation sync                         mirror this checkout onto the box, keep it mirrored
  workstation keep --for 2h                do not stop my idle box for two hours
  workstation reap --dry-run               which idle boxes the backstop would stop
  workstation stop dev                     stop it; the disk is kept
  workstation destroy dev --yes            delete it and its disk
  WORKSTATION_PROVIDER=local workstation create   a box on this machine (root)";

/// Remote development boxes built from one manifest: create yours, SSH in
/// with a pinned host key, stop it when idle.
///
/// Settings live in ~/.config/workstation/config.toml; the box is declared
/// in workstation.toml (found in the current directory or a parent).
#[derive(Debug, Parser)]
#[command(name = "workstation", version, propagate_version = true, max_term_width = 100, after_help = EXAMPLES)]
pub struct Cli {
    /// The manifest (default: workstation.toml here or in a parent directory).
    #[arg(long, global = true, env = "WORKSTATION_MANIFEST", value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Where boxes live (default: `provider` in your settings, else aws).
    #[arg(long, global = true, value_enum)]
    pub provider: Option<ProviderKind>,

    /// Output format for results on stdout; progress always goes to stderr.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// More detail on stderr (-v: debug, -vv: trace, including the SDK).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(setup::InitArgs),
    Doctor(setup::DoctorArgs),
    Completions(setup::CompletionsArgs),
    Create(boxes::CreateArgs),
    List(boxes::ListArgs),
    /// Show one box: state, address, pinned host key, manifest drift.
    Status(boxes::NameArg),
    Start(boxes::StartArgs),
    /// Stop a box; its disk is kept (data stores survive).
    Stop(boxes::NameArg),
    Destroy(boxes::DestroyArgs),
    Up(stack::UpArgs),
    Seed(stack::SeedArgs),
    Services(stack::ServicesArgs),
    Restart(stack::RestartArgs),
    Logs(stack::LogsArgs),
    /// Print or write configuration rendered from the manifest.
    #[command(subcommand)]
    Render(stack::RenderCommand),
    Sync(sync::SyncArgs),
    Keep(idle::KeepArgs),
    Reap(idle::ReapArgs),
    Hosts(hosts::HostsArgs),
    Share(hosts::ShareArgs),
    Ssh(ssh::SshArgs),
    SshConfig(ssh::SshConfigArgs),
    Pin(ssh::PinArgs),
    /// Build the box image with the flake and publish it as an AMI.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Commands that run on the box itself (first boot, timers).
    #[command(subcommand, name = "box")]
    BoxSide(boxside::BoxCommand),
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let global = Global { manifest: cli.manifest, provider: cli.provider, output: cli.output };
    match cli.command {
        Command::Init(args) => setup::init(&global, args).await,
        Command::Doctor(args) => setup::doctor(&global, args).await,
        Command::Completions(args) => setup::completions(args),
        Command::Create(args) => boxes::create(&global, args).await,
        Command::List(args) => boxes::list(&global, args).await,
        Command::Status(args) => boxes::status(&global, args).await,
        Command::Start(args) => boxes::start(&global, args).await,
        Command::Stop(args) => boxes::stop(&global, args).await,
        Command::Destroy(args) => boxes::destroy(&global, args).await,
        Command::Up(args) => stack::up(&global, args).await,
        Command::Seed(args) => stack::seed(&global, args).await,
        Command::Services(args) => stack::services(&global, args).await,
        Command::Restart(args) => stack::restart(&global, args).await,
        Command::Logs(args) => stack::logs(&global, args).await,
        Command::Render(cmd) => stack::render(&global, cmd).await,
        Command::Sync(args) => sync::sync(&global, args).await,
        Command::Keep(args) => idle::keep(&global, args).await,
        Command::Reap(args) => idle::reap(&global, args).await,
        Command::Hosts(args) => hosts::hosts(&global, args).await,
        Command::Share(args) => hosts::share(&global, args).await,
        Command::Ssh(args) => ssh::ssh(&global, args).await,
        Command::SshConfig(args) => ssh::ssh_config(&global, args).await,
        Command::Pin(args) => ssh::pin(&global, args).await,
        Command::Image(cmd) => image::run(&global, cmd).await,
        Command::BoxSide(cmd) => boxside::run(&global, cmd).await,
    }
}

/// Options every verb shares.
#[derive(Clone)]
pub struct Global {
    manifest: Option<PathBuf>,
    provider: Option<ProviderKind>,
    output: Output,
}

impl Global {
    fn manifest_path(&self) -> Result<PathBuf> {
        match &self.manifest {
            Some(p) => Ok(p.clone()),
            None => Ok(Manifest::find(&std::env::current_dir().context("cannot read the current directory")?)?),
        }
    }

    /// The manifest, required (create).
    fn load_manifest(&self) -> Result<LoadedManifest> {
        Ok(Manifest::load(&self.manifest_path()?)?)
    }

    /// The manifest if there is one: other verbs only take the region from it.
    fn optional_manifest(&self) -> Result<Option<LoadedManifest>> {
        match self.manifest_path() {
            Ok(p) => Ok(Some(Manifest::load(&p)?)),
            Err(_) if self.manifest.is_none() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Settings, provider and pinned keys: everything a verb needs.
    async fn context(&self, manifest: Option<&LoadedManifest>) -> Result<Context> {
        let paths = Paths::from_env()?;
        let mut settings = Settings::load(&paths, &|k| std::env::var(k).ok())?;
        if let Some(kind) = self.provider {
            settings.provider = kind;
        }
        let provider: Box<dyn Provider> = match settings.provider {
            ProviderKind::Aws => {
                let sdk = sdk_config(settings.aws.profile.as_deref(), aws_region(&settings.aws, manifest)).await;
                Box::new(AwsProvider::new(aws_sdk_ec2::Client::new(&sdk), settings.aws.address))
            }
            ProviderKind::Local => Box::new(LocalProvider::new(paths.local_boxes(), settings.local.clone())?),
        };
        let ssh_user = settings.ssh_user.clone().unwrap_or_else(|| match settings.provider {
            ProviderKind::Aws => settings.owner.to_string(),
            // Local boxes share this machine's accounts, and need root.
            ProviderKind::Local => "root".into(),
        });
        let s3 = match manifest {
            Some(m) if m.manifest.stores.values().any(|s| s.seed.as_deref().is_some_and(|u| u.starts_with("s3://"))) => {
                let region = settings.aws.region.clone().or_else(|| m.manifest.machine.region.clone());
                Some(s3_client(&sdk_config(settings.aws.profile.as_deref(), region).await))
            }
            _ => None,
        };
        Ok(Context {
            s3,
            hosts: crate::hosts::HostsAgent::from_env(),
            provider,
            owner: settings.owner.clone(),
            known_hosts: KnownHosts::new(paths.known_hosts()),
            identity: settings.ssh_key.clone(),
            ssh_user,
            paths,
        })
    }
}

impl Global {
    /// The aws provider itself, whatever the settings say (reap works on
    /// every owner's instances), with its API calls counted.
    async fn aws(&self, manifest: Option<&LoadedManifest>) -> Result<(AwsProvider, ApiCalls)> {
        let aws = aws_settings()?;
        let sdk = sdk_config(aws.profile.as_deref(), aws_region(&aws, manifest)).await;
        let calls = ApiCalls::default();
        let config = aws_sdk_ec2::config::Builder::from(&sdk).interceptor(calls.clone()).build();
        Ok((AwsProvider::new(aws_sdk_ec2::Client::from_conf(config), aws.address), calls))
    }
}

/// The `[aws]` settings alone: verbs that act for the platform (reap,
/// image publish) need no owner of their own.
fn aws_settings() -> Result<AwsSettings> {
    Ok(Settings::read_file(&Paths::from_env()?.settings_file())?.aws)
}

/// The settings' region, else the manifest's (else aws-config's chain).
fn aws_region(aws: &AwsSettings, manifest: Option<&LoadedManifest>) -> Option<String> {
    aws.region.clone().or_else(|| manifest.and_then(|m| m.manifest.machine.region.clone()))
}

/// The one place an `SdkConfig` is built: the credential chain, profiles,
/// SSO and `AWS_ENDPOINT_URL` (moto in tests) all come from aws-config.
pub async fn sdk_config(profile: Option<&str>, region: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(AWS_MAX_ATTEMPTS));
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    loader.load().await
}

/// Path-style addressing when the endpoint is overridden (a local S3 such
/// as moto has no per-bucket host names).
fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some()).build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "workstation=info",
        1 => "workstation=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("WORKSTATION_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

/// Prints the error and its causes once, one per line.
pub fn print_error(e: &anyhow::Error) {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
