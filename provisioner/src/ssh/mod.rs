//! SSH to boxes: pinned host keys, the russh session, and the OpenSSH
//! configuration that lets plain `ssh`, rsync and editors use the same pins.

pub mod known_hosts;
pub mod openssh;
pub mod proxy;
pub mod relay;
pub mod remote;
pub mod ssh_config;
pub mod ssm;

/// Creates `dir` (and missing parents) readable by its owner only, as
/// OpenSSH wants `~/.ssh`; an existing directory is left as it is.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ssh_directories_are_private() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        super::create_private_dir(&ssh).unwrap();
        assert_eq!(std::fs::metadata(&ssh).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
