//! What a seed did, store by store, for the CLI and `create`'s report.

use serde::Serialize;

use super::{SeedError, Snapshot};

#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub store: String,
    pub outcome: SeedOutcome,
    pub snapshot: Option<String>,
    pub bytes: u64,
    pub seconds: f64,
    /// The steps of the load on the box, in order, timed.
    pub phases: Vec<Phase>,
    /// Why it failed (`outcome` = failed).
    pub error: Option<String>,
}

impl SeedReport {
    pub fn failed(store: &str, snapshot: Option<&Snapshot>, error: &SeedError) -> Self {
        SeedReport {
            store: store.into(),
            outcome: SeedOutcome::Failed,
            snapshot: snapshot.and_then(|s| s.identity().map(String::from)),
            bytes: 0,
            seconds: 0.0,
            phases: Vec::new(),
            error: Some(error.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedOutcome {
    Loaded,
    AlreadyLoaded,
    NoSeed,
    Failed,
}

impl SeedOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SeedOutcome::Loaded => "loaded",
            SeedOutcome::AlreadyLoaded => "already loaded",
            SeedOutcome::NoSeed => "no seed",
            SeedOutcome::Failed => "failed",
        }
    }
}

/// One step of a load, timed: what the seed report and bench/seed.sh show.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub step: String,
    pub seconds: f64,
}
