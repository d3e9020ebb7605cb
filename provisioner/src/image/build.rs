//! `image build`: the flake's `packages.<system>.ami` through `nix build`,
//! and where its disk file is.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Arch;

/// Flakes as our flake uses them need Nix 2.18.
const NIX_MIN: (u32, u32) = (2, 18);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no flake.nix in {0}; pass --flake DIR (the directory of flake.nix)")]
    NoFlake(PathBuf),
    #[error("nix is not installed; install Nix 2.18 or newer (https://nixos.org/download) or use `nix develop`'s shell")]
    NoNix,
    #[error("{0} is too old to evaluate current nixpkgs; install Nix 2.18 or newer (https://nixos.org/download)")]
    OldNix(String),
    #[error("nix build {installable} failed ({status}); its log is above")]
    Failed { installable: String, status: std::process::ExitStatus },
    #[error("{0} is a directory without nix-support/image-info.json; pass the disk file itself")]
    NoImageInfo(PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What nixpkgs' amazon image writes into `nix-support/image-info.json`.
#[derive(Debug, Deserialize)]
struct ImageInfo {
    file: PathBuf,
    system: String,
}

#[derive(Debug, Serialize)]
pub struct Built {
    pub result: PathBuf,
    pub disk: PathBuf,
    pub system: String,
    pub bytes: u64,
}

/// Builds the AMI disk of `flake` for `arch`, with its result link at
/// `out_link`; nix's log streams to stderr.
pub fn build(flake: &Path, arch: Arch, out_link: &Path) -> Result<Built, BuildError> {
    let installable = installable(flake, arch)?;
    check_nix_version()?;
    eprintln!("building {installable} (the first build downloads nixpkgs and can take a while)");
    let status = std::process::Command::new("nix")
        .args(["build", "--extra-experimental-features", "nix-command flakes", "--print-build-logs", "--out-link"])
        .arg(out_link)
        .arg(&installable)
        .status()
        .map_err(|_| BuildError::NoNix)?;
    if !status.success() {
        return Err(BuildError::Failed { installable, status });
    }
    let (disk, system) = disk_of(out_link)?;
    let bytes = std::fs::metadata(&disk).map_err(|source| BuildError::Read { path: disk.clone(), source })?.len();
    Ok(Built { result: out_link.to_owned(), disk, system, bytes })
}

/// The flake's AMI for `arch`, with the flake named by its absolute path:
/// a relative one is a registry lookup to Nix (`sub#…` means `flake:sub`),
/// and an empty one (the manifest's directory when it is the current one)
/// no flake at all. In a git repository Nix then sees only tracked files.
fn installable(flake: &Path, arch: Arch) -> Result<String, BuildError> {
    let dir = if flake.as_os_str().is_empty() { Path::new(".") } else { flake };
    let dir = std::fs::canonicalize(dir).map_err(|_| BuildError::NoFlake(flake.to_owned()))?;
    if !dir.join("flake.nix").is_file() {
        return Err(BuildError::NoFlake(dir));
    }
    Ok(format!("{}#packages.{}.ami", dir.display(), arch.nix_system()))
}

/// `nix --version` prints "nix (Nix) 2.18.1".
fn check_nix_version() -> Result<(), BuildError> {
    let out = std::process::Command::new("nix").arg("--version").output().map_err(|_| BuildError::NoNix)?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let version = text.split_whitespace().last().unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    if (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < NIX_MIN {
        return Err(BuildError::OldNix(text.trim().to_string()));
    }
    Ok(())
}

/// The disk file and nix system of a build result, or a disk file as is.
pub fn disk_of(path: &Path) -> Result<(PathBuf, String), BuildError> {
    if path.is_dir() {
        let info = path.join("nix-support/image-info.json");
        let text = std::fs::read_to_string(&info).map_err(|_| BuildError::NoImageInfo(path.to_owned()))?;
        let parsed: ImageInfo = serde_json::from_str(&text).map_err(|source| BuildError::Parse { path: info, source })?;
        return Ok((parsed.file, parsed.system));
    }
    Ok((path.to_path_buf(), String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flake_is_named_by_its_absolute_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/flake.nix"), "{}").unwrap();
        let cwd = std::env::current_dir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        // Relative paths are resolved against the current directory.
        let relative = pathdiff(&real.join("sub"), &cwd);
        assert_eq!(installable(&relative, Arch::X86_64).unwrap(), format!("{}/sub#packages.x86_64-linux.ami", real.display()));
        assert!(matches!(installable(&real, Arch::X86_64), Err(BuildError::NoFlake(_))), "no flake.nix there");
        assert!(matches!(installable(Path::new("/nonexistent"), Arch::Aarch64), Err(BuildError::NoFlake(_))));
    }

    /// `to` relative to `from`, through `..` (both absolute).
    fn pathdiff(to: &Path, from: &Path) -> PathBuf {
        let ups = from.components().count() - 1;
        let mut out: PathBuf = std::iter::repeat("..").take(ups).collect();
        out.push(to.strip_prefix("/").unwrap());
        out
    }
}
