//! The repository side of a preview: which commit a ref names, which files
//! a commit holds, what changed between two commits, and the tar stream of
//! a commit's files (`git archive`), never a working tree: files that are
//! not in the commit never reach the box.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::PreviewError;
use crate::provider::is_commit_id;

pub struct Repo {
    pub root: PathBuf,
}

/// What changed between two commits, as paths relative to the repository.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Added, modified or changed in type.
    pub changed: Vec<String>,
    pub deleted: Vec<String>,
}

impl Repo {
    /// The repository `dir` is in.
    pub fn open(dir: &Path) -> Result<Repo, PreviewError> {
        let top = git(dir, &["rev-parse", "--show-toplevel"])?;
        Ok(Repo { root: PathBuf::from(top.trim_end_matches('\n')) })
    }

    /// The full commit id `name` (a branch, tag, or commit) names.
    pub fn resolve(&self, name: &str) -> Result<String, PreviewError> {
        if name.starts_with('-') || name.is_empty() {
            return Err(PreviewError::Ref { name: name.into(), why: "not a ref name".into() });
        }
        let out = git(&self.root, &["rev-parse", "--verify", "--quiet", "--end-of-options", &format!("{name}^{{commit}}")]).map_err(|e| match e {
            PreviewError::Git { stderr, .. } if !stderr.contains("install git") => {
                PreviewError::Ref { name: name.into(), why: "no such commit in this repository (fetch it first)".into() }
            }
            other => other,
        })?;
        let id = out.trim().to_owned();
        match is_commit_id(&id) {
            true => Ok(id),
            false => Err(PreviewError::Ref { name: name.into(), why: format!("git answered {id:?}") }),
        }
    }

    /// A manifest given by a path inside the repository must be a file of
    /// the repository, before anything reads it: the tree is a pull
    /// request's, and a `workstation.toml` that is a symlink (to the
    /// runner's `/proc/self/environ`, its keys) would have its text read and
    /// quoted in a parse error, in a public log.
    pub fn check_manifest_path(&self, manifest: &Path) -> Result<(), PreviewError> {
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let given = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_owned());
        let lexically_inside = given.starts_with(&self.root) || given.starts_with(&root);
        if !lexically_inside {
            return Ok(());
        }
        let outside = || PreviewError::ManifestOutside { path: manifest.display().to_string() };
        let is_link = std::fs::symlink_metadata(manifest).map(|m| m.file_type().is_symlink()).unwrap_or(false);
        let real = std::fs::canonicalize(manifest).map_err(|_| outside())?;
        if is_link || !real.starts_with(&root) {
            return Err(outside());
        }
        Ok(())
    }

    /// A manifest inside the repository must be the one of `commit`: its
    /// commands and rules run against that tree. (Outside, it is the
    /// platform's own.)
    pub fn check_manifest(&self, manifest: &Path, commit: &str) -> Result<(), PreviewError> {
        let path = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_owned());
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let Ok(rel) = path.strip_prefix(&root) else { return Ok(()) };
        let differs = || PreviewError::ManifestDiffers { path: manifest.display().to_string(), commit: commit[..12].to_owned() };
        let at_commit = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.root)
            // --filters: as a checkout would write it (line endings,
            // smudge filters), to compare with the file.
            .args(["cat-file", "--filters", &format!("{commit}:{}", rel.to_string_lossy())])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| PreviewError::Git { command: "git cat-file".into(), stderr: e.to_string() })?;
        let here = std::fs::read(manifest).map_err(|_| differs())?;
        match at_commit.status.success() && at_commit.stdout == here {
            true => Ok(()),
            false => Err(differs()),
        }
    }

    /// Whether this clone has `commit` (a shallow CI clone may not have the
    /// one a box was at).
    pub fn has(&self, commit: &str) -> bool {
        git(&self.root, &["cat-file", "-e", &format!("{commit}^{{commit}}")]).is_ok()
    }

    /// Every file of `commit`.
    pub fn files(&self, commit: &str) -> Result<Vec<String>, PreviewError> {
        let out = git(&self.root, &["ls-tree", "-r", "-z", "--name-only", commit])?;
        paths("git ls-tree", out.split('\0').filter(|p| !p.is_empty()))
    }

    /// What changed from `old` to `new` (renames as a delete and an add).
    pub fn diff(&self, old: &str, new: &str) -> Result<Diff, PreviewError> {
        let out = git(&self.root, &["diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", old, new])?;
        let mut diff = Diff::default();
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
            match status {
                "D" => diff.deleted.push(path.to_owned()),
                _ => diff.changed.push(path.to_owned()),
            }
        }
        diff.changed = paths("git diff", diff.changed.iter().map(String::as_str))?;
        diff.deleted = paths("git diff", diff.deleted.iter().map(String::as_str))?;
        Ok(diff)
    }

    /// `git archive` of `commit` (only `only`'s files, when given) as a tar
    /// stream on the child's stdout.
    pub fn archive(&self, commit: &str, only: Option<&[String]>) -> Result<tokio::process::Child, PreviewError> {
        let mut cmd = tokio::process::Command::new("git");
        // Literal: a file named `*.js` is that file, not a pattern.
        cmd.arg("--literal-pathspecs").arg("-C").arg(&self.root).args(["archive", "--format=tar", commit]);
        if let Some(paths) = only {
            cmd.arg("--").args(paths);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd.spawn().map_err(|e| PreviewError::Git { command: "git archive".into(), stderr: e.to_string() })
    }
}

/// Paths from git, checked: relative, without `..` (a crafted tree could
/// otherwise name files outside the preview's directory on the box).
fn paths<'a>(command: &str, names: impl Iterator<Item = &'a str>) -> Result<Vec<String>, PreviewError> {
    names
        .map(|p| {
            let bad = p.starts_with('/') || p.split('/').any(|c| c == ".." || c.is_empty());
            match bad {
                true => Err(PreviewError::Git {
                    command: command.into(),
                    stderr: format!("refusing the path {p:?} (absolute or with '..'): a commit with it cannot be previewed"),
                }),
                false => Ok(p.to_owned()),
            }
        })
        .collect()
}

fn git(dir: &Path, args: &[&str]) -> Result<String, PreviewError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PreviewError::Git { command: format!("git {}", args.join(" ")), stderr: format!("{e}; install git") })?;
    if !out.status.success() {
        return Err(PreviewError::Git { command: format!("git {}", args.join(" ")), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    String::from_utf8(out.stdout).map_err(|_| PreviewError::Git {
        command: format!("git {}", args.join(" ")),
        stderr: "a file name is not UTF-8; rename it in the repository to preview it".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git").arg("-C").arg(dir).args(args).env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z").output().unwrap();
        assert!(ok.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&ok.stderr));
    }

    #[test]
    fn resolves_lists_and_diffs_commits() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run(d, &["init", "-q", "-b", "main"]);
        run(d, &["config", "user.email", "t@example.com"]);
        run(d, &["config", "user.name", "t"]);
        std::fs::write(d.join("a.txt"), "a").unwrap();
        std::fs::write(d.join("gone.txt"), "g").unwrap();
        run(d, &["add", "."]);
        run(d, &["commit", "-qm", "one"]);
        let repo = Repo::open(d).unwrap();
        let one = repo.resolve("main").unwrap();
        std::fs::write(d.join("a.txt"), "a2").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/*.js"), "star").unwrap();
        run(d, &["rm", "-q", "gone.txt"]);
        run(d, &["add", "."]);
        run(d, &["commit", "-qm", "two"]);
        let two = repo.resolve("HEAD").unwrap();
        assert!(is_commit_id(&one) && one != two && repo.has(&one));
        assert_eq!(repo.files(&one).unwrap(), ["a.txt", "gone.txt"]);
        assert_eq!(repo.diff(&one, &two).unwrap(), Diff { changed: vec!["a.txt".into(), "sub/*.js".into()], deleted: vec!["gone.txt".into()] });
        assert!(matches!(repo.resolve("--upload-pack=x"), Err(PreviewError::Ref { .. })));
        assert!(matches!(repo.resolve("no-such-branch"), Err(PreviewError::Ref { .. })));
        assert!(!repo.has(&"0".repeat(40)));
        std::fs::write(d.join("workstation.toml"), "x = 1\n").unwrap();
        run(d, &["add", "workstation.toml"]);
        run(d, &["commit", "-qm", "manifest"]);
        let three = repo.resolve("HEAD").unwrap();
        assert!(repo.check_manifest(&d.join("workstation.toml"), &three).is_ok());
        assert!(matches!(repo.check_manifest(&d.join("workstation.toml"), &two), Err(PreviewError::ManifestDiffers { .. })), "absent at that commit");
        std::fs::write(d.join("workstation.toml"), "x = 2\n").unwrap();
        assert!(matches!(repo.check_manifest(&d.join("workstation.toml"), &three), Err(PreviewError::ManifestDiffers { .. })), "edited");
        let outside = tempfile::NamedTempFile::new().unwrap();
        assert!(repo.check_manifest(outside.path(), &three).is_ok(), "a manifest outside the repository is the platform's");
    }

    #[test]
    fn paths_outside_the_tree_are_refused() {
        assert!(paths("t", ["a/b", "c"].into_iter()).is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../b", "a//b"] {
            assert!(paths("t", [bad].into_iter()).is_err(), "{bad}");
        }
    }
}
