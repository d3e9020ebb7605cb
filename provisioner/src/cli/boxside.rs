//! `workstation box ...`: run on the box by its own units.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::boxside;

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    PublishHostKey(PublishArgs),
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

pub async fn run(cmd: BoxCommand) -> Result<ExitCode> {
    match cmd {
        BoxCommand::PublishHostKey(args) => {
            let key = boxside::read_host_key(&args.host_key_file)?;
            let (id, region) = match (args.instance_id, args.region) {
                (Some(id), Some(region)) => (id, region),
                (id, region) => {
                    let (imds_id, imds_region) = boxside::instance_identity(&aws_config::imds::Client::builder().build()).await?;
                    (id.unwrap_or(imds_id), region.unwrap_or(imds_region))
                }
            };
            let sdk = super::sdk_config(None, Some(region)).await;
            boxside::publish_host_key(&aws_sdk_ec2::Client::new(&sdk), &id, &key).await?;
            println!("published host key of {id}: {key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
