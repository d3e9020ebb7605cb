//! `workstation admin offboard OWNER`: an engineer left. The first run
//! stops their boxes, marks them (the grace starts) and deletes their key
//! pairs (nothing launches with them again; their boxes keep their
//! authorized keys). A run after the grace terminates the boxes and deletes
//! the volumes they kept. Until then nothing is deleted: the data is all
//! still there. Every step is listed, done or (with a dry run)
//! planned; running it again converges.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::manifest::name::Owner;
use crate::provider::aws::offboard::Holdings;
use crate::provider::aws::AwsProvider;
use crate::provider::ProviderError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Record when offboarding began on a box or a kept volume (the grace
    /// runs from the first mark).
    Mark {
        id: String,
        name: String,
    },
    Stop {
        id: String,
        name: String,
    },
    DeleteKeyPair {
        name: String,
    },
    /// Within the grace: nothing is deleted yet.
    Keep {
        id: String,
        name: String,
        until: DateTime<Utc>,
    },
    KeepVolume {
        id: String,
        gib: i32,
        until: DateTime<Utc>,
    },
    Terminate {
        id: String,
        name: String,
    },
    DeleteVolume {
        id: String,
        gib: i32,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Done {
    #[serde(flatten)]
    pub step: Step,
    /// None when planned only (dry run); else the outcome.
    pub ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OffboardReport {
    pub owner: String,
    pub at: DateTime<Utc>,
    pub dry_run: bool,
    /// When the grace ends (from the earliest mark, or from now for a box
    /// marked by this run).
    pub grace_ends: Option<DateTime<Utc>>,
    pub steps: Vec<Done>,
}

impl OffboardReport {
    pub fn failed(&self) -> usize {
        self.steps.iter().filter(|s| s.ok == Some(false)).count()
    }
}

/// The steps for `holdings` at `at`: what a run does, in order.
pub fn plan(h: &Holdings, at: DateTime<Utc>, grace: Duration) -> (Vec<Step>, Option<DateTime<Utc>>) {
    // The grace runs from the first mark: a box created after offboarding
    // began does not restart it.
    let started = h.boxes.iter().map(|b| b.offboarded_at).chain(h.volumes.iter().map(|v| v.offboarded_at)).flatten().min();
    let ends = started.unwrap_or(at) + grace;
    let over = started.is_some_and(|s| at >= s + grace);
    let mut steps = Vec::new();
    for b in &h.boxes {
        let (id, name) = (b.id.clone(), b.name.clone());
        if over {
            steps.push(Step::Terminate { id, name });
            continue;
        }
        if b.offboarded_at.is_none() {
            steps.push(Step::Mark { id: id.clone(), name: name.clone() });
        }
        if b.running {
            steps.push(Step::Stop { id: id.clone(), name: name.clone() });
        }
        steps.push(Step::Keep { id, name, until: ends });
    }
    steps.extend(h.key_pairs.iter().map(|k| Step::DeleteKeyPair { name: k.clone() }));
    for v in &h.volumes {
        if over {
            steps.push(Step::DeleteVolume { id: v.id.clone(), gib: v.gib });
            continue;
        }
        // Marked too: an owner with only kept volumes has a grace as well.
        if v.offboarded_at.is_none() {
            steps.push(Step::Mark { id: v.id.clone(), name: "volume".into() });
        }
        steps.push(Step::KeepVolume { id: v.id.clone(), gib: v.gib, until: ends });
    }
    let grace_ends = (!h.boxes.is_empty() || !h.volumes.is_empty()).then_some(ends);
    (steps, grace_ends)
}

/// Plans, and unless `dry_run`, does every step (a failed step is reported
/// and the others still run: a second run retries what failed).
pub async fn offboard(provider: &AwsProvider, owner: &Owner, at: DateTime<Utc>, grace: Duration, dry_run: bool) -> Result<OffboardReport, ProviderError> {
    let holdings = provider.holdings(owner).await?;
    let (steps, grace_ends) = plan(&holdings, at, grace);
    let mut report = OffboardReport { owner: owner.to_string(), at, dry_run, grace_ends, steps: Vec::new() };
    for step in steps {
        let outcome = if dry_run { None } else { Some(run(provider, &step, at).await) };
        let (ok, error) = match outcome {
            None => (None, None),
            Some(Ok(())) => (Some(true), None),
            Some(Err(e)) => (Some(false), Some(e.to_string())),
        };
        report.steps.push(Done { step, ok, error });
    }
    Ok(report)
}

async fn run(provider: &AwsProvider, step: &Step, at: DateTime<Utc>) -> Result<(), ProviderError> {
    use crate::provider::Provider;
    match step {
        Step::Mark { id, .. } => provider.mark_offboarded(std::slice::from_ref(id), at).await,
        Step::Stop { id, .. } => provider.stop(id, false).await,
        Step::DeleteKeyPair { name } => provider.delete_key_pair(name).await,
        // After the grace, the box goes with its data.
        Step::Terminate { id, .. } => provider.destroy_with_data(id).await,
        Step::DeleteVolume { id, .. } => provider.delete_volume_by_id(id).await,
        Step::Keep { .. } | Step::KeepVolume { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::aws::offboard::{KeptVolume, OwnedBox};

    fn holdings(marked: Option<DateTime<Utc>>) -> Holdings {
        Holdings {
            boxes: vec![
                OwnedBox { id: "i-1".into(), name: "dev".into(), running: true, offboarded_at: marked },
                OwnedBox { id: "i-2".into(), name: "api".into(), running: false, offboarded_at: marked },
            ],
            key_pairs: vec!["workstation.leaver.ab12".into()],
            volumes: vec![KeptVolume { id: "vol-1".into(), gib: 50, offboarded_at: marked }],
        }
    }

    #[test]
    fn the_first_run_stops_marks_and_keeps_the_data() {
        let now = Utc::now();
        let (steps, ends) = plan(&holdings(None), now, Duration::days(14));
        assert_eq!(ends, Some(now + Duration::days(14)));
        assert!(steps.contains(&Step::Mark { id: "i-1".into(), name: "dev".into() }));
        assert!(steps.contains(&Step::Stop { id: "i-1".into(), name: "dev".into() }));
        assert!(!steps.iter().any(|s| matches!(s, Step::Stop { id, .. } if id == "i-2")), "a stopped box is not stopped again");
        assert!(steps.contains(&Step::DeleteKeyPair { name: "workstation.leaver.ab12".into() }));
        assert!(!steps.iter().any(|s| matches!(s, Step::Terminate { .. } | Step::DeleteVolume { .. })), "{steps:?}");
    }

    #[test]
    fn after_the_grace_boxes_and_kept_volumes_go() {
        let marked = Utc::now() - Duration::days(15);
        let (steps, _) = plan(&holdings(Some(marked)), Utc::now(), Duration::days(14));
        assert!(steps.contains(&Step::Terminate { id: "i-1".into(), name: "dev".into() }));
        assert!(steps.contains(&Step::DeleteVolume { id: "vol-1".into(), gib: 50 }));
        assert!(!steps.iter().any(|s| matches!(s, Step::Mark { .. } | Step::Keep { .. })), "{steps:?}");
    }

    #[test]
    fn within_the_grace_a_second_run_only_keeps() {
        let marked = Utc::now() - Duration::days(3);
        let mut h = holdings(Some(marked));
        h.boxes[0].running = false;
        h.key_pairs.clear();
        let (steps, ends) = plan(&h, Utc::now(), Duration::days(14));
        assert_eq!(ends, Some(marked + Duration::days(14)));
        assert!(steps.iter().all(|s| matches!(s, Step::Keep { .. } | Step::KeepVolume { .. })), "{steps:?}");
    }
}
