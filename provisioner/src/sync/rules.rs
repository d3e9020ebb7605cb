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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

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
