//! What can go wrong with a team box.

use crate::boxes::LifecycleError;
use crate::preview::PreviewError;
use crate::provider::ProviderError;
use crate::stack::shell::ShellError;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("no team box {env} (never made, or taken down); `workstation env list` shows the team boxes")]
    NotFound { env: String },
    #[error(
        "{owner}'s box {name} exists and is not team box {env}; env up replaces a team box's files only: destroy that box, or choose another environment name"
    )]
    NotThisEnv { env: String, name: String, owner: String },
    #[error("{env}: the box name {name} it needs is longer than 63 characters; use a shorter team or environment name")]
    TooLong { env: String, name: String },
    #[error("team box {env} is deployed by owner {deployer} (CI's identity, with the team tag {team}), not {owner}; run it in CI as {deployer}, e.g. WORKSTATION_OWNER={deployer}")]
    NotDeployer { env: String, deployer: String, owner: String, team: String },
    #[error("team {team}: its deployer's owner name {team}-ci would be longer than 32 characters; use a team name of at most 29")]
    TeamTooLong { team: String },
    #[error("{0:?} is not TEAM/ENV (e.g. payments/staging): two names of a-z, 0-9 and '-', starting with a letter")]
    BadRef(String),
    #[error(transparent)]
    Preview(#[from] PreviewError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
