//! What can go wrong with a preview.

use crate::boxes::LifecycleError;
use crate::provider::ProviderError;
use crate::stack::shell::ShellError;

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("--ref {name}: {why}")]
    Ref { name: String, why: String },
    #[error("`{command}` failed: {stderr}")]
    Git { command: String, stderr: String },
    #[error("{what} on the box failed (exit {status}): {stderr}")]
    Upload { what: String, status: u32, stderr: String },
    #[error("{0}")]
    Zone(String),
    #[error("no preview #{number} (taken down, expired, or never made); `workstation preview list` shows the previews")]
    NotFound { number: u32 },
    #[error("--ttl is longer than 90 days; a preview lives at most that long after its last push")]
    Ttl,
    #[error("{count} previews exist already, the most allowed (--max / WORKSTATION_PREVIEW_MAX {max}); nothing was launched: take one down (`workstation preview down N`) or raise the limit")]
    TooMany { count: usize, max: usize },
    #[error(
        "{owner}'s box {name} exists and is not a preview; preview up replaces a preview's files only: destroy that box or use another pull request number"
    )]
    NotAPreview { name: String, owner: String },
    #[error("the manifest {path} is a symlink, or leads outside the repository: a pull request's manifest must be a file of its tree; nothing was read")]
    ManifestOutside { path: String },
    #[error("the manifest {path} differs from its copy at {commit}: a preview runs the manifest of its commit; check that commit out (CI does), or commit the manifest")]
    ManifestDiffers { path: String, commit: String },
    #[error("preview #{number} exists for several owners ({owners}); name the owner (`workstation share OWNER --preview N`)")]
    Ambiguous { number: u32, owners: String },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
