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

/// What the flake's `ami` writes into `nix-support/workstation-image.json`:
/// what was baked into the image, for its tags.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Baked {
    /// sha256 of the workstation.toml baked in (hex, as the CLI hashes it).
    pub manifest_hash: Option<String>,
    /// The nixpkgs revision of flake.lock.
    pub nixpkgs: Option<String>,
}

/// A disk to publish: a build result or a bare raw file.
#[derive(Debug)]
pub struct Disk {
    pub file: PathBuf,
    /// The nix system of the build ("" for a bare file).
    pub system: String,
    /// The build result's store path: immutable, and different whenever
    /// anything the image is built from changes (flake.nix, images/*.nix,
    /// the program's source, the manifest, flake.lock).
    pub store_path: Option<PathBuf>,
    pub baked: Baked,
}

#[derive(Debug, Serialize)]
pub struct Built {
    pub result: PathBuf,
    pub disk: PathBuf,
    pub system: String,
    pub bytes: u64,
}

/// Builds the AMI disk of `flake` for `arch`, with its result link at
/// `out_link`; nix's log streams to stderr, and `say` is told what is
/// being built before it starts.
pub fn build(flake: &Path, arch: Arch, out_link: &Path, say: &dyn Fn(&str)) -> Result<Built, BuildError> {
    let installable = installable(flake, arch)?;
    check_nix_version()?;
    say(&format!("building {installable} (the first build downloads nixpkgs and can take a while)"));
    let status = std::process::Command::new("nix")
        .args(["build", "--extra-experimental-features", "nix-command flakes", "--print-build-logs", "--out-link"])
        .arg(out_link)
        .arg(&installable)
        .status()
        .map_err(|_| BuildError::NoNix)?;
    if !status.success() {
        return Err(BuildError::Failed { installable, status });
    }
    let disk = disk_of(out_link)?;
    let bytes = std::fs::metadata(&disk.file).map_err(|source| BuildError::Read { path: disk.file.clone(), source })?.len();
    Ok(Built { result: out_link.to_owned(), disk: disk.file, system: disk.system, bytes })
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

/// The disk of a build result (its image-info.json and, from our flake,
/// workstation-image.json), or a disk file as is.
pub fn disk_of(path: &Path) -> Result<Disk, BuildError> {
    if !path.is_dir() {
        return Ok(Disk { file: path.to_path_buf(), system: String::new(), store_path: None, baked: Baked::default() });
    }
    let info: ImageInfo = read_json(&path.join("nix-support/image-info.json")).map_err(|e| match e {
        BuildError::Read { .. } => BuildError::NoImageInfo(path.to_owned()),
        e => e,
    })?;
    let baked_path = path.join("nix-support/workstation-image.json");
    let baked = if baked_path.exists() { read_json(&baked_path)? } else { Baked::default() };
    let real = std::fs::canonicalize(path).map_err(|source| BuildError::Read { path: path.to_owned(), source })?;
    Ok(Disk { file: info.file, system: info.system, store_path: store_path(&real), baked })
}

/// `path` if it is an entry of the Nix store (`/nix/store/<hash>-<name>`):
/// only there is a path an identity.
fn store_path(path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix("/nix/store").ok()?;
    let mut parts = rest.components();
    let entry = parts.next()?.as_os_str().to_str()?;
    let (hash, name) = entry.split_once('-')?;
    let is_hash = hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    (is_hash && !name.is_empty() && parts.next().is_none()).then(|| path.to_owned())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Read { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|source| BuildError::Parse { path: path.to_owned(), source })
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

    #[test]
    fn only_store_entries_are_identities() {
        let entry = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-workstation-ami-x86_64-linux";
        assert_eq!(store_path(Path::new(entry)).as_deref(), Some(Path::new(entry)));
        for not in [
            "/home/me/result-ami",
            "/nix/store/short-name",
            "/nix/store/0123456789abcdfghijklmnpqrsvwxyz",
            &format!("{entry}/nix-support"),
            "/nix/store/0123456789ABCDFGHIJKLMNPQRSVWXYZ-upper",
        ] {
            assert_eq!(store_path(Path::new(not)), None, "{not}");
        }
    }

    #[test]
    fn a_build_result_says_what_was_baked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nix-support")).unwrap();
        std::fs::write(dir.path().join("nix-support/image-info.json"), r#"{"file":"/nix/store/x-disk/box.raw","system":"aarch64-linux","label":"26.05"}"#)
            .unwrap();
        let disk = disk_of(dir.path()).unwrap();
        assert_eq!((disk.file.to_str(), disk.system.as_str(), disk.baked.manifest_hash.as_deref()), (Some("/nix/store/x-disk/box.raw"), "aarch64-linux", None));
        assert_eq!(disk.store_path, None, "a copy outside the store is not an identity");
        std::fs::write(dir.path().join("nix-support/workstation-image.json"), r#"{"manifest_hash":"ab12","nixpkgs":"9fbb54b3"}"#).unwrap();
        let disk = disk_of(dir.path()).unwrap();
        assert_eq!((disk.baked.manifest_hash.as_deref(), disk.baked.nixpkgs.as_deref()), (Some("ab12"), Some("9fbb54b3")));
        std::fs::remove_file(dir.path().join("nix-support/image-info.json")).unwrap();
        assert!(matches!(disk_of(dir.path()), Err(BuildError::NoImageInfo(_))));
    }

    /// `to` relative to `from`, through `..` (both absolute).
    fn pathdiff(to: &Path, from: &Path) -> PathBuf {
        let ups = from.components().count() - 1;
        let mut out: PathBuf = std::iter::repeat_n("..", ups).collect();
        out.push(to.strip_prefix("/").unwrap());
        out
    }
}
