//! `workstation sync`: mirror the laptop's checkout onto the box with rsync
//! over workstation's own SSH config (pinned host key, StrictHostKeyChecking),
//! then run the installs and restarts the changed files call for.
//!
//! A change batch names the directories it touched; rsync then copies just
//! those, one level deep (`--files-from --dirs --delete`), so an edit costs
//! one small transfer, not a walk of the tree. New or renamed directories,
//! very large batches (a branch switch) and reconnections get a full sync.
//! `--delete` only ever applies below the synced directory on the box.

mod apply;
mod rsync;
mod rules;
pub mod session;

pub use apply::{apply, apply_with, Applied};
pub use rsync::{control_path, parse_itemized, Batch, Sent, Target};
pub use rules::{Actions, Rules};

/// Above this many changed paths a batch is synced as a whole tree.
pub const FULL_SYNC_ABOVE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// `ssh`: what ssh itself said (rsync's own lines only say it failed).
    #[error("rsync could not reach the box (exit {code}): {ssh}")]
    Unreachable { code: i32, ssh: String },
    #[error("cannot use {} for the shared SSH connection's socket: {why}; remove it (or set XDG_RUNTIME_DIR to a private directory)", .dir.display())]
    ControlDir { dir: std::path::PathBuf, why: String },
    #[error("rsync failed (exit {code}): {stderr}")]
    Rsync { code: i32, stderr: String },
    #[error("cannot run rsync: {0}; install it (apt install rsync / brew install rsync)")]
    Spawn(std::io::Error),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn itemized_output_names_changes_not_attribute_updates() {
        let out = "*deleting   src/old.js\n<f.st...... src/app.js\n<f+++++++++ package-lock.json\n.d..t...... src/\ncd+++++++++ lib/\n.f...p..... mode-only\n";
        assert_eq!(parse_itemized(out), vec!["src/old.js", "src/app.js", "package-lock.json"]);
    }

    #[test]
    fn batches_name_parent_directories_or_go_full() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let paths: BTreeSet<PathBuf> = [dir.path().join("a.txt"), dir.path().join("x/y/gone.txt")].into();
        assert_eq!(Batch::of(dir.path(), &paths), Batch::Dirs(["".to_owned(), "x/y".to_owned()].into()));
        assert_eq!(Batch::of(dir.path(), &[dir.path().join("sub")].into()), Batch::Full, "a new directory brings contents");
        let many: BTreeSet<PathBuf> = (0..=FULL_SYNC_ABOVE).map(|i| dir.path().join(format!("f{i}"))).collect();
        assert_eq!(Batch::of(dir.path(), &many), Batch::Full);
    }

    /// OpenSSH binds `<ControlPath>.<16 characters>`: with any HOME, and
    /// without XDG_RUNTIME_DIR, that fits in a socket address.
    #[test]
    fn the_control_socket_fits_whatever_the_home() {
        let long = PathBuf::from(format!("/home/{}/.local/state/workstation/ssh_config", "x".repeat(120)));
        let path = control_path(&long, "ws-a-rather-long-box-name").unwrap();
        assert!(path.as_os_str().len() + 17 <= 103, "{}", path.display());
        assert_ne!(path, control_path(&long, "ws-other").unwrap(), "one socket per box");
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path.parent().unwrap()).unwrap();
        assert_eq!(meta.mode() & 0o077, 0, "private");
    }

    #[test]
    fn a_lockfile_change_installs_once_and_restarts_only_its_services() {
        let m: Manifest = toml::from_str(
            "[box]\ninstance_type = \"t3.micro\"\ndisk_gib = 8\nimage_id = \"ami-1\"\n\
             [services.web]\ncommand = \"node web.js\"\ninstall = \"npm ci\"\ninstall_on = [\"package-lock.json\"]\nrestart_on = [\"web/**\"]\n\
             [services.worker]\ncommand = \"node worker.js\"\ninstall = \"npm ci\"\ninstall_on = [\"package-lock.json\"]\n\
             [services.api]\ncommand = \"python api.py\"\nrestart_on = [\"api/**\"]\n",
        )
        .unwrap();
        let rules = Rules::new(&m);
        let a = rules.actions(&["package-lock.json".into(), "api/x.py".into()]);
        assert_eq!(a.installs, [("npm ci".to_owned(), vec!["web".to_owned(), "worker".to_owned()])].into());
        assert_eq!(a.restarts, ["api".to_owned()].into());
        assert_eq!(rules.actions(&["web/index.js".into()]).restarts, ["web".to_owned()].into());
        assert_eq!(rules.actions(&["README.md".into()]), Actions::default());
    }
}
