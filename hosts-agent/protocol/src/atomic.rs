//! Crash-safe file replacement: a reader (or a crash) sees the old file or
//! the new one, never a mix. Used for every file workstation and the agent
//! rewrite (the agent's state and install files; the CLI's known_hosts,
//! box records and SSH config), except /etc/hosts itself, which needs more
//! (see `hostsfile`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to a temp file beside `path`, fsyncs it with `mode`,
/// renames it over `path` and fsyncs the directory (so the rename itself
/// survives a power cut).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}
