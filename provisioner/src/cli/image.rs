//! image build, image publish: the box image from the flake to an AMI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use super::context::Global;
use super::output::{self, Output};
use crate::image::{self, Arch, Inputs, Publisher};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    Build(BuildArgs),
    Publish(PublishArgs),
}

/// Build the box's disk image with the flake (`nix build .#ami`).
///
/// Needs Nix 2.18 or newer with flakes enabled: Debian's nix-bin (2.8)
/// cannot evaluate current nixpkgs. Building an aarch64 image on x86_64
/// needs a remote builder or binfmt emulation.
///
/// Examples:
///   workstation image build
///   workstation image build --arch aarch64 --out-link result-arm
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BuildArgs {
    /// The flake (default: the manifest's directory).
    #[arg(long, value_name = "DIR")]
    flake: Option<PathBuf>,
    /// Target architecture (default: this machine's).
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// Where the result link goes.
    #[arg(long, default_value = "result-ami", value_name = "PATH")]
    out_link: PathBuf,
}

/// Upload a built disk image as an EBS snapshot and register it as an AMI.
///
/// Blocks go up through the EBS direct APIs, several at once; holes and
/// all-zero blocks are skipped. The AMI is named after what was built (the
/// build result's Nix store path, which changes with any input, or a bare
/// disk file's data) and tagged with the manifest and nixpkgs revision the
/// build baked in: publishing the same image again finds the existing AMI
/// and uploads nothing. Boxes then select it with `image_tag = "<image>"`
/// in workstation.toml's [box].
///
/// Examples:
///   workstation image build && workstation image publish
///   workstation image publish ./disk.raw --arch aarch64 --image experimental
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PublishArgs {
    /// The `image build` result (a directory with nix-support/image-info.json)
    /// or a raw disk file.
    #[arg(default_value = "result-ami", value_name = "PATH")]
    disk: PathBuf,
    /// Architecture of the disk (default: from image-info.json, else this machine's).
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// The image line, tagged workstation:image; boxes select it by `image_tag`.
    #[arg(long, default_value = "workstation", value_name = "NAME")]
    image: String,
    /// The source commit the image was built from, tagged
    /// workstation:commit (the image workflow passes GITHUB_SHA).
    #[arg(long, value_name = "SHA", value_parser = commit_id)]
    commit: Option<String>,
    /// Blocks uploaded at once.
    #[arg(long, default_value_t = 32, value_name = "N")]
    concurrency: usize,
}

pub async fn run(global: &Global, cmd: ImageCommand) -> Result<ExitCode> {
    match cmd {
        ImageCommand::Build(args) => build(global, args),
        ImageCommand::Publish(args) => publish(global, args).await,
    }
}

fn build(global: &Global, args: BuildArgs) -> Result<ExitCode> {
    let flake = match args.flake {
        Some(f) => f,
        None => global.load_manifest()?.path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let arch = args.arch.or_else(Arch::of_this_machine).context("cannot tell this machine's architecture; pass --arch")?;
    let built = image::build(&flake, arch, &args.out_link, &|line| eprintln!("{line}"))?;
    match global.output {
        Output::Json => output::json(&built)?,
        Output::Text => println!(
            "built {} ({}, {} MiB); publish it with `workstation image publish {}`",
            built.disk.display(),
            built.system,
            built.bytes >> 20,
            built.result.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn publish(global: &Global, args: PublishArgs) -> Result<ExitCode> {
    let manifest = global.manifest_for_lookup();
    let disk = image::disk_of(&args.disk)?;
    // A bare disk is read once here for its identity: a blocking pass.
    let (image, arch) = (args.image, args.arch);
    let (disk, mut inputs) = tokio::task::spawn_blocking(move || Inputs::of(image, &disk, arch).map(|i| (disk, i))).await??;
    inputs.commit = args.commit;

    let aws = global.aws_settings()?;
    let region = super::context::aws_region(&aws, manifest.as_ref());
    let sdk = crate::provider::aws::sdk::config(aws.profile.as_deref(), region).await;
    let (ec2, ebs) = (aws_sdk_ec2::Client::new(&sdk), aws_sdk_ebs::Client::new(&sdk));
    let progress = indicatif::ProgressBar::new(0)
        .with_style(indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}").expect("valid template"));
    let publisher = Publisher { ec2: &ec2, ebs: &ebs, concurrency: args.concurrency, progress: Some(&progress) };
    let published = publisher.publish(&disk.file, &inputs).await?;
    progress.finish_and_clear();
    match global.output {
        Output::Json => output::json(&published)?,
        Output::Text => {
            match &published.upload {
                Some(u) => println!(
                    "uploaded {} of {} blocks ({} zero blocks skipped) in {:.1} s, {:.0} MiB/s",
                    u.uploaded, u.blocks, u.skipped_zero, u.seconds, u.mib_per_s
                ),
                None if published.existing => println!("already published (the same image); nothing uploaded"),
                None => println!("reused completed snapshot {}", published.snapshot_id),
            }
            println!(
                "{} {} (snapshot {}); boxes use it with image_tag = {:?}",
                published.image_id, published.name, published.snapshot_id, published.inputs.image
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A git commit id: 7 to 40 hex digits (it becomes a tag value).
fn commit_id(s: &str) -> Result<String, String> {
    match (7..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(s.to_ascii_lowercase()),
        false => Err(format!("{s:?} is not a commit id (7 to 40 hex digits)")),
    }
}
