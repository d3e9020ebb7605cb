//! cp: files between this laptop and a box, with scp through the pinned
//! config.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

use super::context::Global;
use crate::ssh::openssh::{self, Operand};

/// Copy files between this laptop and a box (scp with the pinned host key).
///
/// A path on a box is written BOX:PATH, relative to the box user's home
/// unless absolute; `dev:` is that home itself. One side is the box, the
/// other this laptop. A stopped box is started first, as `ssh` does.
/// Exits with scp's status.
///
/// Examples:
///   workstation cp notes.txt dev:
///   workstation cp dev:notes.txt ./notes-from-box.txt
///   workstation cp -r ./fixtures dev:fixtures
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CpArgs {
    /// Copy directories and their contents.
    #[arg(short = 'r')]
    recursive: bool,
    /// Sources, then the destination: local paths or BOX:PATH.
    #[arg(required = true, num_args = 2.., value_name = "SOURCE... DEST")]
    paths: Vec<String>,
}

pub async fn cp(global: &Global, args: CpArgs) -> Result<ExitCode> {
    let operands = args.paths.iter().map(|p| Operand::parse(p)).collect::<Result<Vec<_>, _>>()?;
    let name = openssh::the_box(&operands)?;
    let (ctx, info) = super::ssh::running_box(global, &name).await?;
    let config = ctx.write_ssh_config(false).await?;
    let mut scp = tokio::process::Command::new("scp");
    // -q: no progress meter on a pipe; the box is awake and the config has
    // its address, so no ProxyCommand lookup either.
    scp.arg("-F").arg(&config).arg("-q").args(ctx.openssh_options());
    if args.recursive {
        scp.arg("-r");
    }
    // `--`: an operand starting with '-' is a path, not an option.
    scp.arg("--").args(operands.iter().map(Operand::for_scp));
    let status = scp.status().await.context("cannot run scp (the OpenSSH client); install openssh-client")?;
    if !status.success() {
        eprintln!("error: copying to or from box {} failed (scp exit {})", info.name, status.code().unwrap_or(-1));
    }
    Ok(super::ssh::exit_code(status))
}
