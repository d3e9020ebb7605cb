//! Putting a commit's tree on the box: the whole `git archive` the first
//! time (unpacked beside the old tree, then swapped in, so a failed upload
//! leaves the old one), and after that only the files that changed between
//! the box's commit and the new one, with the deleted ones removed.
//!
//! The stream goes over the pinned SSH session into `tar -x`, as the SSH
//! user (as `sync`'s rsync writes), into the directory `sync` uses.

use serde::Serialize;

use super::git::Repo;
use super::PreviewError;
use crate::stack::layout::sh;
use crate::stack::shell::BoxShell;

/// Paths per `git archive` of an update (its command line stays short).
const PATHS_PER_ARCHIVE: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The whole tree (a new box, or its commit unknown here).
    Full,
    /// The files that changed since the box's commit.
    Changes,
    /// The box is already at this commit.
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct Uploaded {
    pub mode: Mode,
    /// The box's commit before (None: none, or unknown).
    pub from: Option<String>,
    /// Files written on the box.
    pub written: usize,
    pub deleted: usize,
    /// Every path that changed (for the manifest's install and restart rules).
    #[serde(skip)]
    pub changed: Vec<String>,
}

/// Puts `commit`'s tree at `dir` on the box, given the commit it is at.
pub async fn upload(onbox: &BoxShell, repo: &Repo, from: Option<&str>, commit: &str, dir: &str) -> Result<Uploaded, PreviewError> {
    match from.filter(|f| repo.has(f)) {
        Some(old) if old == commit => Ok(Uploaded { mode: Mode::Unchanged, from: Some(old.into()), written: 0, deleted: 0, changed: vec![] }),
        Some(old) => changes(onbox, repo, old, commit, dir).await,
        None => {
            if let Some(old) = from {
                tracing::info!("the box is at {old}, which this clone lacks (a shallow clone, or a force-push dropped it); uploading the whole tree");
            }
            full(onbox, repo, from, commit, dir).await
        }
    }
}

async fn full(onbox: &BoxShell, repo: &Repo, from: Option<&str>, commit: &str, dir: &str) -> Result<Uploaded, PreviewError> {
    let files = repo.files(commit)?;
    let d = sh(dir);
    let staging = sh(&format!("{dir}.preview-new"));
    // Unpacked beside the old tree and swapped in: the box runs a whole
    // commit or the previous one, never half of each.
    // -m: files get the upload's time, so make-style incremental builds
    // see them as new.
    let script = format!("set -e; rm -rf {staging}; mkdir -p {staging}; tar -x -m -f - -C {staging}; rm -rf {d}; mv {staging} {d}");
    untar(onbox, repo, commit, None, &script).await?;
    Ok(Uploaded { mode: Mode::Full, from: from.map(str::to_owned), written: files.len(), deleted: 0, changed: files })
}

async fn changes(onbox: &BoxShell, repo: &Repo, old: &str, commit: &str, dir: &str) -> Result<Uploaded, PreviewError> {
    let diff = repo.diff(old, commit)?;
    let d = sh(dir);
    if !diff.deleted.is_empty() {
        // NUL-separated on stdin: any file name is safe. -r: a removed
        // submodule is a directory on the box.
        let list: Vec<u8> = diff.deleted.iter().flat_map(|p| p.bytes().chain([0])).collect();
        let script = format!("cd {d} && xargs -0 rm -rf --");
        run_input(onbox, "deleting files", &script, std::io::Cursor::new(list)).await?;
    }
    for chunk in diff.changed.chunks(PATHS_PER_ARCHIVE) {
        untar(onbox, repo, commit, Some(chunk), &format!("set -e; mkdir -p {d}; tar -x -m -f - -C {d}")).await?;
    }
    let mut changed = diff.changed.clone();
    changed.extend(diff.deleted.iter().cloned());
    Ok(Uploaded { mode: Mode::Changes, from: Some(old.into()), written: diff.changed.len(), deleted: diff.deleted.len(), changed })
}

/// Streams `git archive` into `script` on the box.
async fn untar(onbox: &BoxShell, repo: &Repo, commit: &str, only: Option<&[String]>, script: &str) -> Result<(), PreviewError> {
    let mut archive = repo.archive(commit, only)?;
    let stdout = archive.stdout.take().expect("piped");
    let sent = run_input(onbox, "unpacking the tree", script, stdout).await;
    let out = archive.wait_with_output().await.map_err(|e| PreviewError::Git { command: "git archive".into(), stderr: e.to_string() });
    // The box's failure first: git then only saw its pipe close.
    sent?;
    let out = out?;
    if !out.status.success() {
        return Err(PreviewError::Git { command: "git archive".into(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    Ok(())
}

async fn run_input(onbox: &BoxShell, what: &str, script: &str, input: impl tokio::io::AsyncRead + Unpin) -> Result<(), PreviewError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status =
        onbox.session.exec_input(&format!("sh -c {}", sh(script)), input, &mut stdout, &mut stderr).await.map_err(crate::stack::shell::ShellError::from)?;
    if status != 0 {
        return Err(PreviewError::Upload { what: what.into(), status, stderr: String::from_utf8_lossy(&stderr).trim().to_owned() });
    }
    Ok(())
}
