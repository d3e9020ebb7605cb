//! Team boxes' idle rules (`workstation env`): `[team_idle]` instead of
//! `[idle]` when the manifest has it, and its `start` windows (working
//! hours), inside which reap starts a stopped team box. The rest is the
//! one policy every box follows ([`crate::idle::policy`]).

use chrono::{DateTime, Utc};

use crate::idle::policy;
use crate::manifest::{IdlePolicy, Manifest};
use crate::provider::{BoxInfo, BoxState};

/// The idle policies reap applies: engineers' boxes' (`[idle]`) and team
/// boxes' (`[team_idle]`, else the same).
#[derive(Debug, Clone, Copy)]
pub struct Policies<'a> {
    pub boxes: &'a IdlePolicy,
    pub teams: &'a IdlePolicy,
}

impl<'a> Policies<'a> {
    pub fn of(manifest: &'a Manifest) -> Policies<'a> {
        Policies { boxes: &manifest.idle, teams: manifest.idle_for(true) }
    }

    /// One policy for every box.
    pub fn same(policy: &'a IdlePolicy) -> Policies<'a> {
        Policies { boxes: policy, teams: policy }
    }

    pub fn of_box(&self, b: &BoxInfo) -> &'a IdlePolicy {
        if b.team.is_some() {
            self.teams
        } else {
            self.boxes
        }
    }
}

/// The stopped team boxes of `boxes` to start at `at`, inside a `start`
/// window of the team policy: those not started since the window began
/// (each window starts a box once; one a person stopped inside the
/// window stays stopped). A box's launch time is its last start.
pub fn to_start(teams: &IdlePolicy, boxes: &[BoxInfo], at: DateTime<Utc>) -> Vec<String> {
    let Some(since) = policy::start_window(teams, at) else { return Vec::new() };
    boxes.iter().filter(|b| b.team.is_some() && b.state == BoxState::Stopped && b.launched_at.is_none_or(|l| l < since)).map(|b| b.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TeamEnv;
    use chrono::TimeZone;

    fn team_box(id: &str, state: BoxState, team: bool) -> BoxInfo {
        let team = team.then(|| TeamEnv { team: "payments".into(), env: "staging".into(), commit: None });
        BoxInfo { team, ..BoxInfo::example(id, state) }
    }

    #[test]
    fn stopped_team_boxes_start_in_working_hours_and_follow_the_team_policy() {
        let text = "hostnames = []\n[box]\ninstance_type = \"t3.micro\"\ndisk_gib = 8\nimage_id = \"ami-1\"\n\
                    [team_idle]\ntimeout = \"2h\"\n[[team_idle.schedules]]\naction = \"start\"\ncron = \"0 0 8 * * Mon-Fri\"\ntimezone = \"Europe/Paris\"\nduration = \"10h\"\n";
        let m = Manifest::parse(text).unwrap();
        let p = Policies::of(&m);
        let boxes =
            [team_box("team-stopped", BoxState::Stopped, true), team_box("team-up", BoxState::Running, true), team_box("mine", BoxState::Stopped, false)];
        assert_eq!(p.of_box(&boxes[0]).timeout(), std::time::Duration::from_secs(7200));
        assert_eq!(p.of_box(&boxes[2]).timeout(), m.idle.timeout());
        // Tuesday 09:00 in Paris is inside; 19:00 and Saturday are not.
        let tuesday_9 = Utc.with_ymd_and_hms(2026, 12, 8, 8, 0, 0).unwrap();
        assert_eq!(to_start(p.teams, &boxes, tuesday_9), ["team-stopped"]);
        // Started at 09:30 and stopped by someone at 10:00: it stays stopped.
        let again = BoxInfo { launched_at: Some(tuesday_9 + chrono::Duration::minutes(30)), ..boxes[0].clone() };
        assert!(to_start(p.teams, &[again], tuesday_9 + chrono::Duration::hours(1)).is_empty());
        assert!(to_start(p.teams, &boxes, tuesday_9 + chrono::Duration::hours(10)).is_empty());
        assert!(to_start(p.teams, &boxes, Utc.with_ymd_and_hms(2026, 12, 12, 9, 0, 0).unwrap()).is_empty());
        // Started at 09:00 and idle: kept through the window, stopped after.
        let seen = policy::Seen { started_at: Some(tuesday_9), ..Default::default() };
        assert!(!policy::decide(p.teams, &seen, tuesday_9 + chrono::Duration::hours(3)).is_stop());
        assert!(policy::decide(p.teams, &seen, tuesday_9 + chrono::Duration::hours(11)).is_stop());
        // Engineers' boxes are never started: a start window is refused in [idle].
        let err = Manifest::parse(&text.replace("team_idle", "idle")).unwrap_err().to_string();
        assert!(err.contains("idle.schedules[0].action") && err.contains("[team_idle]"), "{err}");
    }
}
