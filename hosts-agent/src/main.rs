//! `workstation-hosts`: thin CLI over the library (daemon, one-shot apply,
//! status, install).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use workstation_hosts::agent::Agent;
use workstation_hosts::config::{Config, DEFAULT_CONFIG, DEFAULT_HOSTS};
use workstation_hosts::hostsfile::HostsFile;
use workstation_hosts::install::{self, Allow};
use workstation_hosts::{block, names, server};
use workstation_hosts_protocol::{self as protocol, Request, Response, Target, DEFAULT_SOCKET};

const EXAMPLES: &str = "\
Examples:
  sudo workstation-hosts install --user $USER --suffix .dev.example.com
                                      allow yourself to point *.dev.example.com
  workstation-hosts status            what the block says and why
  workstation-hosts point --to 10.0.0.5 --label me/dev api.dev.example.com
  workstation-hosts point --to box1.internal.example.com api.dev.example.com
                                      follow a DNS name (re-resolved when its TTL ends)
  sudo workstation-hosts apply --from-state /var/lib/workstation-hosts/state.json
                                      recovery: rewrite the block from the saved state
  sudo workstation-hosts apply --hosts-file /etc/hosts --set api.dev=10.0.0.5
  sudo workstation-hosts apply        no --set: remove the block
  sudo workstation-hosts uninstall    remove the block, the service and the state";

/// The root daemon that owns workstation's block in /etc/hosts. The
/// `workstation` CLI asks it (over a Unix socket) to point hostnames at a
/// box; it checks who asks and which names, and writes the file safely.
#[derive(Parser)]
#[command(name = "workstation-hosts", version, max_term_width = 100, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the service unit does this).
    Run {
        #[arg(long, default_value = DEFAULT_CONFIG, value_name = "PATH")]
        config: PathBuf,
    },
    /// One-shot write without the daemon: set the block to exactly the
    /// given entries (none: remove it), or to a saved state.
    Apply {
        #[arg(long, default_value = DEFAULT_HOSTS, value_name = "PATH")]
        hosts_file: PathBuf,
        /// NAME=ADDRESS; repeat for more names.
        #[arg(long = "set", value_name = "NAME=ADDRESS", conflicts_with = "from_state")]
        set: Vec<String>,
        /// The daemon's state.json: rewrite the block it describes.
        #[arg(long, value_name = "STATE_JSON")]
        from_state: Option<PathBuf>,
    },
    /// Ask the running daemon what it points where.
    Status {
        #[arg(long, env = "WORKSTATION_HOSTS_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
        /// Print the response as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon to point names at an address or a DNS name.
    Point {
        #[arg(long, env = "WORKSTATION_HOSTS_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
        /// An IP address, or a DNS name the agent resolves and follows.
        #[arg(long, value_name = "ADDRESS|DNS-NAME")]
        to: String,
        /// Whose box this is, shown by status ("alice/dev").
        #[arg(long)]
        label: Option<String>,
        #[arg(required = true, value_name = "HOSTNAME")]
        names: Vec<String>,
    },
    /// Ask the running daemon to stop pointing names (all without NAMES).
    Clear {
        #[arg(long, env = "WORKSTATION_HOSTS_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
        socket: PathBuf,
        #[arg(value_name = "HOSTNAME")]
        names: Vec<String>,
    },
    /// Install (or extend) the config, a root-owned copy of this binary and
    /// the systemd unit / launchd plist, then start the service.
    Install {
        /// Login name allowed to call the agent; repeat for more.
        #[arg(long = "user", value_name = "LOGIN")]
        users: Vec<String>,
        /// Hostname callers may point; repeat for more.
        #[arg(long = "name", value_name = "HOSTNAME")]
        names: Vec<String>,
        /// Suffix whose subdomains callers may point (".dev.example.com").
        #[arg(long = "suffix", value_name = "SUFFIX")]
        suffixes: Vec<String>,
        /// Write everything under this directory instead of / (packaging, tests).
        #[arg(long, default_value = "/", value_name = "DIR")]
        root: PathBuf,
        /// Write the files but do not start the service.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop the service; remove the block, the unit, the binary and the state.
    Uninstall {
        #[arg(long, default_value = "/", value_name = "DIR")]
        root: PathBuf,
        /// Remove the config too.
        #[arg(long)]
        purge: bool,
    },
}

fn main() -> ExitCode {
    // Colour only at a terminal: the service's log file (systemd, launchd)
    // must not fill with escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { config } => {
            let loaded = Config::load(&config)?;
            Ok(tokio::runtime::Runtime::new()?.block_on(async {
                let listener = server::bind(&loaded.socket)?;
                server::serve(loaded, &config, listener).await
            })?)
        }
        Command::Apply { hosts_file, set, from_state } => {
            let hosts = HostsFile::new(&hosts_file);
            let written = match from_state {
                Some(state) => Agent::open(hosts, Some(state))?.reconcile()?,
                None => hosts.write(&block::group(parse_sets(&set)?.iter().map(|(n, a)| (n.as_str(), *a))))?,
            };
            println!("{}: {:?} after {} read(s)", hosts_file.display(), written.mode, written.attempts);
            if let Some(copy) = written.conflict_copy {
                println!("a concurrent edit was saved as {}", copy.display());
            }
            Ok(())
        }
        Command::Status { socket, json } => {
            let response = call(&socket, &Request::Status)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&response)?);
                return Ok(());
            }
            let status = response.status.unwrap_or_default();
            println!("{}:", status.hosts_file.display());
            if status.names.is_empty() {
                println!("  (no names pointed)");
            }
            for n in status.names {
                let address = n.address.map_or("(resolving)".into(), |a| a.to_string());
                println!("  {:<32} {:<16} {} {}", n.name, address, n.target, n.label.unwrap_or_default());
            }
            Ok(())
        }
        Command::Point { socket, to, label, names } => {
            let to = match to.parse() {
                Ok(address) => Target::Address(address),
                Err(_) => Target::Dns(to),
            };
            report(call(&socket, &Request::Point { names, to, label })?)
        }
        Command::Clear { socket, names } => {
            let names = if names.is_empty() { None } else { Some(names) };
            report(call(&socket, &Request::Clear { names })?)
        }
        Command::Install { users, names, suffixes, root, no_start } => {
            for line in install::install(&root, Allow { users, names, suffixes }, !no_start)? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Uninstall { root, purge } => {
            for line in install::uninstall(&root, purge)? {
                println!("{line}");
            }
            Ok(())
        }
    }
}

fn call(socket: &Path, request: &Request) -> Result<Response> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(protocol::call(socket, request))?)
}

/// One line: whether the file changed, how, and which caches were flushed.
fn report(response: Response) -> Result<()> {
    let how = response.write.map_or(String::new(), |w| format!(" ({w:?})"));
    let flushed: Vec<String> = response.flushed.iter().map(|f| format!("{}: {}", f.cache, f.outcome)).collect();
    println!(
        "{}{how}; resolver caches: {}",
        if response.changed { "hosts file updated" } else { "hosts file unchanged" },
        if flushed.is_empty() { "none found".into() } else { flushed.join(", ") }
    );
    Ok(())
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, IpAddr)>> {
    sets.iter()
        .map(|s| {
            let Some((name, address)) = s.split_once('=') else { bail!("--set {s:?}: expected NAME=ADDRESS") };
            let name = names::hostname(name).with_context(|| format!("--set {s:?}"))?;
            let address = address.parse().with_context(|| format!("--set {s:?}: {address:?} is not an IP address"))?;
            Ok((name, address))
        })
        .collect()
}
