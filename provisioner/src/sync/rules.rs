//! The manifest's install and restart rules: which changed paths call for
//! which command or restart on the box.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::manifest::Manifest;

/// What the box should do after a batch: installs (command and the
/// services it restarts) and restarts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Actions {
    pub installs: BTreeMap<String, Vec<String>>,
    pub restarts: BTreeSet<String>,
}

/// Per service, which changed files call for an install or a restart.
pub struct Rules {
    rules: Vec<ServiceRule>,
}

struct ServiceRule {
    service: String,
    /// The install command and the globs that call for it.
    install: Option<(String, GlobSet)>,
    restart_on: GlobSet,
}

impl Rules {
    /// Globs were checked by manifest validation.
    pub fn new(manifest: &Manifest) -> Rules {
        let set = |globs: &[String]| {
            let mut b = GlobSetBuilder::new();
            for g in globs {
                if let Ok(g) = Glob::new(g) {
                    b.add(g);
                }
            }
            b.build().unwrap_or_else(|_| GlobSet::empty())
        };
        let rules = manifest
            .services
            .iter()
            .map(|(name, s)| ServiceRule { service: name.clone(), install: s.install.clone().map(|i| (i, set(&s.install_on))), restart_on: set(&s.restart_on) })
            .collect();
        Rules { rules }
    }

    pub fn actions(&self, changed: &[String]) -> Actions {
        let mut out = Actions::default();
        for rule in &self.rules {
            if let Some((command, on)) = &rule.install {
                if changed.iter().any(|c| on.is_match(c)) {
                    out.installs.entry(command.clone()).or_default().push(rule.service.clone());
                    continue;
                }
            }
            if changed.iter().any(|c| rule.restart_on.is_match(c)) {
                out.restarts.insert(rule.service.clone());
            }
        }
        out
    }
}
