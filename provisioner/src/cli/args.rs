//! The command line's shape: the `workstation` parser, its global options
//! and its verbs (each verb's arguments live with the verb).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::{boxes, boxside, cost, cp, env, hosts, idle, image, intercept, platform, preview, secrets, setup, ssh, stack, sync, upgrade, webhooks};
use crate::provider::ProviderKind;

const EXAMPLES: &str = "\
Examples:
  workstation init                         set up this laptop and create your box (resumable)
  workstation doctor                       check every piece; each failure with its fix
  workstation completions zsh > _workstation   shell completions (init installs them)
  workstation create                       launch your box \"dev\" and pin its host key
  workstation create api-test              a second box
  workstation list --output json           your boxes, for scripts
  workstation ssh dev -- uname -a          run a command on the box
  workstation cp notes.txt dev:            copy a file to the box (dev:PATH the other way)
  workstation services                     state and health of every program
  workstation logs api -f                  follow a service's log
  workstation seed main --reset            reload a store from its snapshot
  workstation up                           apply an edited workstation.toml to the box
  workstation restart api                  restart one service under supervisord
  workstation render supervisord --out rendered   the configuration the box runs (Nix image)
  workstation image build && workstation image publish   the box image, as an AMI
  workstation ssh-config && ssh ws-dev     plain OpenSSH / VS Code with the pinned key
  workstation port-forward dev 5432        the box's postgres at 127.0.0.1:5432 here
  workstation code dev                     VS Code (Remote-SSH) on the box
  workstation share alice                  point the hostnames at alice's box (demo)
  workstation share --off                  and back at yours
  workstation hosts                        where this laptop's hostnames point
  workstation sync                         mirror this checkout onto the box, keep it mirrored
  workstation preview up --pr 12 --ref HEAD   a box for pull request 12 (CI)
  workstation share --preview 12           point the preview's hostnames at it
  workstation keep --for 2h                do not stop my idle box for two hours
  workstation reap --dry-run               which idle boxes the backstop would stop
  workstation manifest publish             the manifest the reaper applies (platform)
  workstation admin offboard alice         stop, then after a grace remove, a leaver's boxes
  workstation stop dev                     stop it; the disk is kept
  workstation destroy dev --yes            delete it and its disk (alias: rm)
  WORKSTATION_PROVIDER=local workstation create   a box on this machine (root)

Exit codes:
  0  success
  1  the request failed: bad input or manifest, unknown box, unhealthy stack, AWS or SSH failure
  2  usage: an unknown flag or a bad value (nothing was done)
  3  a bug in workstation (please report it with the output of -v)
  130  interrupted (Ctrl-C): it says where; the same command again finishes it";

/// The heading of the options every verb takes: listed after a verb's own,
/// so `workstation VERB --help` shows its arguments first.
const GLOBAL: &str = "Global options";

/// Remote development boxes built from one manifest: create yours, SSH in
/// with a pinned host key, stop it when idle.
///
/// Settings live in ~/.config/workstation/config.toml; the box is declared
/// in workstation.toml (found in the current directory or a parent).
#[derive(Debug, Parser)]
#[command(name = "workstation", version, propagate_version = true, max_term_width = 100, after_help = EXAMPLES)]
pub struct Cli {
    /// The manifest (default: workstation.toml here or in a parent directory).
    #[arg(long, global = true, env = "WORKSTATION_MANIFEST", value_name = "PATH", help_heading = GLOBAL)]
    pub manifest: Option<PathBuf>,

    /// Where boxes live (default: `provider` in your settings, else aws).
    #[arg(long, global = true, value_enum, help_heading = GLOBAL)]
    pub provider: Option<ProviderKind>,

    /// Output format for results on stdout; progress always goes to stderr.
    /// With json, a failure is also a JSON object on stdout. markdown: only
    /// `preview up` and `preview list` (a pull request comment).
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text, help_heading = GLOBAL)]
    pub output: Format,

    /// AWS profile (default: `[aws] profile` in your settings, then AWS_PROFILE).
    #[arg(long, global = true, value_name = "NAME", help_heading = GLOBAL)]
    pub profile: Option<String>,

    /// AWS region (default: `[aws] region` in your settings, then the
    /// manifest's box.region, then AWS_REGION).
    #[arg(long, global = true, value_name = "REGION", help_heading = GLOBAL)]
    pub region: Option<String>,

    /// Let the manifest's local seed paths leave its directory (absolute
    /// paths, `..`, symlinks out): only for a manifest you trust, since
    /// seeding copies those files to the box.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub allow_outside: bool,

    /// More detail on stderr (-v: debug, -vv: trace, including the SDK).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the output is markdown, which only the two verbs that write
    /// pull request comments take (anything else exits with usage).
    pub fn markdown(&self) -> bool {
        use clap::CommandFactory;
        let markdown = self.output == Format::Markdown;
        if markdown && !matches!(self.command, Command::Preview(preview::PreviewCommand::Up(_) | preview::PreviewCommand::List)) {
            Cli::command()
                .error(clap::error::ErrorKind::InvalidValue, "--output markdown is only for `preview up` and `preview list`; use text or json")
                .exit();
        }
        markdown
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(setup::InitArgs),
    Doctor(setup::DoctorArgs),
    Completions(setup::CompletionsArgs),
    Create(boxes::CreateArgs),
    List(boxes::ListArgs),
    /// Show one box: state, address, pinned host key, manifest drift.
    ///
    /// Examples:
    ///   workstation status
    ///   workstation status api-test -o json
    #[command(verbatim_doc_comment)]
    Status(boxes::NameArg),
    Start(boxes::StartArgs),
    /// Stop a box; its disk is kept (data stores survive).
    ///
    /// Examples:
    ///   workstation stop
    ///   workstation stop api-test
    #[command(verbatim_doc_comment)]
    Stop(boxes::NameArg),
    #[command(visible_alias = "rm")]
    Destroy(boxes::DestroyArgs),
    Upgrade(upgrade::UpgradeArgs),
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    Up(stack::UpArgs),
    Seed(stack::SeedArgs),
    Services(stack::ServicesArgs),
    Restart(stack::RestartArgs),
    Logs(stack::LogsArgs),
    Intercept(intercept::InterceptArgs),
    /// Print or write configuration rendered from the manifest.
    ///
    /// Examples:
    ///   workstation render supervisord
    ///   workstation render supervisord --out /tmp/rendered
    #[command(subcommand, verbatim_doc_comment)]
    Render(stack::RenderCommand),
    Sync(sync::SyncArgs),
    #[command(subcommand)]
    Preview(preview::PreviewCommand),
    #[command(subcommand)]
    Env(env::EnvCommand),
    Webhooks(webhooks::WebhooksArgs),
    Keep(idle::KeepArgs),
    Reap(idle::ReapArgs),
    Cost(cost::CostArgs),
    Hosts(hosts::HostsArgs),
    Share(hosts::ShareArgs),
    Ssh(ssh::SshArgs),
    Cp(cp::CpArgs),
    PortForward(ssh::PortForwardArgs),
    Code(ssh::CodeArgs),
    SshConfig(ssh::SshConfigArgs),
    Pin(ssh::PinArgs),
    #[command(hide = true)]
    Proxy(ssh::ProxyArgs),
    /// Build the box image with the flake and publish it as an AMI.
    ///
    /// Examples:
    ///   workstation image build
    ///   workstation image publish result-ami --image workstation
    #[command(subcommand, verbatim_doc_comment)]
    Image(image::ImageCommand),
    /// Publish the manifest the scheduled reaper applies (platform team).
    ///
    /// Examples:
    ///   workstation manifest publish
    #[command(subcommand, verbatim_doc_comment)]
    Manifest(platform::ManifestCommand),
    /// Break-glass verbs on any owner's boxes (platform team).
    ///
    /// Examples:
    ///   workstation admin offboard alice --dry-run
    #[command(subcommand, verbatim_doc_comment)]
    Admin(platform::AdminCommand),
    /// Commands that run on the box itself (first boot, timers).
    #[command(subcommand, name = "box", hide = true)]
    BoxSide(boxside::BoxCommand),
}

/// `--output`: [`Output`] for every verb, and markdown for the two that
/// write pull request comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

impl Cli {
    /// The flags every verb takes.
    pub fn global(&self) -> super::context::Global {
        super::context::Global {
            manifest: self.manifest.clone(),
            provider: self.provider,
            output: if self.output == Format::Json { super::Output::Json } else { super::Output::Text },
            markdown: self.markdown(),
            allow_outside: self.allow_outside,
            profile: self.profile.clone(),
            region: self.region.clone(),
        }
    }
}
