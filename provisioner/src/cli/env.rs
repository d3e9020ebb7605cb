//! env: a team's shared box, deployed by CI (docs/team.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use comfy_table::presets::NOTHING;
use comfy_table::Table;

use super::context::Global;
use super::output::{self, Output};
use crate::env::{self, EnvRef, UpRequest};
use crate::manifest::name::{EnvName, TeamName};

/// Team boxes: one always-on box per team environment running the whole
/// stack, which engineers point their laptops at (`share --env`) and
/// intercept one service of for themselves (`intercept --env ... --header`).
///
/// CI runs `up` on every push to the branch; engineers reach the box with
/// their own key, pushed for a minute through EC2 Instance Connect, if their
/// `team` tag is the box's team.
///
/// Examples:
///   workstation env up staging --team payments --ref main
///   workstation env list
///   workstation env status payments/staging
///   workstation env down payments/staging
#[derive(Debug, Subcommand)]
#[command(verbatim_doc_comment)]
pub enum EnvCommand {
    Up(UpArgs),
    List(ListArgs),
    Status(RefArgs),
    Down(RefArgs),
}

/// Create or update team box TEAM-ENV at REF.
///
/// The first run launches box TEAM-ENV (tagged workstation:team and
/// workstation:env) and uploads the tree at REF (`git archive`: committed
/// files only); later runs upload only what changed since the box's commit,
/// run the manifest's install and restart rules, and keep the data. Its
/// hostnames get TEAM-ENV as a label; every service gets
/// WORKSTATION_TEAM_ENV=TEAM/ENV. Exits 1 if the stack is not healthy.
///
/// Examples:
///   workstation env up staging --team payments --ref main
///   workstation env up staging --team payments --ref $GITHUB_SHA -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct UpArgs {
    /// The environment's name (a DNS label, e.g. staging).
    env: EnvName,
    /// The team it belongs to: engineers whose `team` tag is this reach it.
    #[arg(long)]
    team: TeamName,
    /// The commit to run: a commit id, branch or tag of the repository.
    #[arg(long = "ref", value_name = "REF")]
    git_ref: String,
    /// The repository (default: the one the manifest is in).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// How long to wait for services to become healthy.
    #[arg(long = "health-timeout", value_name = "DURATION", default_value = "5m", value_parser = super::duration::parse)]
    health_timeout: Duration,
}

/// List team boxes: team, environment, owner (who deploys it), state, commit.
///
/// Examples:
///   workstation env list
///   workstation env list --team payments -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ListArgs {
    /// Only this team's boxes.
    #[arg(long)]
    team: Option<TeamName>,
}

/// `status`: the box, its services with the personal routes in place, and
/// the last logins and intercepts the box recorded. `down`: terminate your
/// team box and its data (`env up` makes it again).
///
/// Examples:
///   workstation env status payments/staging
///   workstation env down payments/staging
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RefArgs {
    /// TEAM/ENV, e.g. payments/staging.
    #[arg(value_name = "TEAM/ENV")]
    env: EnvRef,
}

pub async fn run(global: &Global, cmd: EnvCommand) -> Result<ExitCode> {
    match cmd {
        EnvCommand::Up(args) => up(global, args).await,
        EnvCommand::List(args) => list(global, args).await,
        EnvCommand::Status(args) => status(global, args).await,
        EnvCommand::Down(args) => down(global, args).await,
    }
}

async fn up(global: &Global, args: UpArgs) -> Result<ExitCode> {
    let repo = super::preview::open_repo(global, args.repo.as_deref())?;
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    let target = EnvRef { team: args.team, env: args.env };
    let request = UpRequest { repo: &repo, git_ref: &args.git_ref, env: &target, health_timeout: args.health_timeout };
    let report = output::with_spinner(global.output, async |p| env::up(&ctx, &manifest, &request, p, &output::StderrLines).await).await?;
    match global.output {
        Output::Json => output::json(&report)?,
        Output::Text => {
            let verb = if report.created { "created" } else { "updated" };
            println!("{verb} team box {target} at {} on box {} ({})", &report.commit[..12], report.info.name, address(&report.info));
            println!("{:?} upload: {} files written, {} deleted", report.upload.mode, report.upload.written, report.upload.deleted);
            println!("{}", output::programs_table(&report.programs));
            if !report.hostnames.is_empty() {
                println!("hostnames: {} (engineers: `workstation share --env {target}`)", report.hostnames.join(", "));
            }
        }
    }
    Ok(if report.healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn address(info: &crate::provider::BoxInfo) -> String {
    info.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
}

async fn list(global: &Global, args: ListArgs) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    let boxes = env::list(&ctx, args.team.as_ref()).await?;
    match global.output {
        Output::Json => output::json(&boxes)?,
        Output::Text if boxes.is_empty() => println!("no team boxes"),
        Output::Text => {
            let mut table = Table::new();
            table.load_preset(NOTHING);
            table.set_header(["TEAM/ENV", "BOX", "OWNER", "STATE", "COMMIT", "ADDRESS"]);
            for b in &boxes {
                let t = b.team.as_ref().expect("listed team boxes have tags");
                table.add_row([
                    t.label(),
                    b.name.clone(),
                    b.owner.clone(),
                    b.state.as_str().into(),
                    t.commit.as_deref().map(|c| c[..12].to_owned()).unwrap_or_else(|| "-".into()),
                    address(b),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(global: &Global, args: RefArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    let status = env::status(&ctx, &manifest, &args.env).await?;
    match global.output {
        Output::Json => output::json(&status)?,
        Output::Text => {
            let commit = status.info.team.as_ref().and_then(|t| t.commit.as_deref()).map_or("no known commit", |c| &c[..12]);
            println!(
                "team box {} (box {}, {}, owner {}): {} at {commit}",
                args.env,
                status.info.name,
                address(&status.info),
                status.info.owner,
                status.info.state.as_str()
            );
            if !status.programs.is_empty() {
                println!("{}", output::programs_table(&status.programs));
            }
            if status.access.is_empty() {
                println!("no logins or intercepts recorded");
            }
            for e in &status.access {
                println!("{}  {}  {}", e.at.format("%Y-%m-%d %H:%M:%S UTC"), e.who, e.what);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn down(global: &Global, args: RefArgs) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let ctx = global.context(manifest.as_ref()).await?;
    let info = output::with_spinner(global.output, async |p| env::down(&ctx, &args.env, p).await).await?;
    match global.output {
        Output::Json => output::json(&info)?,
        Output::Text => println!("team box {} (box {}, {}) terminated with its data", args.env, info.name, info.id),
    }
    Ok(ExitCode::SUCCESS)
}
