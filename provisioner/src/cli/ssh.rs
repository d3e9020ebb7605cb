//! ssh, ssh-config, pin.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

use super::output::{self, Output};
use super::Global;
use crate::ssh::known_hosts::Pinned;
use crate::manifest::name::BoxName;
use crate::ssh::ssh_config::host_alias;

/// Open a shell on a box, or run a command: `workstation ssh dev -- make test`.
///
/// Only ever connects with the host key the box published and workstation
/// pinned. A command runs over workstation's own SSH client and exits with
/// the command's status; a shell uses OpenSSH with the pinned key (full
/// terminal support).
#[derive(Debug, Args)]
pub struct SshArgs {
    /// Box name.
    #[arg(default_value_t = BoxName::default())]
    name: BoxName,
    /// Command to run instead of a shell (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

/// Write the OpenSSH config for your boxes and include it from ~/.ssh/config,
/// so `ssh ws-NAME`, scp, rsync and VS Code Remote-SSH use the pinned keys.
#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// Only write workstation's file; leave ~/.ssh/config alone.
    #[arg(long)]
    no_include: bool,
}

/// Pin the host key a box published (after a deliberate rebuild, --replace).
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Box name.
    #[arg(default_value_t = BoxName::default())]
    name: BoxName,
    /// Replace a different key already pinned for this box.
    #[arg(long)]
    replace: bool,
}

pub async fn ssh(global: &Global, args: SshArgs) -> Result<ExitCode> {
    let ctx = global.context(global.optional_manifest()?.as_ref()).await?;
    let info = ctx.find(&args.name).await?;
    if args.command.is_empty() {
        let config = ctx.write_ssh_config(false).await?;
        // Replaces this process: the terminal belongs to ssh from here on.
        let err = std::process::Command::new("ssh").arg("-F").arg(&config).arg(host_alias(&info.name)).exec();
        return Err(err).context("cannot run ssh (OpenSSH client) for an interactive shell; install openssh-client");
    }
    let command = shlex::try_join(args.command.iter().map(String::as_str)).context("command contains a NUL byte")?;
    let session = ctx.connect(&info).await?;
    let status = session.exec(&command, &mut tokio::io::stdout(), &mut tokio::io::stderr()).await;
    session.close().await;
    Ok(ExitCode::from(u8::try_from(status?).unwrap_or(255)))
}

pub async fn ssh_config(global: &Global, args: SshConfigArgs) -> Result<ExitCode> {
    let ctx = global.context(global.optional_manifest()?.as_ref()).await?;
    let path = ctx.write_ssh_config(!args.no_include).await?;
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "config": path, "included": !args.no_include }))?,
        Output::Text => println!("wrote {}{}", path.display(), if args.no_include { "" } else { " (included from ~/.ssh/config)" }),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pin(global: &Global, args: PinArgs) -> Result<ExitCode> {
    let ctx = global.context(global.optional_manifest()?.as_ref()).await?;
    let (info, outcome, fingerprint) = ctx.pin(&args.name, args.replace).await?;
    let what = match outcome {
        Pinned::New => "pinned",
        Pinned::Unchanged => "already pinned",
        Pinned::Replaced => "re-pinned",
    };
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "box": info.name, "id": info.id, "fingerprint": fingerprint, "outcome": what }))?,
        Output::Text => println!("box {} ({}): host key {fingerprint} {what}", info.name, info.id),
    }
    Ok(ExitCode::SUCCESS)
}
