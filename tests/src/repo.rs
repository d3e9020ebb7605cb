//! A git repository fixture for the verbs that deploy a commit (`preview
//! up`, `env up`), with fixed dates so commit ids repeat.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run_ok;

/// `git -C repo ARGS`; returns stdout, trimmed.
pub fn git(repo: &Path, args: &[&str]) -> String {
    run_ok(Command::new("git").arg("-C").arg(repo).args(args).env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z").env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"))
        .trim()
        .to_owned()
}

/// A new repository at `dir` on branch main, with a committer.
pub fn init(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "ci@example.com"]);
    git(dir, &["config", "user.name", "ci"]);
}

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

pub fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Commits `paths` (added, changed or deleted); returns the commit id.
pub fn commit(repo: &Path, paths: &[&str], message: &str) -> String {
    git(repo, &[&["add", "-A", "--"], paths].concat());
    git(repo, &["commit", "-qm", message]);
    git(repo, &["rev-parse", "HEAD"])
}
