//! How a team box is named: `payments/staging` on the command line, box
//! `payments-staging`, and that name as a label in its hostnames.

use std::fmt;
use std::str::FromStr;

use super::EnvError;
use crate::manifest::name::{BoxName, EnvName, Owner, TeamName};
use crate::manifest::LoadedManifest;
use crate::provider::BoxInfo;

/// The variable every service of a team box gets: `payments/staging`.
pub const TEAM_ENV: &str = "WORKSTATION_TEAM_ENV";

/// `TEAM/ENV`: a team's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvRef {
    pub team: TeamName,
    pub env: EnvName,
}

impl FromStr for EnvRef {
    type Err = EnvError;
    fn from_str(s: &str) -> Result<EnvRef, EnvError> {
        let bad = || EnvError::BadRef(s.to_owned());
        let (team, env) = s.split_once('/').ok_or_else(bad)?;
        Ok(EnvRef { team: team.parse().map_err(|_| bad())?, env: env.parse().map_err(|_| bad())? })
    }
}

impl fmt::Display for EnvRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.team, self.env)
    }
}

impl EnvRef {
    /// The box: `TEAM-ENV`.
    pub fn box_name(&self) -> Result<BoxName, EnvError> {
        let name = format!("{}-{}", self.team, self.env);
        name.parse().map_err(|_| EnvError::TooLong { env: self.to_string(), name })
    }

    /// Whether `info` is this team box: its tags say so, and its owner
    /// is the team's deployer (see [`deployer`]).
    pub fn is(&self, info: &BoxInfo) -> bool {
        info.team.as_ref().is_some_and(|t| t.team == self.team.as_str() && t.env == self.env.as_str() && is_deployed(info))
    }

    /// The manifest's hostnames for this team box: its box name as a label
    /// (`api.dev.example.com` -> `api.payments-staging.dev.example.com`).
    pub fn hostnames(&self, names: &[String]) -> Vec<String> {
        let label = format!("{}-{}", self.team, self.env);
        crate::preview::labelled(names, &label)
    }

    /// The manifest as this team box runs it: its hostnames, and
    /// [`TEAM_ENV`] in every service's environment.
    pub fn manifest_for(&self, manifest: &LoadedManifest) -> LoadedManifest {
        let mut m = manifest.clone();
        m.manifest.hostnames = self.hostnames(&manifest.manifest.hostnames);
        for service in m.manifest.services.values_mut() {
            service.environment.insert(TEAM_ENV.into(), self.to_string());
        }
        m
    }
}

/// Who deploys team `team`'s boxes: the owner `TEAM-ci`, CI's identity
/// (with the team's tag). Only it may launch a box tagged with the team
/// (terraform/iam.tf, TeamBoxesAreTheirCisOwn), and the laptop takes no
/// other owner's box for the team's: a team member's box that carries the
/// tags is not the team's environment.
pub fn deployer(team: &str) -> Result<Owner, EnvError> {
    format!("{team}-ci").parse().map_err(|_| EnvError::TeamTooLong { team: team.to_owned() })
}

/// Whether a box tagged as a team's belongs to that team's deployer.
pub fn is_deployed(info: &BoxInfo) -> bool {
    info.team.as_ref().is_some_and(|t| deployer(&t.team).is_ok_and(|d| d.as_str() == info.owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_box_is_named_by_team_and_environment() {
        let e: EnvRef = "payments/staging".parse().unwrap();
        assert_eq!(e.box_name().unwrap().as_str(), "payments-staging");
        assert_eq!(e.hostnames(&["api.dev.example.com".into()]), ["api.payments-staging.dev.example.com"]);
        for bad in ["payments", "Payments/staging", "payments/", "/staging", "a/b/c", "payments/stag ing"] {
            assert!(bad.parse::<EnvRef>().is_err(), "{bad}");
        }
        let long: EnvRef = format!("{}/{}", "t".repeat(40), "e".repeat(40)).parse().unwrap();
        assert!(matches!(long.box_name(), Err(EnvError::TooLong { .. })));
        assert_eq!(deployer("payments").unwrap().as_str(), "payments-ci");
        assert!(deployer(&"t".repeat(30)).is_err(), "an owner is at most 32 characters");
    }
}
