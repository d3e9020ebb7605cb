//! preview: a box per pull request, driven from CI (see
//! .github/workflows/preview.yml and docs/preview.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use comfy_table::presets::NOTHING;
use comfy_table::Table;

use super::context::Global;
use super::output::{self, Output};
use crate::preview::github::{GitHub, Outcome};
use crate::preview::{self, dns, summary, Repo, UpRequest};

/// Preview boxes for pull requests: one box per pull request with the tree
/// of one commit, its stack up and seeded, hostnames like
/// api.pr-12.dev.example.com. CI runs `up` on every push and `down` when
/// the pull request closes; `reap` terminates previews past their expiry.
///
/// CI runs these with its own owner (e.g. WORKSTATION_OWNER=preview) and
/// credentials (terraform's preview role), which reach only its own boxes.
///
/// Examples:
///   workstation preview key --pr 12
///   workstation preview up --pr 12 --ref HEAD
///   workstation preview list -o markdown
///   workstation preview down 12
#[derive(Debug, Subcommand)]
pub enum PreviewCommand {
    Key(KeyArgs),
    Up(UpArgs),
    /// List every owner's previews: pull request, commit, expiry, address.
    ///
    /// Examples:
    ///   workstation preview list
    ///   workstation preview list -o json
    #[command(verbatim_doc_comment)]
    List,
    Down(DownArgs),
}

/// Write pull request N's own SSH key, the only one its preview box admits.
///
/// The key is derived from the secret seed in WORKSTATION_PREVIEW_KEY_SEED
/// (CI's preview environment secret) and N: every run of pull request N
/// gets the same key, and no other pull request's run can make it. Run it
/// before `preview up`; it never replaces another key at the path.
///
/// Examples:
///   workstation preview key --pr 12
///   workstation preview key --pr 12 --identity ~/.ssh/preview-12 -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct KeyArgs {
    /// The pull request number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pr: u32,
    /// Where to write the private key (and PATH.pub); default: the
    /// identity workstation logs in with (ssh_key, WORKSTATION_SSH_KEY).
    #[arg(long, value_name = "PATH")]
    identity: Option<PathBuf>,
}

/// Create or update the preview of pull request N at REF.
///
/// The first run launches box pr-N and uploads the tree at REF (`git
/// archive`: only committed files, never a working tree); later runs upload
/// only the files that changed since the box's commit, run the manifest's
/// install and restart rules (as `sync` does), and keep the data. Every
/// service gets WORKSTATION_PREVIEW=N and WORKSTATION_PREVIEW_URL. Each run
/// moves the expiry to now + --ttl. Exits 1 if the stack is not healthy.
///
/// In GitHub Actions with GITHUB_TOKEN set (or with --github), the run is
/// also a GitHub Deployment of environment pr-N (in progress, then success
/// with the preview's URL or failure with the run's log) and a check run on
/// the commit with the summary `-o markdown` prints.
///
/// Examples:
///   workstation preview up --pr 12 --ref HEAD
///   workstation preview up --pr 12 --ref origin/feature --ttl 7d -o markdown
///   workstation preview up --pr 12 --ref $GITHUB_SHA --zone-id Z0123456789ABCDEFGHIJ
///   workstation preview up --pr 12 --ref $GITHUB_SHA --role arn:aws:iam::123456789012:role/workstation-preview
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct UpArgs {
    /// The pull request number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pr: u32,
    /// The commit to run: a commit id, branch or tag of the repository.
    #[arg(long = "ref", value_name = "REF")]
    git_ref: String,
    /// How long the preview lives after this run before `reap` terminates
    /// it (at most 90d).
    #[arg(long, value_name = "DURATION", default_value = "3d", value_parser = super::duration::parse)]
    ttl: Duration,
    /// The repository (default: the one the manifest is in).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Route 53 hosted zone for the preview's hostnames (terraform output
    /// preview_zone_id); without it, only this machine's hosts agent is told.
    #[arg(long, value_name = "ID", env = "WORKSTATION_PREVIEW_ZONE")]
    zone_id: Option<String>,
    /// How long to wait for services to become healthy.
    #[arg(long = "health-timeout", value_name = "DURATION", default_value = "5m", value_parser = super::duration::parse)]
    health_timeout: Duration,
    /// At most this many previews of this owner at once: a new one beyond
    /// it is refused (IAM cannot count instances).
    #[arg(long, value_name = "N", env = "WORKSTATION_PREVIEW_MAX", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    max: u32,
    #[command(flatten)]
    github: GitHubArgs,
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Debug, Args)]
struct GitHubArgs {
    /// Report to GitHub (deployment, check run) even outside GitHub
    /// Actions; needs GITHUB_TOKEN and GITHUB_REPOSITORY (GITHUB_API_URL,
    /// GITHUB_SERVER_URL and GITHUB_RUN_ID as Actions sets them).
    #[arg(long)]
    github: bool,
}

impl GitHubArgs {
    fn client(&self) -> Result<Option<GitHub>> {
        Ok(GitHub::from_env(self.github)?)
    }
}

/// A GitHub report that failed: said, not fatal (the preview itself is
/// what the run is for; the pull request comment still reports it).
fn warn_github<T>(result: std::result::Result<T, preview::github::GitHubError>) -> Option<T> {
    result.map_err(|e| eprintln!("warning: {e}")).ok()
}

/// The pull request's own AWS session (CI, terraform/preview.tf).
#[derive(Debug, Args)]
struct SessionArgs {
    /// Work as this role (terraform output preview_role_arn), assumed with
    /// a session tag naming the pull request: the run then reaches only
    /// that pull request's box and records. Without it, the credentials
    /// the AWS chain finds are used as they are.
    #[arg(long, value_name = "ARN", env = "WORKSTATION_PREVIEW_ROLE", value_parser = role_arn)]
    role: Option<String>,
    /// The session tag that names the pull request (terraform's
    /// preview_session_tag).
    #[arg(long = "session-tag", value_name = "KEY", env = "WORKSTATION_PREVIEW_SESSION_TAG", default_value = "workstation-preview")]
    session_tag: String,
}

impl SessionArgs {
    /// From now on, every AWS client of this process is pull request `pr`'s
    /// session.
    fn assume(&self, global: &Global, pr: u32) -> Result<()> {
        let Some(role) = self.role.clone().filter(|r| !r.trim().is_empty()) else { return Ok(()) };
        if global.provider_kind()? != crate::provider::ProviderKind::Aws {
            anyhow::bail!("--role (WORKSTATION_PREVIEW_ROLE) is an AWS role; the local provider has none: unset it, or use --provider aws");
        }
        crate::provider::aws::sdk::assume(crate::provider::aws::sdk::Session {
            role_arn: role,
            session_name: format!("preview-pr-{pr}"),
            tag: (self.session_tag.clone(), pr.to_string()),
        });
        Ok(())
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/NAME`, or empty (an unset CI variable).
fn role_arn(text: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let ok = text.trim().is_empty()
        || (parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "iam"
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && parts[5].strip_prefix("role/").is_some_and(|n| !n.is_empty()));
    if ok {
        Ok(text.trim().to_owned())
    } else {
        Err("expected a role ARN, arn:aws:iam::ACCOUNT:role/NAME (terraform output preview_role_arn)".into())
    }
}

/// Terminate the preview of pull request N; its data goes with it. With a
/// zone, its records (every A/AAAA record with a pr-N label) go first.
/// Reporting to GitHub (see `preview up --help`), it marks environment
/// pr-N's deployments inactive.
///
/// Examples:
///   workstation preview down 12
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DownArgs {
    /// The pull request number.
    #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pr: u32,
    /// Route 53 hosted zone to remove the preview's records from.
    #[arg(long, value_name = "ID", env = "WORKSTATION_PREVIEW_ZONE")]
    zone_id: Option<String>,
    #[command(flatten)]
    github: GitHubArgs,
    #[command(flatten)]
    session: SessionArgs,
}

pub async fn run(global: &Global, cmd: PreviewCommand) -> Result<ExitCode> {
    match cmd {
        PreviewCommand::Key(args) => key(global, args),
        PreviewCommand::Up(args) => up(global, args).await,
        PreviewCommand::List => list(global).await,
        PreviewCommand::Down(args) => down(global, args).await,
    }
}

fn key(global: &Global, args: KeyArgs) -> Result<ExitCode> {
    let identity = match args.identity {
        Some(path) => path,
        None => global.settings()?.ssh_key,
    };
    let seed = std::env::var(preview::key::SEED_ENV).map_err(|_| preview::key::KeyError::NoSeed)?;
    let key = preview::key::derive(&seed, args.pr)?;
    preview::key::install(&identity, &key)?;
    let fingerprint = key.public_key().fingerprint(Default::default()).to_string();
    match global.output {
        Output::Json => output::json(&serde_json::json!({"pr": args.pr, "identity": identity, "fingerprint": fingerprint}))?,
        Output::Text => println!("pull request #{}'s key is {} ({fingerprint})", args.pr, identity.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The repository a deploy takes its commit from: `--repo`, else the
/// manifest's directory; the manifest must be a file of it.
pub(super) fn open_repo(global: &Global, repo: Option<&std::path::Path>) -> Result<Repo> {
    let manifest_path = global.manifest_path()?;
    let dir = repo.map(PathBuf::from).unwrap_or_else(|| manifest_path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")));
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("--repo {} does not exist", dir.display()))?;
    let repo = Repo::open(&dir)?;
    repo.check_manifest_path(&manifest_path)?;
    Ok(repo)
}

async fn zone(global: &Global, manifest: Option<&crate::manifest::LoadedManifest>, id: Option<&str>) -> Result<Option<dns::Zone>> {
    // An empty WORKSTATION_PREVIEW_ZONE (a CI variable left unset) is none.
    let Some(id) = id.filter(|i| !i.trim().is_empty()) else { return Ok(None) };
    let aws = global.aws_settings()?;
    let sdk = crate::provider::aws::sdk::config(aws.profile.as_deref(), super::context::aws_region(&aws, manifest)).await;
    Ok(Some(dns::Zone::new(aws_sdk_route53::Client::new(&sdk), id)?))
}

async fn up(global: &Global, args: UpArgs) -> Result<ExitCode> {
    args.session.assume(global, args.pr)?;
    let github = args.github.client()?;
    let repo = open_repo(global, args.repo.as_deref())?;
    let manifest = global.load_manifest()?;
    let zone = zone(global, Some(&manifest), args.zone_id.as_deref()).await?;
    let ctx = global.context(Some(&manifest)).await?;
    let request = UpRequest {
        repo: &repo,
        git_ref: &args.git_ref,
        number: args.pr,
        ttl: args.ttl,
        zone: zone.as_ref(),
        health_timeout: args.health_timeout,
        max: args.max as usize,
    };
    let deployment = match &github {
        Some(g) => {
            let sha = repo.resolve(&args.git_ref)?;
            warn_github(g.start(args.pr, &sha).await).map(|id| (g, id, sha))
        }
        None => None,
    };
    let result = output::with_spinner(global.output, async |p| preview::up(&ctx, &manifest, &request, p, &output::StderrLines).await).await;
    if let Some((g, id, sha)) = deployment {
        let (summary, error) = match &result {
            Ok(report) => (summary::markdown(report), String::new()),
            Err(e) => (String::new(), format!("{e:#}")),
        };
        let outcome = match &result {
            Ok(report) => Outcome::Up { url: report.url.as_deref(), healthy: report.healthy, summary: &summary },
            Err(_) => Outcome::Failed { error: &error },
        };
        warn_github(g.finish(id, &sha, &outcome).await);
    }
    let report = result?;
    match (global.output, global.markdown) {
        (_, true) => print!("{}", summary::markdown(&report)),
        (Output::Json, _) => output::json(&report)?,
        (Output::Text, _) => {
            println!(
                "preview #{} at {} on box {} ({}): {}",
                report.number,
                &report.commit[..12],
                report.info.name,
                report.info.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                report.url.as_deref().unwrap_or("no hostnames")
            );
            println!("{}", output::programs_table(&report.programs));
            output::print_pointed(&report.pointed);
            println!("expires {}", report.expires.format("%Y-%m-%d %H:%M UTC"));
        }
    }
    Ok(if report.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn list(global: &Global) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    let previews = preview::list(&ctx).await?;
    let url = |b: &crate::provider::BoxInfo, n: u32| {
        let names = manifest.as_ref().map(|m| preview::hostnames(&m.manifest.hostnames, n)).unwrap_or_default();
        preview::url(&names, b.address)
    };
    match (global.output, global.markdown) {
        (Output::Json, false) => output::json(&previews)?,
        (_, markdown) => {
            if previews.is_empty() && !markdown {
                println!("no previews");
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new();
            table.load_preset(if markdown { comfy_table::presets::ASCII_MARKDOWN } else { NOTHING });
            table.set_header(["PR", "OWNER", "STATE", "COMMIT", "EXPIRES", "URL"]);
            for b in &previews {
                let p = b.preview.as_ref().expect("listed previews have tags");
                table.add_row([
                    format!("#{}", p.number),
                    b.owner.clone(),
                    b.state.as_str().into(),
                    p.commit.as_deref().map(|c| c[..12].to_owned()).unwrap_or_else(|| "-".into()),
                    p.expires.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "-".into()),
                    url(b, p.number).unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn down(global: &Global, args: DownArgs) -> Result<ExitCode> {
    args.session.assume(global, args.pr)?;
    let github = args.github.client()?;
    let manifest = global.manifest_for_lookup();
    let zone = zone(global, manifest.as_ref(), args.zone_id.as_deref()).await?;
    let ctx = global.context(manifest.as_ref()).await?;
    let down = output::with_spinner(global.output, async |p| preview::down(&ctx, args.pr, zone.as_ref(), p).await).await?;
    if let Some(g) = &github {
        warn_github(g.deactivate(args.pr).await);
    }
    match global.output {
        Output::Json => output::json(&down)?,
        Output::Text => {
            match &down.info {
                Some(info) => println!("preview #{} (box {}, {}) terminated", args.pr, info.name, info.id),
                None => println!("preview #{}'s box was gone already", args.pr),
            }
            if !down.records.is_empty() {
                println!("removed {} from Route 53", down.records.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
