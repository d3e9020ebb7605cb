//! The engineer's dotfiles on their box, as Codespaces installs them: the
//! repository (or a local directory) of the `dotfiles` setting is taken on
//! the laptop (a private repository clones with the engineer's own git
//! credentials), uploaded to `~/.dotfiles` on the box, and the first of
//! [`SCRIPTS`] found there runs in it; without one, every file or directory
//! whose name starts with `.` is symlinked into the home directory. Once
//! per content: the box remembers what it installed. A failing script is
//! reported, never a reason for `create` to fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Context, LifecycleError};
use crate::provider::BoxInfo;
use crate::stack::layout::sh;

/// Install scripts, in the order Codespaces looks for them.
pub const SCRIPTS: [&str; 8] = ["install.sh", "install", "bootstrap.sh", "bootstrap", "script/bootstrap", "setup.sh", "setup", "script/setup"];
/// Where the dotfiles go on the box, under the login user's home.
const DIR: &str = ".dotfiles";
/// What the box keeps of the last install: the content's hash.
const MARKER: &str = ".workstation-installed";
/// How much of a failing script's output the report keeps.
const OUTPUT_TAIL: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum DotfilesError {
    #[error("dotfiles: {path} is not a directory; set `dotfiles` to a git URL or a directory of yours")]
    NotADirectory { path: String },
    #[error("dotfiles: `git clone {url}` failed: {stderr}")]
    Clone { url: String, stderr: String },
    #[error("dotfiles: {what}: {source}")]
    Local { what: String, source: std::io::Error },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// Where the dotfiles come from (the `dotfiles` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Cloned on the laptop: `https://`, `ssh://`, `git@host:path`, `file://`.
    Git(String),
    Dir(PathBuf),
}

impl Source {
    pub fn parse(setting: &str) -> Source {
        let is_url = ["https://", "http://", "ssh://", "git://", "file://"].iter().any(|p| setting.starts_with(p))
            || (setting.contains('@') && setting.contains(':') && !setting.starts_with('/'));
        match is_url {
            true => Source::Git(setting.to_owned()),
            false => Source::Dir(PathBuf::from(setting)),
        }
    }
}

/// What the install did.
#[derive(Debug, Clone, Serialize)]
pub struct DotfilesReport {
    pub source: String,
    /// `script` (one of [`SCRIPTS`]), `links` or `unchanged` (installed before).
    pub how: &'static str,
    /// The script that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The names linked into home.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<String>,
    pub ok: bool,
    /// A failing script's exit status and the end of its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl Context {
    /// Installs the dotfiles of `source` on the running box `info` (see
    /// the module). An error is for what kept them from the box at all; a
    /// failing install script is in the report.
    pub async fn install_dotfiles(&self, info: &BoxInfo, source: &Source) -> Result<DotfilesReport, DotfilesError> {
        let shown = match source {
            Source::Git(url) => url.clone(),
            Source::Dir(dir) => dir.display().to_string(),
        };
        let clone;
        let dir = match source {
            Source::Dir(dir) if dir.is_dir() => dir.clone(),
            Source::Dir(dir) => return Err(DotfilesError::NotADirectory { path: dir.display().to_string() }),
            Source::Git(url) => {
                clone = tempfile::tempdir().map_err(|source| DotfilesError::Local { what: "a temporary directory".into(), source })?;
                git_clone(url, clone.path()).await?;
                clone.path().to_owned()
            }
        };
        let hash = content_hash(&dir)?;
        let dot_names = dot_entries(&dir)?;
        let report = |how, script, linked, ok, failure| DotfilesReport { source: shown.clone(), how, script, linked, ok, failure };
        let session = self.connect(info).await?;
        let result = async {
            // As the login user, in its own home: these are the engineer's files.
            let marker = format!("\"$HOME\"/{DIR}/{MARKER}");
            let installed = session.output(&format!("cat {marker} 2>/dev/null")).await?;
            if String::from_utf8_lossy(&installed.stdout).trim() == hash {
                return Ok(report("unchanged", None, Vec::new(), true, None));
            }
            upload(&session, &dir).await?;
            let outcome = match SCRIPTS.iter().find(|s| dir.join(s).is_file()) {
                Some(script) => {
                    let run = format!("cd \"$HOME\"/{DIR} && if [ -x {s} ]; then ./{s}; else sh {s}; fi 2>&1", s = sh(script));
                    let out = session.output(&run).await?;
                    let ok = out.status == 0;
                    let text = String::from_utf8_lossy(&out.stdout);
                    let failure = (!ok).then(|| format!("{script} exited {}: {}", out.status, tail(&text)));
                    report("script", Some(script.to_string()), Vec::new(), ok, failure)
                }
                None => {
                    let linked = dot_names.clone();
                    let links: Vec<String> = linked.iter().map(|n| format!("ln -sfn \"$HOME\"/{DIR}/{n} \"$HOME\"/{n}", n = sh(n))).collect();
                    let out = session.output(&format!("set -e; {}", links.join("; "))).await?;
                    let ok = out.status == 0;
                    let failure = (!ok).then(|| format!("linking failed: {}", tail(&String::from_utf8_lossy(&out.stderr))));
                    report("links", None, linked, ok, failure)
                }
            };
            // A failed script runs again next time; a done one does not.
            if outcome.ok {
                session.output(&format!("printf '%s\\n' {} > {marker}", sh(&hash))).await?;
            }
            Ok::<_, crate::ssh::remote::RemoteError>(outcome)
        }
        .await;
        session.close().await;
        Ok(result.map_err(LifecycleError::from)?)
    }
}

async fn git_clone(url: &str, into: &Path) -> Result<(), DotfilesError> {
    let out = tokio::process::Command::new("git")
        .args(["clone", "--quiet", "--depth", "1", "--", url])
        .arg(into)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| DotfilesError::Local { what: "running git (install git)".into(), source })?;
    match out.status.success() {
        true => Ok(()),
        false => Err(DotfilesError::Clone { url: url.into(), stderr: String::from_utf8_lossy(&out.stderr).trim().into() }),
    }
}

/// `dir` (without `.git`) unpacked into `~/.dotfiles` on the box, replacing
/// what an earlier install put there.
async fn upload(session: &crate::ssh::remote::Session, dir: &Path) -> Result<(), crate::ssh::remote::RemoteError> {
    let mut tar = tokio::process::Command::new("tar")
        .args(["c", "--exclude=.git", "-C"])
        .arg(dir)
        .arg(".")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| crate::ssh::remote::RemoteError::Input { name: "tar".into(), source })?;
    let stdout = tar.stdout.take().expect("piped");
    let command = format!("rm -rf \"$HOME\"/{DIR} && mkdir -p \"$HOME\"/{DIR} && tar x -C \"$HOME\"/{DIR}");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = session.exec_input(&command, stdout, &mut out, &mut err).await?;
    let _ = tar.wait().await;
    if status != 0 {
        let source = std::io::Error::other(format!("unpacking on the box exited {status}: {}", String::from_utf8_lossy(&err).trim()));
        return Err(crate::ssh::remote::RemoteError::Input { name: "dotfiles".into(), source });
    }
    Ok(())
}

/// Names at the top of `dir` starting with `.`, but git's own.
fn dot_entries(dir: &Path) -> Result<Vec<String>, DotfilesError> {
    let read = std::fs::read_dir(dir).map_err(|source| DotfilesError::Local { what: format!("reading {}", dir.display()), source })?;
    let mut names: Vec<String> =
        read.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.') && n != ".git").collect();
    names.sort();
    Ok(names)
}

/// What is installed: every file's path and content, `.git` aside.
fn content_hash(dir: &Path) -> Result<String, DotfilesError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for (rel, path) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(std::fs::read(&path).map_err(|source| DotfilesError::Local { what: format!("reading {}", path.display()), source })?);
        h.update([0]);
    }
    Ok(hex::encode(&h.finalize()[..16]))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), DotfilesError> {
    let read = std::fs::read_dir(dir).map_err(|source| DotfilesError::Local { what: format!("reading {}", dir.display()), source })?;
    for entry in read.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(root, &path, out)?,
            Ok(t) if t.is_file() => out.push((path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned(), path)),
            _ => {}
        }
    }
    Ok(())
}

fn tail(text: &str) -> String {
    crate::stack::shell::tail(text.trim(), OUTPUT_TAIL).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_clone_and_paths_are_directories() {
        for url in ["https://github.com/alice/dotfiles", "git@github.com:alice/dotfiles.git", "ssh://git@host/x", "file:///srv/dots"] {
            assert_eq!(Source::parse(url), Source::Git(url.into()), "{url}");
        }
        assert_eq!(Source::parse("/home/alice/dotfiles"), Source::Dir("/home/alice/dotfiles".into()));
        assert_eq!(Source::parse("dots"), Source::Dir("dots".into()));
    }

    #[test]
    fn the_hash_follows_the_content_but_not_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".bashrc"), "alias ll='ls -l'\n").unwrap();
        let first = content_hash(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref: x\n").unwrap();
        assert_eq!(content_hash(dir.path()).unwrap(), first, ".git is not installed");
        std::fs::write(dir.path().join(".bashrc"), "alias ll='ls -la'\n").unwrap();
        assert_ne!(content_hash(dir.path()).unwrap(), first);
        assert_eq!(dot_entries(dir.path()).unwrap(), [".bashrc"]);
    }
}
