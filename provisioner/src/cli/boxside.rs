//! `workstation box ...`: run on the box by its own units.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::boxside::host_key;
use crate::boxside::self_api::SelfApi;
use crate::manifest::SecretRef;
use crate::stack::layout::SecretSource;

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    PublishHostKey(PublishArgs),
    IdleCheck(IdleCheckArgs),
    Launch(LaunchArgs),
    HoldSecrets(HoldArgs),
    Front(FrontArgs),
    Route(RouteArgs),
    AuthorizedKeys(AuthorizedKeysArgs),
    Queues(QueuesArgs),
    MysqlLoad(MysqlLoadArgs),
    Hibernation(HibernationArgs),
}

/// Prepare this box to hibernate: what an image built with box.hibernate
/// runs at every boot (images/hibernation.nix).
///
/// A swap file the size of RAM on the root, swapped on at the highest
/// priority; its offset and device written to /sys/power and its offset
/// to GRUB's environment block, which the kernel command line expands
/// (resume_offset). Prints `ready: ...` or `not ready: why` and writes the
/// same line to --status, which `workstation doctor` reads.
///
/// Examples:
///   workstation box hibernation --swap-file /swapfile --resume-device /dev/disk/by-label/nixos --grub-env /boot/grub/grubenv --status /var/lib/workstation-root/hibernation
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct HibernationArgs {
    #[arg(long, value_name = "PATH")]
    swap_file: PathBuf,
    /// The root's block device, as the kernel command line's resume= names it.
    #[arg(long, value_name = "PATH")]
    resume_device: PathBuf,
    #[arg(long, value_name = "PATH")]
    grub_env: PathBuf,
    #[arg(long, value_name = "PATH")]
    status: PathBuf,
}

/// Make a local box's queues in the SQS server beside its services.
///
/// What a local box's `sqs` store runs once its server (moto's) starts:
/// each queue and its dead-letter queue, as on AWS. A box in AWS uses SQS
/// itself; `workstation up` makes its queues from the laptop.
///
/// Examples:
///   workstation box queues --endpoint http://127.0.0.1:9324 --queue emails --queue payments.fifo
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct QueuesArgs {
    /// The server, on the box's loopback.
    #[arg(long, value_name = "URL")]
    endpoint: String,
    /// A queue as the manifest names it (NAME, or NAME.fifo).
    #[arg(long = "queue", value_name = "NAME", required = true)]
    queues: Vec<String>,
    /// Only check that every queue is there (exit status 1 if not).
    #[arg(long)]
    check: bool,
}

/// Load a mysql store's seed from stdin on several sessions at once.
///
/// What `workstation seed` runs on the box for a mysql store: a dump
/// (`mysqldump` of one database) cut into statements, its rows spread over
/// the sessions and everything else in order; or one CSV file cut at
/// record ends, the pieces loaded by `LOAD DATA LOCAL INFILE` at once.
/// Each session is the `mariadb` client (`--sandbox` for a dump).
///
/// Examples:
///   workstation box mysql-load --port 3306 --user workstation_load --database shop__ws_load dump < shop.sql
///   workstation box mysql-load --port 3306 --user workstation_load --database shop__ws_load csv --table items --header < items.csv
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct MysqlLoadArgs {
    /// The server's port on the box's loopback.
    #[arg(long)]
    port: u16,
    #[arg(long)]
    user: String,
    /// The database statements run in (the staging one).
    #[arg(long)]
    database: String,
    /// Sessions at once [default: the box's cores, 2 to 8].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    sessions: Option<u16>,
    #[command(subcommand)]
    format: MysqlSeed,
}

#[derive(Debug, Subcommand)]
enum MysqlSeed {
    /// SQL statements, as mysqldump writes them.
    Dump,
    /// One table's CSV file.
    Csv {
        #[arg(long)]
        table: String,
        /// The first line names the columns; skip it.
        #[arg(long)]
        header: bool,
    },
}

/// Print the keys pushed for this login, and record who logged in.
///
/// sshd's AuthorizedKeysCommand on every box: the keys engineers pushed in
/// the last 60 s (EC2 Instance Connect, read from the instance metadata;
/// --pushed on a local box), plain keys only, and an entry in the access
/// log for the key sshd asks about. Prints nothing on any failure, so sshd
/// refuses the key.
///
/// Examples:
///   workstation box authorized-keys --log /var/lib/workstation/access.jsonl alice SHA256:Qn4...
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AuthorizedKeysArgs {
    /// The user logging in (sshd's %u).
    user: String,
    /// The offered key's fingerprint (sshd's %f).
    fingerprint: String,
    /// The access log (`env status` reads it).
    #[arg(long)]
    log: PathBuf,
    /// A local box's pushed keys: DIR/USER (default: the instance metadata).
    #[arg(long, value_name = "DIR")]
    pushed: Option<PathBuf>,
}

/// Run the HTTP proxy (nginx) in front of services.
///
/// What supervisord's `ws-front` program runs: writes nginx's
/// configuration for the fronts given and the personal routes recorded,
/// then becomes nginx.
///
/// Examples:
///   workstation box front --dir "$root/run/front" --control "$root/run/front.sock" \
///     --front api=8080:18080
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct FrontArgs {
    /// nginx's directory (configuration, routes, pid).
    #[arg(long, value_name = "DIR")]
    dir: String,
    /// The unix socket that answers which configuration runs.
    #[arg(long, value_name = "PATH")]
    control: String,
    /// SERVICE=PORT:TO: listen on PORT, send to the service's TO.
    #[arg(long = "front", value_name = "SERVICE=PORT:TO", required = true)]
    fronts: Vec<crate::stack::front::FrontSpec>,
}

/// Route a service's matching requests to a laptop while the session lasts.
///
/// The box side of `workstation intercept --header`/`--mirror`, run over
/// the intercept's SSH connection: a line protocol on stdin and stdout
/// (boxside/route.rs).
///
/// Examples:
///   workstation box route --dir "$root/run/front" --control "$root/run/front.sock" \
///     --service api --by alice@mac --header x-dev=alice
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RouteArgs {
    #[arg(long, value_name = "DIR")]
    dir: String,
    #[arg(long, value_name = "PATH")]
    control: String,
    #[arg(long, value_parser = holder_name)]
    service: String,
    /// Who routes (owner@host).
    #[arg(long, value_parser = holder_name)]
    by: String,
    /// NAME=VALUE: requests with this header go to the laptop.
    #[arg(long, value_name = "NAME=VALUE", value_parser = crate::stack::front::Match::header, required_unless_present = "mirror")]
    header: Option<crate::stack::front::Match>,
    /// The laptop gets a copy of every request; the box answers.
    #[arg(long, conflicts_with = "header")]
    mirror: bool,
    /// STORE=postgres:PORT:DATABASE or STORE=redis:PORT: a copy for this session.
    #[arg(long = "branch", value_name = "SPEC")]
    branches: Vec<crate::boxside::branch::BranchSpec>,
    /// Keep the branches when the session ends.
    #[arg(long)]
    keep: bool,
    /// The box's access log: the route's start and end are recorded there.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
}

/// Start a program with its secrets in its environment.
///
/// What a program's launcher script runs when the manifest gives it
/// `secrets`: reads each value (from Systems Manager or Secrets Manager
/// with the box's role, or from what the laptop handed a local box), drops
/// to --user and execs the program. Nothing it reads is written anywhere;
/// a failure names the variable and the reference, never a value.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Where the values come from.
    #[arg(long, value_enum)]
    from: SecretSource,
    /// The holder's socket (--from laptop).
    #[arg(long, required_if_eq("from", "laptop"), value_name = "PATH")]
    socket: Option<String>,
    /// Run the program as this user, after reading the secrets as root.
    #[arg(long)]
    user: Option<String>,
    /// VAR=REFERENCE, such as STRIPE_KEY=ssm:/workstation/shared/stripe
    /// ({owner} stands for this box's owner).
    #[arg(long = "secret", value_name = "VAR=REFERENCE", value_parser = parse_secret)]
    secrets: Vec<(String, SecretRef)>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    program: Vec<String>,
}

/// Keep the secrets a laptop hands a local box (JSON on stdin) in memory.
///
/// Run by `workstation up` and `restart` over SSH for a local box: passes
/// the values to the box's running holder, or starts one that answers
/// `box launch` on a root-only socket until the box halts.
#[derive(Debug, Args)]
pub struct HoldArgs {
    #[arg(long, value_name = "PATH")]
    socket: String,
    /// Be the holder (started by this command itself).
    #[arg(long, hide = true)]
    serve: bool,
}

/// A name that goes into records and nginx's configuration as it is.
fn holder_name(s: &str) -> Result<String, String> {
    match crate::stack::holds::valid_holder(s) {
        true => Ok(s.to_owned()),
        false => Err("use letters, digits and @ . _ - (at most 100)".into()),
    }
}

fn parse_secret(s: &str) -> Result<(String, SecretRef), String> {
    let (var, reference) = s.split_once('=').ok_or("expected VAR=REFERENCE")?;
    Ok((var.to_owned(), reference.parse().map_err(|e: crate::manifest::secret::BadSecretRef| e.to_string())?))
}

/// Measure activity, record it, warn and stop this box when idle.
///
/// Run every minute by the image's timer, with the manifest's [idle]
/// policy. Activity: SSH sessions carrying more than keepalives, traffic to
/// the services' ports, CPU above idle.cpu_percent, `workstation sync`.
#[derive(Debug, Args)]
pub struct IdleCheckArgs {
    /// The box root (state in <root>/run/idle.json).
    #[arg(long, env = "WORKSTATION_BOX_ROOT", default_value = crate::stack::layout::DEFAULT_ROOT, value_name = "DIR")]
    root: PathBuf,
    /// This instance's id (default: from the instance metadata service).
    #[arg(long)]
    instance_id: Option<String>,
    /// This instance's region (default: from the instance metadata service).
    #[arg(long)]
    region: Option<String>,
    /// Decide and print; do not tag, warn or stop.
    #[arg(long)]
    dry_run: bool,
    /// Decide as of this time (RFC 3339) instead of now (with --dry-run:
    /// what happens at 20:00?).
    #[arg(long, value_name = "TIME")]
    at: Option<chrono::DateTime<chrono::Utc>>,
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

pub async fn run(global: &super::context::Global, cmd: BoxCommand) -> Result<ExitCode> {
    match cmd {
        BoxCommand::Launch(args) => {
            let launch = crate::boxside::launch::Launch { from: args.from, socket: args.socket, user: args.user, secrets: args.secrets, program: args.program };
            // Returns only when the program could not be started.
            let failed = launch.run().await;
            eprintln!("workstation: {failed}");
            Ok(ExitCode::FAILURE)
        }
        BoxCommand::HoldSecrets(args) if args.serve => {
            crate::boxside::held::serve(&args.socket)?;
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::HoldSecrets(args) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            let handover: crate::boxside::held::Handover =
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the handed-over secrets are not JSON: {e}"))?;
            let (held, missing) = (handover.values.len(), handover.missing.len());
            let started = crate::boxside::held::hand_over(&args.socket, handover)?;
            println!("holding {held} secrets ({missing} missing){}", if started { "; started the holder" } else { "" });
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::Front(args) => {
            let paths = crate::stack::front::FrontPaths { dir: args.dir, control: args.control };
            // Returns only when nginx could not be started.
            let failed = crate::boxside::front::serve(&paths, &args.fronts);
            eprintln!("workstation: {failed}");
            Ok(ExitCode::FAILURE)
        }
        BoxCommand::Route(args) => {
            let session = crate::boxside::route::RouteSession {
                paths: crate::stack::front::FrontPaths { dir: args.dir, control: args.control },
                service: args.service,
                by: args.by,
                matches: if args.mirror { crate::stack::front::Match::Mirror } else { args.header.expect("clap requires --header or --mirror") },
                branches: args.branches,
                keep: args.keep,
                lease: crate::intercept::hold::LEASE,
                log: args.log,
            };
            Ok(ExitCode::from(session.run() as u8))
        }
        BoxCommand::IdleCheck(args) => {
            let manifest = global.load_manifest()?;
            let api = SelfApi::for_root(&args.root, args.instance_id, args.region).await?;
            let ports = manifest.manifest.service_ports();
            let check = crate::boxside::idle_check::Check {
                policy: manifest.manifest.idle_for(api.is_team_box().await?),
                ports,
                root: args.root,
                api: &api,
                hibernate: manifest.manifest.machine.hibernate,
                dry_run: args.dry_run,
            };
            let checked = check.run(args.at.unwrap_or_else(chrono::Utc::now)).await?;
            match global.output {
                super::Output::Json => super::output::json(&checked)?,
                super::Output::Text => {
                    let active = if checked.active.is_empty() { "idle".to_owned() } else { format!("active: {}", checked.active.join("; ")) };
                    println!("{active}; {}{}", checked.verdict, if checked.stopped { "; stopped this box" } else { "" });
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::AuthorizedKeys(args) => {
            use crate::boxside::access::{authorized_keys, Source};
            let source = args.pushed.as_deref().map_or(Source::Metadata, Source::Dir);
            print!("{}", authorized_keys(source, &args.user, &args.fingerprint, &args.log).await);
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::Queues(args) => {
            crate::boxside::queues::make(&args.endpoint, &args.queues, args.check).await?;
            println!("queues {}: {}", if args.check { "there" } else { "ready" }, args.queues.join(" "));
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::MysqlLoad(args) => {
            use crate::boxside::mysql_load;
            let client = mysql_load::Client { port: args.port, user: args.user, database: args.database };
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let sessions = args.sessions.map_or(cores.clamp(2, 8), usize::from);
            let loaded = match args.format {
                MysqlSeed::Dump => mysql_load::dump(&client, sessions, tokio::io::stdin()).await,
                MysqlSeed::Csv { table, header } => mysql_load::csv(&client, sessions, &table, header, tokio::io::stdin()).await,
            };
            let loaded = loaded.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("loaded {} {}, {} of them beside others, on up to {} sessions", loaded.statements, loaded.unit, loaded.spread, loaded.sessions);
            Ok(ExitCode::SUCCESS)
        }
        BoxCommand::Hibernation(args) => {
            let setup = crate::boxside::hibernation::Setup {
                swap_file: args.swap_file,
                resume_device: args.resume_device,
                grub_env: args.grub_env,
                status: args.status,
            };
            match crate::boxside::hibernation::prepare_and_record(&setup) {
                Ok(ready) => {
                    println!("{ready}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => anyhow::bail!("not ready to hibernate: {why}"),
            }
        }
        BoxCommand::PublishHostKey(args) => {
            let key = host_key::read_host_key(&args.host_key_file)?;
            let api = SelfApi::ec2(args.instance_id, args.region).await?;
            host_key::publish(&api, &key).await?;
            println!("published host key of {}: {key}", api.id());
            Ok(ExitCode::SUCCESS)
        }
    }
}
