//! ssh, ssh-config, pin.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;

use super::box_arg::BoxArg;
use super::context::Global;
use super::output::{self, Output};
use crate::boxes::Context;
use crate::env::EnvRef;
use crate::manifest::name::BoxName;
use crate::provider::BoxInfo;
use crate::provider::ProviderKind;
use crate::ssh::known_hosts::Pinned;
use crate::ssh::proxy;
use crate::ssh::ssh_config::host_alias;

/// Open a shell on a box, or run a command on it, as `ssh` does.
///
/// This is OpenSSH through the generated config (`ssh ws-NAME`), so it
/// only ever connects with the host key the box published and workstation
/// pinned, and behaves exactly like ssh: stdin, stdout and stderr are
/// forwarded (with EOF), the exit status is the command's (255 when the
/// connection fails), and the words after `--` are joined with spaces into
/// one remote command line, so a quoted shell line runs as a shell line.
///
/// A stopped box is started first and its stack brought up and waited
/// for, as `start` does, before the command runs.
///
/// Examples:
///   workstation ssh dev
///   workstation ssh dev -- uname -a
///   workstation ssh dev -- 'cd "$HOME" && ls -a; exit 3'
///   echo 'select 1;' | workstation ssh dev -- psql -h 127.0.0.1 -U postgres shop
///   tar c README.md | workstation ssh dev -- 'mkdir -p upload && tar x -C upload'
///   workstation ssh dev -A -L 15432:127.0.0.1:5432 -- 'sleep 1'
///   workstation ssh dev --ssh-option ServerAliveInterval=15
///   workstation ssh --env payments/staging -- uptime
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SshArgs {
    #[command(flatten)]
    target: BoxArg,
    /// A team box instead, TEAM/ENV (your key is pushed to it for the login).
    #[arg(long, value_name = "TEAM/ENV")]
    env: Option<EnvRef>,
    /// Allocate a terminal for the command (default: when stdin and stdout
    /// are terminals).
    #[arg(short = 't', conflicts_with = "no_tty")]
    tty: bool,
    /// Never allocate a terminal.
    #[arg(short = 'T')]
    no_tty: bool,
    /// Forward your SSH agent to the box (OpenSSH's -A).
    #[arg(short = 'A')]
    forward_agent: bool,
    /// A box port here: [BIND:]PORT:HOST:HOSTPORT (OpenSSH's -L; repeatable).
    #[arg(short = 'L', value_name = "SPEC")]
    local_forward: Vec<String>,
    /// A port of this laptop on the box: [BIND:]PORT:HOST:HOSTPORT
    /// (OpenSSH's -R; repeatable).
    #[arg(short = 'R', value_name = "SPEC")]
    remote_forward: Vec<String>,
    /// An OpenSSH option, KEY=VALUE (OpenSSH's -o; here -o is --output).
    /// Options that would bypass the pinned host key are refused.
    #[arg(long = "ssh-option", value_name = "KEY=VALUE", value_parser = ssh_option)]
    ssh_option: Vec<String>,
    /// Command to run instead of a shell, after `--` (`workstation ssh dev
    /// -- make test`); its words are joined into one remote command line.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn ssh_option(s: &str) -> Result<String, String> {
    crate::ssh::openssh::check_option(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
}

/// Write the OpenSSH config for your boxes and include it from ~/.ssh/config,
/// so `ssh ws-NAME`, scp, rsync and VS Code Remote-SSH use the pinned keys.
///
/// Examples:
///   workstation ssh-config && ssh ws-dev
///   workstation ssh-config --no-include
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SshConfigArgs {
    /// Only write workstation's file; leave ~/.ssh/config alone.
    #[arg(long)]
    no_include: bool,
}

/// Connect OpenSSH to a box, starting it if it is stopped (wake on connect).
///
/// The generated SSH config runs this as each box's ProxyCommand, so plain
/// `ssh ws-NAME`, scp, rsync and VS Code Remote-SSH wake a stopped box
/// too: it starts the box (progress on stderr), waits until SSH answers
/// with the pinned key, connects to the box's current address and hands
/// the connected socket to ssh (ProxyUseFdpass), which then checks the
/// pinned host key itself. Not for use by hand.
///
/// Examples (in ~/.local/state/workstation/ssh_config):
///   ProxyCommand /usr/bin/workstation --provider aws proxy dev --host %h --port %p
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ProxyArgs {
    /// Box name.
    #[arg(required_unless_present = "env")]
    name: Option<BoxName>,
    /// A team box, TEAM/ENV: your key is pushed to it first.
    #[arg(long, value_name = "TEAM/ENV", conflicts_with = "name")]
    env: Option<EnvRef>,
    /// The address the config last knew (ssh's %h): an EC2 box running
    /// there is connected to without an API call.
    #[arg(long)]
    host: Option<std::net::IpAddr>,
    /// The box's SSH port (ssh's %p).
    #[arg(long, default_value_t = 22)]
    port: u16,
}

/// Pin the host key a box published (after a deliberate rebuild, --replace).
///
/// Examples:
///   workstation pin dev
///   workstation pin dev --replace     after a deliberate rebuild
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PinArgs {
    #[command(flatten)]
    target: BoxArg,
    /// Replace a different key already pinned for this box.
    #[arg(long)]
    replace: bool,
}

pub async fn ssh(global: &Global, args: SshArgs) -> Result<ExitCode> {
    let (ctx, info) = running_target(global, &args.target.get(), args.env.as_ref()).await?;
    let config = ctx.write_ssh_config(false).await?;
    let mut ssh = tokio::process::Command::new("ssh");
    // The box is awake and the config was just written with its address:
    // no need for the config's ProxyCommand to look it up again.
    ssh.arg("-F").arg(&config).args(ctx.openssh_options());
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let tty = match (args.command.is_empty(), args.tty, args.no_tty) {
        (_, _, true) => Some("-T"),
        (_, true, _) => Some("-t"),
        (true, ..) => None,
        (false, ..) => Some(if terminal { "-t" } else { "-T" }),
    };
    if args.forward_agent {
        ssh.arg("-A");
    }
    for spec in &args.local_forward {
        ssh.arg("-L").arg(spec);
    }
    for spec in &args.remote_forward {
        ssh.arg("-R").arg(spec);
    }
    for option in &args.ssh_option {
        ssh.arg("-o").arg(option);
    }
    ssh.args(tty).arg(ctx.ssh_alias(&info));
    if !args.command.is_empty() {
        ssh.arg("--").args(&args.command);
    }
    // ssh owns the terminal and stdio (inherited, not copied: its speed);
    // Ctrl-C reaches it through the process group, and here only wakes
    // this handler instead of ending workstation before ssh.
    let _interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let status = ssh.status().await.context("cannot run ssh (the OpenSSH client); install openssh-client")?;
    if status.code() == Some(255) {
        // ssh's own failure (or the command's 255): connect with
        // workstation's client to say why in our words (a changed host key,
        // a refused key), after ssh's message.
        // The exit status stays ssh's (255), as scripts expect of ssh.
        match ctx.connect(&info).await {
            Ok(session) => session.close().await,
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(exit_code(status))
}

/// The running box `name`, for a verb that hands it to OpenSSH: a stopped
/// box is started first (wake on connect).
pub(super) async fn running_box(global: &Global, name: &BoxName) -> Result<(Context, BoxInfo)> {
    let (ctx, info) = global.wake(global.manifest_for_lookup().as_ref(), name).await?;
    ctx.target(&info)?;
    Ok((ctx, info))
}

/// The running box a verb with `--env` names: team box TEAM/ENV (never
/// started from here: it is its CI's), with your key pushed to it, else
/// your box `name` as [`running_box`] finds it.
pub(super) async fn running_target(global: &Global, name: &BoxName, env: Option<&EnvRef>) -> Result<(Context, BoxInfo)> {
    let Some(env) = env else { return running_box(global, name).await };
    let ctx = global.context(global.manifest_for_lookup().as_ref()).await?;
    let info = crate::env::find(&ctx, env).await?;
    ctx.target(&info)?;
    // OpenSSH connects straight away (its config's proxy is not asked).
    if ctx.pushes_key(&info) {
        ctx.push_key(&info).await?;
    }
    Ok((ctx, info))
}

pub async fn proxy(global: &Global, args: ProxyArgs) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    // A running EC2 box answers at its last address. A local box is looked
    // up, which costs nothing, while a stopped one's address would take
    // seconds to fail.
    if let (ProviderKind::Aws, Some(host), false, None) = (ctx.provider().kind(), args.host, ctx.via_ssm(), &args.env) {
        if let Some(stream) = proxy::fast_connect(host, args.port) {
            proxy::pass_to_ssh(&stream).context(proxy::FDPASS_HINT)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let info = match (&args.env, &args.name) {
        // A team box is its CI's to start; your key goes first.
        (Some(env), _) => {
            let info = crate::env::find(&ctx, env).await?;
            ctx.target(&info)?;
            ctx.push_key(&info).await?;
            info
        }
        // A stopped box is woken as `start` would: the connection is
        // handed over only once its stack is healthy, so the command ssh
        // carries does not find its services still starting.
        (None, Some(name)) => global.wake_in(&ctx, manifest.as_ref(), name).await?,
        (None, None) => unreachable!("clap requires NAME or --env"),
    };
    if let Some(argv) = ctx.ssm_session(&info, args.port) {
        // Session Manager relays the bytes: the session takes our place,
        // its stdin and stdout ssh's connection.
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
        return Err(err).context("cannot run `aws ssm start-session`: install the AWS CLI v2 and the Session Manager plugin (docs/engineer.md)");
    }
    let address = std::net::SocketAddr::new(ctx.target(&info)?.address.ip(), args.port);
    let stream = proxy::connect_when_up(address).await.with_context(|| format!("cannot connect to box {} at {address}", info.name))?;
    proxy::pass_to_ssh(&stream).context(proxy::FDPASS_HINT)?;
    Ok(ExitCode::SUCCESS)
}

/// A child's status as this process's: its code, or 128 + the signal that
/// ended it, as shells report it.
pub(super) fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

pub async fn ssh_config(global: &Global, args: SshConfigArgs) -> Result<ExitCode> {
    let ctx = global.context(global.manifest_for_lookup().as_ref()).await?;
    let path = ctx.write_ssh_config(!args.no_include).await?;
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "config": path, "included": !args.no_include }))?,
        Output::Text => println!("wrote {}{}", path.display(), if args.no_include { "" } else { " (included from ~/.ssh/config)" }),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pin(global: &Global, args: PinArgs) -> Result<ExitCode> {
    let ctx = global.context(global.manifest_for_lookup().as_ref()).await?;
    let (info, outcome, fingerprint) = ctx.pin(&args.target.get(), args.replace).await?;
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

/// Forward ports of the box to this laptop, over SSH with the pinned key.
///
/// Each REMOTE port on the box's loopback (stores, services bound to
/// 127.0.0.1) is reachable at 127.0.0.1:LOCAL here (LOCAL defaults to
/// REMOTE) until Ctrl-C. This is OpenSSH's `-L` through the generated
/// config; it fails at once if a local port is taken.
///
/// Examples:
///   workstation port-forward dev 5432            psql -h 127.0.0.1 reaches the box's postgres
///   workstation port-forward dev 16379:6379 8080
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PortForwardArgs {
    /// Box name.
    name: BoxName,
    /// Ports: REMOTE, or LOCAL:REMOTE.
    #[arg(required = true, value_name = "[LOCAL:]REMOTE")]
    ports: Vec<Forward>,
}

/// One `[LOCAL:]REMOTE` port pair.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Forward {
    local: u16,
    remote: u16,
}

impl std::str::FromStr for Forward {
    type Err = String;

    fn from_str(s: &str) -> Result<Forward, String> {
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{p:?} is not a port (1-65535); write REMOTE or LOCAL:REMOTE, e.g. 5432 or 15432:5432")),
        };
        match s.split_once(':') {
            Some((l, r)) => Ok(Forward { local: port(l)?, remote: port(r)? }),
            None => port(s).map(|p| Forward { local: p, remote: p }),
        }
    }
}

/// Open VS Code on the box (Remote-SSH through the generated config).
///
/// Runs `code --remote ssh-remote+ws-NAME [PATH]`, after making sure
/// ~/.ssh/config includes workstation's config, so VS Code connects with
/// the pinned host key. Needs VS Code's `code` command and its Remote-SSH
/// extension.
///
/// Examples:
///   workstation code dev
///   workstation code dev /var/lib/workstation/src
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CodeArgs {
    /// Box name.
    name: BoxName,
    /// Folder on the box to open (absolute).
    path: Option<String>,
}

pub async fn port_forward(global: &Global, args: PortForwardArgs) -> Result<ExitCode> {
    // Before waking the box: a taken local port is this laptop's problem.
    for f in &args.ports {
        local_port_free(&args.name, f)?;
    }
    let (ctx, info) = running_box(global, &args.name).await?;
    let config = ctx.write_ssh_config(false).await?;
    let mut ssh = std::process::Command::new("ssh");
    ssh.arg("-F").arg(&config).args(["-N", "-T", "-o", "ExitOnForwardFailure=yes"]).args(ctx.openssh_options());
    for f in &args.ports {
        ssh.arg("-L").arg(format!("127.0.0.1:{}:127.0.0.1:{}", f.local, f.remote));
    }
    ssh.arg(host_alias(&info.name));
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "box": info.name, "forwards": args.ports }))?,
        Output::Text => {
            for f in &args.ports {
                eprintln!("forwarding 127.0.0.1:{} -> {}:{}", f.local, info.name, f.remote);
            }
            eprintln!("press Ctrl-C to stop");
        }
    }
    let err = ssh.exec();
    Err(err).context("cannot run ssh (the OpenSSH client); install openssh-client")
}

/// Fails with what to do when the forward's local port cannot be bound
/// here (instead of OpenSSH's "bind: Address already in use" and 255).
fn local_port_free(name: &BoxName, f: &Forward) -> Result<()> {
    match std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, f.local)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let other = if f.local < 55536 { f.local + 10000 } else { f.local - 10000 };
            anyhow::bail!(
                "local port {} is already in use on this laptop (another program listens on it); forward to another local port: `workstation port-forward {name} {other}:{}`",
                f.local,
                f.remote
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => anyhow::bail!(
            "local port {} needs root on this laptop (ports below 1024 are privileged); use a higher one: `workstation port-forward {name} {}:{}`",
            f.local,
            f.local + 10000,
            f.remote
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on 127.0.0.1:{} here", f.local)),
    }
}

pub async fn code(global: &Global, args: CodeArgs) -> Result<ExitCode> {
    let (ctx, info) = running_box(global, &args.name).await?;
    // VS Code reads ~/.ssh/config: the Include line must be there.
    ctx.write_ssh_config(true).await?;
    let mut code = std::process::Command::new("code");
    code.arg("--remote").arg(format!("ssh-remote+{}", host_alias(&info.name)));
    if let Some(path) = &args.path {
        code.arg(path);
    }
    let status = match code.status() {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "VS Code's `code` command is not on PATH; in VS Code run \"Shell Command: Install 'code' command in PATH\", and install the Remote - SSH extension"
        ),
        Err(e) => return Err(e).context("cannot run code"),
    };
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::Forward;

    #[test]
    fn forwards_are_remote_or_local_colon_remote() {
        let f: Forward = "5432".parse().unwrap();
        assert_eq!((f.local, f.remote), (5432, 5432));
        let f: Forward = "15432:5432".parse().unwrap();
        assert_eq!((f.local, f.remote), (15432, 5432));
        for bad in ["0", "x", "70000", "1:2:3", ":80"] {
            assert!(bad.parse::<Forward>().unwrap_err().contains("LOCAL:REMOTE"), "{bad}");
        }
    }
}
