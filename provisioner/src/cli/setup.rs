//! init, doctor, completions: from a fresh laptop to a working box, and
//! telling what is wrong when it stops working.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::{Command as Process, ExitCode};

use anyhow::{bail, Context as _, Result};
use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;
use serde::Serialize;

use super::output::{self, Output};
use super::{boxes, Cli, Global};
use crate::doctor::{self, Outcome};
use crate::name::BoxName;
use crate::paths::Paths;
use crate::settings::{self, ProviderKind};

/// Set this laptop up and create your box: every step is checked first and
/// skipped when already done, so running init again resumes after a failure.
///
/// Steps: prerequisites, settings, SSH key, AWS identity and key pair (aws),
/// SSH config Include, hosts agent (sudo, once), shell completions, create.
/// Interactive unless --yes; --provider local makes boxes on this machine.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Answer every question with its default or the flags; never prompt.
    #[arg(long, short)]
    yes: bool,
    /// Your owner name (tags your boxes; default: $USER).
    #[arg(long)]
    owner: Option<String>,
    /// AWS profile (SSO or credentials) to use.
    #[arg(long)]
    profile: Option<String>,
    /// AWS region of your box.
    #[arg(long)]
    region: Option<String>,
    /// The box to create.
    #[arg(long, default_value_t = BoxName::default())]
    name: BoxName,
    /// Stop after this step (e.g. `--until completions` sets up without a box).
    #[arg(long, value_enum, value_name = "STEP")]
    until: Option<Step>,
    #[command(flatten)]
    timeout: super::stack::HealthTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Prerequisites,
    Settings,
    SshKey,
    Aws,
    SshConfig,
    HostsAgent,
    Completions,
    Create,
}

/// Check every piece: credentials, the box, SSH with the pinned key,
/// services, seeds, the idle timer, the hosts agent and where the
/// hostnames really resolve (through the OS resolver). Exits 1 when a check
/// fails; each failure comes with its fix.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Box name.
    #[arg(default_value_t = BoxName::default())]
    name: BoxName,
}

/// Print the shell completion script (init installs them).
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    shell: Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    clap_complete::generate(args.shell, &mut Cli::command(), "workstation", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(global: &Global, args: DoctorArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    let checks = doctor::run(&ctx, &manifest, &args.name).await;
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

/// What each step did, for `--output json` and the summary.
#[derive(Debug, Serialize)]
struct Done {
    step: Step,
    changed: bool,
    detail: String,
}

pub async fn init(global: &Global, args: InitArgs) -> Result<ExitCode> {
    let paths = Paths::from_env()?;
    let interactive = !args.yes;
    if interactive && !std::io::stdin().is_terminal() {
        bail!("init asks questions and stdin is not a terminal; pass --yes (with --owner, --provider, --profile, --region as needed) to run unattended");
    }
    let mut steps = Steps { done: Vec::new(), until: args.until.unwrap_or(Step::Create), output: global.output };

    // 1. What this machine must have.
    let missing: Vec<&str> = ["ssh", "ssh-keygen", "rsync"].into_iter().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        bail!(
            "missing {}: install them (Debian/Ubuntu: `sudo apt install openssh-client rsync`; macOS: `brew install rsync`, ssh is built in), then run init again",
            missing.join(", ")
        );
    }
    if steps.record(Step::Prerequisites, false, "ssh, ssh-keygen, rsync found".into()) {
        return steps.finish();
    }

    // 2. Settings: what the flags and answers say, merged into the file.
    let existing = settings::Settings::read_file(&paths.settings_file())?;
    let default_owner = args.owner.clone().or(existing.owner.clone()).or_else(|| std::env::var("USER").ok()).unwrap_or_default();
    let owner = if interactive { ask("owner name (tags your boxes)", &default_owner)? } else { default_owner };
    let provider = global.provider.or(existing.provider).unwrap_or(ProviderKind::Aws);
    let (mut profile, mut region) = (args.profile.clone().or(existing.aws.profile.clone()), args.region.clone().or(existing.aws.region.clone()));
    if interactive && provider == ProviderKind::Aws {
        profile = Some(ask("AWS profile (empty: the default credential chain)", profile.as_deref().unwrap_or(""))?).filter(|p| !p.is_empty());
        region = Some(ask("AWS region (empty: the manifest's)", region.as_deref().unwrap_or(""))?).filter(|r| !r.is_empty());
    }
    let changed = settings::write_init(&paths.settings_file(), &owner, provider, profile.as_deref(), region.as_deref())?;
    if steps.record(Step::Settings, changed, format!("{} (owner {owner})", paths.settings_file().display())) {
        return steps.finish();
    }

    // 3. The SSH key boxes trust.
    let settings = settings::Settings::load(&paths, &|k| std::env::var(k).ok())?;
    let key = settings.ssh_key.clone();
    let created = if key.exists() {
        false
    } else {
        if let Some(dir) = key.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut keygen = Process::new("ssh-keygen");
        keygen.args(["-q", "-t", "ed25519", "-C", &format!("{owner}@workstation"), "-f"]).arg(&key);
        if !interactive {
            keygen.args(["-N", ""]);
        }
        let status = keygen.status().context("cannot run ssh-keygen")?;
        if !status.success() {
            bail!("ssh-keygen failed ({status}); create a key with `ssh-keygen -t ed25519 -f {}` and run init again", key.display());
        }
        true
    };
    if steps.record(Step::SshKey, created, format!("{} (ed25519)", key.display())) {
        return steps.finish();
    }

    // 4. Who AWS says you are, and your key pair there.
    let manifest = global.load_manifest()?;
    let global = Global { provider: Some(provider), ..global.clone() };
    if provider == ProviderKind::Aws {
        let region = region.clone().or_else(|| manifest.manifest.machine.region.clone());
        let sdk = super::sdk_config(profile.as_deref(), region).await;
        let who = aws_sdk_sts::Client::new(&sdk).get_caller_identity().send().await.map_err(|e| {
            anyhow::anyhow!(
                "AWS credentials do not work: {}; sign in (`aws sso login{}`) or set up a profile, then run init again",
                aws_sdk_sts::error::DisplayErrorContext(&e),
                profile.as_deref().map(|p| format!(" --profile {p}")).unwrap_or_default()
            )
        })?;
        let aws = crate::provider::aws::AwsProvider::new(aws_sdk_ec2::Client::new(&sdk), settings.aws.address);
        let public_key = crate::lifecycle::read_public_key(&boxes::settings_public_key(&key))?;
        let (pair, imported) = aws.ensure_key_pair(&settings.owner, &public_key).await?;
        if steps.record(Step::Aws, imported, format!("you are {}; key pair {pair}", who.arn().unwrap_or("?"))) {
            return steps.finish();
        }
    } else if steps.record(Step::Aws, false, "skipped: the local provider needs no AWS".into()) {
        return steps.finish();
    }

    // 5. Plain ssh, scp, rsync and editors reach boxes as `ws-NAME`.
    let ctx = global.context(Some(&manifest)).await?;
    let user_config = paths.home.join(".ssh/config");
    let had_include = crate::ssh_config::has_include(&user_config, &paths.ssh_config());
    ctx.write_ssh_config(true).await?;
    if steps.record(Step::SshConfig, !had_include, format!("{} includes {}", user_config.display(), paths.ssh_config().display())) {
        return steps.finish();
    }

    // 6. The root agent that points hostnames at boxes.
    let names = &manifest.manifest.hostnames;
    let (changed, detail) = match ctx.hosts.status().await {
        Ok(_) => (false, "running".to_string()),
        Err(_) if names.is_empty() => (false, "not needed: the manifest has no hostnames".to_string()),
        // Someone else runs the agent this laptop talks to: not ours to install.
        Err(e) if std::env::var_os(crate::hosts::SOCKET_ENV).is_some() => {
            (false, format!("not installed: {} names another agent, which does not answer ({e})", crate::hosts::SOCKET_ENV))
        }
        Err(_) => install_agent(names, interactive)?,
    };
    if steps.record(Step::HostsAgent, changed, detail) {
        return steps.finish();
    }

    // 7. Shell completions, where each shell looks for them.
    let written = install_completions(&paths.home)?;
    if steps.record(Step::Completions, written > 0, format!("bash, zsh, fish ({written} written)")) {
        return steps.finish();
    }

    // 8. The box.
    let report = boxes::launch(&ctx, &manifest, &boxes::CreateArgs { name: args.name.clone(), timeout: args.timeout }, global.output).await?;
    let changed = report.created || report.started;
    steps.record(Step::Create, changed, format!("box {} ({})", report.info.name, report.info.id));
    match global.output {
        Output::Json => output::json(&serde_json::json!({ "steps": steps.done, "create": report }))?,
        Output::Text => {
            boxes::print_created(&report);
            eprintln!("next: `workstation doctor` checks every piece, `workstation ssh` logs in");
        }
    }
    Ok(if report.up.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The steps done so far, shown as they finish.
struct Steps {
    done: Vec<Done>,
    until: Step,
    output: Output,
}

impl Steps {
    /// Records a finished step; true when init should stop after it.
    fn record(&mut self, step: Step, changed: bool, detail: String) -> bool {
        if self.output == Output::Text {
            let name = step.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            eprintln!("{} {name:<14} {detail}", if changed { "✔" } else { "·" });
        }
        self.done.push(Done { step, changed, detail });
        step >= self.until
    }

    fn finish(self) -> Result<ExitCode> {
        if self.output == Output::Json {
            output::json(&serde_json::json!({ "steps": self.done }))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn ask(question: &str, default: &str) -> Result<String> {
    eprint!("{question} [{default}]: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim();
    Ok(if line.is_empty() { default.to_string() } else { line.to_string() })
}

/// Installs the agent with sudo (it runs as root to edit /etc/hosts and is
/// allowed only the manifest's names). Returns (changed, what happened).
fn install_agent(names: &[String], interactive: bool) -> Result<(bool, String)> {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into());
    let mut cmd: Vec<String> = vec!["workstation-hosts".into(), "install".into(), "--user".into(), user];
    for n in names {
        cmd.extend(["--name".into(), n.clone()]);
    }
    let shown = format!("sudo {}", cmd.join(" "));
    if !on_path("workstation-hosts") {
        return Ok((false, format!("not installed: workstation-hosts is not on PATH; install it (cargo install --path hosts-agent), then `{shown}`")));
    }
    if interactive {
        eprintln!("The hosts agent points {} at your box. It runs as root to edit /etc/hosts, touches only those names, and needs sudo once.", names.join(", "));
        if !ask("install it now? (y/n)", "y")?.starts_with(['y', 'Y']) {
            return Ok((false, format!("skipped; later: {shown}")));
        }
    }
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut run = if is_root { Process::new(&cmd[0]) } else { Process::new("sudo") };
    if is_root {
        run.args(&cmd[1..]);
    } else {
        // Non-interactive: never wait for a password nobody will type.
        if !interactive {
            run.arg("-n");
        }
        run.args(&cmd);
    }
    let status = run.status().with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("installing the hosts agent failed ({status}); run `{shown}` yourself, then init again");
    }
    Ok((true, "installed and started".into()))
}

/// Writes each shell's completion file where it looks by default, when it
/// differs; returns how many were written.
fn install_completions(home: &Path) -> Result<usize> {
    let targets = [
        (Shell::Bash, home.join(".local/share/bash-completion/completions/workstation")),
        (Shell::Zsh, home.join(".local/share/zsh/site-functions/_workstation")),
        (Shell::Fish, home.join(".config/fish/completions/workstation.fish")),
    ];
    let mut written = 0;
    for (shell, path) in targets {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "workstation", &mut script);
        if std::fs::read(&path).ok().as_deref() == Some(script.as_slice()) {
            continue;
        }
        crate::atomic::write(&path, &script, 0o644).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    Ok(written)
}
