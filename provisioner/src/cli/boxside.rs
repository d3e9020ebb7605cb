//! `workstation box ...`: run on the box by its own units.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::boxside::host_key;
use crate::boxside::self_api::SelfApi;

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    PublishHostKey(PublishArgs),
    IdleCheck(IdleCheckArgs),
}

/// Measure activity, record it, warn and stop this box when idle.
///
/// Run every minute by the image's timer, with the manifest's [idle]
/// policy. Activity: SSH sessions carrying more than keepalives, traffic to
/// the services' ports, CPU above idle.cpu_percent, `workstation sync`.
#[derive(Debug, Args)]
pub struct IdleCheckArgs {
    /// The box root (state in <root>/run/idle.json).
    #[arg(long, env = "WORKSTATION_BOX_ROOT", default_value = crate::stack::layout::DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// This instance's id (default: from the instance metadata service).
    #[arg(long)]
    instance_id: Option<String>,
    /// This instance's region (default: from the instance metadata service).
    #[arg(long)]
    region: Option<String>,
    /// Decide and print; do not tag, warn or stop.
    #[arg(long)]
    dry_run: bool,
    /// Decide as of this time (RFC 3339) instead of now (with --dry-run:
    /// what happens at 20:00?).
    #[arg(long, value_name = "TIME")]
    at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Publish this box's SSH host key as the EC2 tag workstation:host-key.
///
/// Run once at first boot, after sshd's keys exist. The laptop pins the
/// key from this tag, so it never has to trust a key seen on the network.
/// The instance id and region come from IMDSv2 unless given.
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[arg(long, default_value = "/etc/ssh/ssh_host_ed25519_key.pub", value_name = "PATH")]
    host_key_file: PathBuf,
    /// This instance's id (default: from the instance metadata service).
    #[arg(long)]
    instance_id: Option<String>,
    /// This instance's region (default: from the instance metadata service).
    #[arg(long)]
    region: Option<String>,
}

pub async fn run(global: &super::context::Global, cmd: BoxCommand) -> Result<ExitCode> {
    match cmd {
        BoxCommand::IdleCheck(args) => {
            let manifest = global.load_manifest()?;
            let api = SelfApi::for_root(&args.root, args.instance_id, args.region).await?;
            let ports = manifest.manifest.service_ports();
            let check = crate::boxside::idle_check::Check {
                policy: &manifest.manifest.idle,
                ports,
                root: args.root,
                api: &api,
                hibernate: manifest.manifest.machine.hibernate,
                dry_run: args.dry_run,
            };
            let checked = check.run(args.at.unwrap_or_else(chrono::Utc::now)).await?;
            match global.output {
                super::Output::Json => super::output::json(&checked)?,
                super::Output::Text => {
                    let active = if checked.active.is_empty() { "idle".to_owned() } else { format!("active: {}", checked.active.join("; ")) };
                    println!("{active}; {}{}", checked.verdict, if checked.stopped { "; stopped this box" } else { "" });
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::PublishHostKey(args) => {
            let key = host_key::read_host_key(&args.host_key_file)?;
            let api = SelfApi::ec2(args.instance_id, args.region).await?;
            host_key::publish(&api, &key).await?;
            println!("published host key of {}: {key}", api.id());
            Ok(ExitCode::SUCCESS)
        }
    }
}
