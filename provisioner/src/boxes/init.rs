//! `workstation init`'s steps, from a fresh laptop to a working box. Each
//! step checks before it acts and reports whether it changed anything, so
//! running init again resumes after a failure and a finished laptop sees
//! no change. The CLI supplies the questions and the printing ([`Ui`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap_complete::Shell;
use indicatif::ProgressBar;
use serde::Serialize;

use crate::boxes::access::{public_key_path, read_public_key};
use crate::boxes::data::DataOnCreate;
use crate::boxes::{Context, CreateReport};
use crate::laptop::hosts::SOCKET_ENV;
use crate::laptop::paths::on_path;
use crate::laptop::paths::Paths;
use crate::laptop::settings::{self, Settings};
use crate::manifest::name::BoxName;
use crate::manifest::name::Owner;
use crate::manifest::LoadedManifest;
use crate::provider::aws::AwsProvider;
use crate::provider::ProviderKind;

/// The steps, in order; `--until STEP` stops after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
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

/// What a step did.
#[derive(Debug, Serialize)]
pub struct Done {
    pub step: Step,
    pub changed: bool,
    pub detail: String,
}

/// What init asks of the person running it, and how it shows progress.
pub trait Ui {
    /// Asks `question`; an empty answer means `default`.
    fn ask(&self, question: &str, default: &str) -> Result<String>;
    /// A step finished.
    fn done(&self, done: &Done);
    /// A spinner for the long create step (None: log lines instead).
    fn spinner(&self) -> Option<ProgressBar>;
    /// Something the engineer should read before a question.
    fn say(&self, text: &str);
}

pub struct Options {
    /// Ask questions (a terminal); otherwise take defaults and flags.
    pub interactive: bool,
    pub owner: Option<String>,
    pub provider: Option<ProviderKind>,
    pub profile: Option<String>,
    pub region: Option<String>,
    pub name: BoxName,
    pub until: Step,
    pub health_timeout: Duration,
}

/// What the CLI provides that the library does not own: the manifest as
/// the command line names it, the context for a provider, and the
/// completion script of each shell.
// Used only through generics on the CLI's runtime: no `Send` bound needed.
#[allow(async_fn_in_trait)]
pub trait Env {
    fn manifest(&self) -> Result<LoadedManifest>;
    async fn context(&self, provider: ProviderKind, manifest: &LoadedManifest) -> Result<Context>;
    /// The AWS clients for `profile` and `region` (STS: who you are; EC2:
    /// your key pair).
    async fn aws(&self, profile: Option<&str>, region: Option<String>) -> (aws_sdk_sts::Client, aws_sdk_ec2::Client, aws_sdk_sqs::Client);
    fn completion_script(&self, shell: Shell) -> Vec<u8>;
}

pub struct Initialized {
    pub steps: Vec<Done>,
    /// None when `until` stopped before the create step.
    pub create: Option<CreateReport>,
}

/// Runs the steps up to `opts.until`.
pub async fn run(paths: &Paths, opts: &Options, env: &impl Env, ui: &dyn Ui) -> Result<Initialized> {
    let mut steps = Steps { done: Vec::new(), until: opts.until, ui };

    // 1. What this machine must have.
    let missing: Vec<&str> = ["ssh", "ssh-keygen", "rsync"].into_iter().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        bail!(
            "missing {}: install them (Debian/Ubuntu: `sudo apt install openssh-client rsync`; macOS: `brew install rsync`, ssh is built in), then run init again",
            missing.join(", ")
        );
    }
    if steps.record(Step::Prerequisites, false, "ssh, ssh-keygen, rsync found".into()) {
        return Ok(steps.finish(None));
    }

    // 2. Settings: what the flags and answers say, merged into the file.
    let existing = Settings::read_file(&paths.settings_file())?;
    // $USER as it is only if it is a valid owner (a DNS label and a Linux
    // user name, which IAM's principal tag must carry too): "Alice.Smith"
    // is proposed as "alice-smith", and init says why.
    let login = std::env::var("USER").ok();
    let suggested = login.as_deref().and_then(Owner::suggest).map(|o| o.to_string());
    if let (Some(login), Some(s)) = (&login, &suggested) {
        if login != s && opts.owner.is_none() && existing.owner.is_none() {
            ui.say(&format!("your login {login:?} is not a valid owner name (a-z, 0-9 and '-', a letter first, at most 32): proposing {s:?}; your platform team maps the same name to your AWS identity"));
        }
    }
    let default_owner = opts.owner.clone().or(existing.owner.clone()).or(suggested).unwrap_or_default();
    let owner = if opts.interactive { ui.ask("owner name (tags your boxes)", &default_owner)? } else { default_owner };
    let provider = opts.provider.or(existing.provider).unwrap_or(ProviderKind::Aws);
    let (mut profile, mut region) = (opts.profile.clone().or(existing.aws.profile.clone()), opts.region.clone().or(existing.aws.region.clone()));
    if opts.interactive && provider == ProviderKind::Aws {
        profile = Some(ui.ask("AWS profile (empty: the default credential chain)", profile.as_deref().unwrap_or(""))?).filter(|p| !p.is_empty());
        region = Some(ui.ask("AWS region (empty: the manifest's)", region.as_deref().unwrap_or(""))?).filter(|r| !r.is_empty());
    }
    let changed = settings::write_init(&paths.settings_file(), &owner, provider, profile.as_deref(), region.as_deref())?;
    if steps.record(Step::Settings, changed, format!("{} (owner {owner})", paths.settings_file().display())) {
        return Ok(steps.finish(None));
    }

    // 3. The SSH key boxes trust.
    let settings = Settings::load(paths, &|k| std::env::var(k).ok())?;
    let key = settings.ssh_key.clone();
    let created = ensure_ssh_key(&key, &owner, opts.interactive)?;
    if steps.record(Step::SshKey, created, format!("{} (ed25519)", key.display())) {
        return Ok(steps.finish(None));
    }

    // 4. Who AWS says you are, and your key pair there.
    let manifest = env.manifest()?;
    if provider == ProviderKind::Aws {
        let region = region.clone().or_else(|| manifest.manifest.machine.region.clone());
        let (sts, ec2, sqs) = env.aws(profile.as_deref(), region).await;
        let who = sts.get_caller_identity().send().await.map_err(|e| {
            anyhow::anyhow!(
                "AWS credentials do not work: {}; sign in (`aws sso login{}`) or set up a profile, then run init again",
                aws_sdk_sts::error::DisplayErrorContext(&e),
                profile.as_deref().map(|p| format!(" --profile {p}")).unwrap_or_default()
            )
        })?;
        let aws = AwsProvider::new(ec2, sqs, settings.aws.address);
        let public_key = read_public_key(&public_key_path(&key))?;
        let (pair, imported) = aws.ensure_key_pair(&settings.owner, &public_key).await?;
        if steps.record(Step::Aws, imported, format!("you are {}; key pair {pair}", who.arn().unwrap_or("?"))) {
            return Ok(steps.finish(None));
        }
    } else if steps.record(Step::Aws, false, "skipped: the local provider needs no AWS".into()) {
        return Ok(steps.finish(None));
    }

    // 5. Plain ssh, scp, rsync and editors reach boxes as `ws-NAME`.
    let ctx = env.context(provider, &manifest).await?;
    let user_config = paths.home.join(".ssh/config");
    let had_include = crate::ssh::ssh_config::has_include(&user_config, &paths.ssh_config());
    ctx.write_ssh_config(true).await?;
    if steps.record(Step::SshConfig, !had_include, format!("{} includes {}", user_config.display(), paths.ssh_config().display())) {
        return Ok(steps.finish(None));
    }

    // 6. The root agent that points hostnames at boxes.
    let names = &manifest.manifest.hostnames;
    let (changed, detail) = match ctx.hosts.status().await {
        Ok(_) => (false, "running".to_string()),
        Err(_) if names.is_empty() => (false, "not needed: the manifest has no hostnames".to_string()),
        // Someone else runs the agent this laptop talks to: not ours to install.
        Err(e) if std::env::var_os(SOCKET_ENV).is_some() => (false, format!("not installed: {SOCKET_ENV} names another agent, which does not answer ({e})")),
        Err(_) => install_agent(names, opts.interactive, ui)?,
    };
    if steps.record(Step::HostsAgent, changed, detail) {
        return Ok(steps.finish(None));
    }

    // 7. Shell completions, where each shell looks for them.
    let written = install_completions(&paths.home, env)?;
    if steps.record(Step::Completions, written > 0, format!("bash, zsh, fish ({written} written)")) {
        return Ok(steps.finish(None));
    }

    // 8. The box.
    let progress = ui.spinner();
    let report = ctx.create_box(&opts.name, &manifest, DataOnCreate::Reattach, opts.health_timeout, progress.as_ref()).await;
    progress.inspect(|p| p.finish_and_clear());
    let mut report = report?;
    report.dotfiles = ctx.dotfiles_on(&report.info, settings.dotfiles.as_deref()).await;
    steps.record(Step::Create, report.created || report.started, format!("box {} ({})", report.info.name, report.info.id));
    Ok(steps.finish(Some(report)))
}

/// The steps done so far, shown as they finish.
struct Steps<'a> {
    done: Vec<Done>,
    until: Step,
    ui: &'a dyn Ui,
}

impl Steps<'_> {
    /// Records a finished step; true when init should stop after it.
    fn record(&mut self, step: Step, changed: bool, detail: String) -> bool {
        let done = Done { step, changed, detail };
        self.ui.done(&done);
        self.done.push(done);
        step >= self.until
    }

    fn finish(self, create: Option<CreateReport>) -> Initialized {
        Initialized { steps: self.done, create }
    }
}

/// Creates an ed25519 key at `key` unless one is there; true if it did.
/// Interactive runs let ssh-keygen ask for a passphrase.
fn ensure_ssh_key(key: &Path, owner: &str, interactive: bool) -> Result<bool> {
    if key.exists() {
        return Ok(false);
    }
    if let Some(dir) = key.parent() {
        crate::ssh::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut keygen = Command::new("ssh-keygen");
    keygen.args(["-q", "-t", "ed25519", "-C", &format!("{owner}@workstation"), "-f"]).arg(key);
    if !interactive {
        keygen.args(["-N", ""]);
    }
    let status = keygen.status().context("cannot run ssh-keygen")?;
    if !status.success() {
        bail!("ssh-keygen failed ({status}); create a key with `ssh-keygen -t ed25519 -f {}` and run init again", key.display());
    }
    Ok(true)
}

/// Installs the agent with sudo (it runs as root to edit /etc/hosts and is
/// allowed only the manifest's names). Returns (changed, what happened).
fn install_agent(names: &[String], interactive: bool, ui: &dyn Ui) -> Result<(bool, String)> {
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
        ui.say(&format!(
            "The hosts agent points {} at your box. It runs as root to edit /etc/hosts, touches only those names, and needs sudo once.",
            names.join(", ")
        ));
        if !ui.ask("install it now? (y/n)", "y")?.starts_with(['y', 'Y']) {
            return Ok((false, format!("skipped; later: {shown}")));
        }
    }
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut run = if is_root { Command::new(&cmd[0]) } else { Command::new("sudo") };
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
fn install_completions(home: &Path, env: &impl Env) -> Result<usize> {
    let targets = [
        (Shell::Bash, home.join(".local/share/bash-completion/completions/workstation")),
        (Shell::Zsh, home.join(".local/share/zsh/site-functions/_workstation")),
        (Shell::Fish, home.join(".config/fish/completions/workstation.fish")),
    ];
    let mut written = 0;
    for (shell, path) in targets {
        let script = env.completion_script(shell);
        if std::fs::read(&path).ok().as_deref() == Some(script.as_slice()) {
            continue;
        }
        workstation_hosts_protocol::atomic::write(&path, &script, 0o644).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    Ok(written)
}
