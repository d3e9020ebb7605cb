//! `secrets set|list|rm`: an engineer's own secret values.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};

use super::context::Global;
use super::output::{self, Output};

/// Your own secret values, which your boxes' services read at start.
///
/// A service names a value in the manifest by reference, never by value:
///   [services.api]
///   secrets = { GITHUB_TOKEN = "ssm:/workstation/{owner}/github_token",
///               STRIPE_KEY = "ssm:/workstation/shared/stripe_test_key" }
/// `{owner}` is the box's owner, so one manifest serves every engineer.
/// On AWS your values are SecureString parameters under
/// /workstation/<you>/, which only your boxes' role reads; on the local
/// provider they are in ~/.config/workstation/secrets.toml (mode 0600,
/// or [secrets] command in your settings). `workstation restart SERVICE`
/// makes a service read a changed value. At a terminal, `set` asks for the
/// value without echoing it.
///
/// Examples:
///   printf %s "ghp_example" | workstation secrets set github_token
///   workstation secrets list
///   workstation secrets rm github_token
#[derive(Debug, Subcommand)]
#[command(verbatim_doc_comment)]
pub enum SecretsCommand {
    /// Set (or replace) a value, read from stdin: never an argument.
    Set(NameArg),
    /// Your values' names (never their values).
    List,
    /// Delete a value.
    Rm(NameArg),
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// Letters, digits, '_', '.' and '-'; the last part of its path.
    name: String,
}

pub async fn run(global: &Global, cmd: SecretsCommand) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    let (store, owner) = (ctx.secrets(), ctx.owner());
    match cmd {
        SecretsCommand::Set(args) => {
            // The name first: a bad one is not worth typing a value for.
            let reference = crate::boxes::SecretStore::reference(owner, &args.name)?;
            let value = read_value(&args.name)?;
            store.set(owner, &args.name, &value).await?;
            match global.output {
                Output::Json => output::json(&serde_json::json!({ "name": args.name, "reference": reference.to_string(), "set": true }))?,
                Output::Text => println!("set {} in {}; a manifest refers to it as \"{}\"", args.name, store.place(owner), own_reference(&args.name)),
            }
        }
        SecretsCommand::List => {
            let names = store.names(owner).await?;
            match global.output {
                Output::Json => output::json(&serde_json::json!({ "place": store.place(owner), "names": names }))?,
                Output::Text if names.is_empty() => println!("no values of yours in {}; add one with `workstation secrets set NAME`", store.place(owner)),
                Output::Text => names.iter().for_each(|n| println!("{n}")),
            }
        }
        SecretsCommand::Rm(args) => {
            let removed = store.remove(owner, &args.name).await?;
            match global.output {
                Output::Json => output::json(&serde_json::json!({ "name": args.name, "removed": removed }))?,
                Output::Text if removed => println!("removed {} from {}", args.name, store.place(owner)),
                Output::Text => println!("{} was not set in {}; nothing to remove", args.name, store.place(owner)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn own_reference(name: &str) -> String {
    format!("ssm:/workstation/{}/{name}", crate::manifest::secret::OWNER)
}

/// The value from stdin: typed without echo at a terminal, else piped
/// (one trailing newline dropped, as `echo` adds one).
fn read_value(name: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("value of {name} (not shown): ");
        std::io::stderr().flush()?;
        let saved = rustix::termios::tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet).context("turning echo off")?;
        let read = stdin.read_line(&mut value);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        eprintln!();
        read?;
    } else {
        stdin.lock().read_to_string(&mut value)?;
    }
    if value.ends_with('\n') {
        value.pop();
    }
    if value.is_empty() {
        bail!("no value given for {name}: pipe it in (`printf %s \"$VALUE\" | workstation secrets set {name}`) or type it when asked");
    }
    Ok(value)
}
