//! What the box does after files change: the manifest's installs, then
//! restarts (`sync` after each batch, `preview up` after an upload).

use std::collections::BTreeSet;

use serde::Serialize;

use super::Actions;
use crate::boxes::LifecycleError;
use crate::stack::holds;
use crate::stack::layout::sh;
use crate::stack::shell::BoxShell;

/// One line per event, for the CLI to print.
pub trait Report {
    fn line(&self, text: &str);
}

/// What [`apply`] ran.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    /// Install commands that succeeded.
    pub installed: Vec<String>,
    /// Install commands that failed (their services were not restarted).
    pub install_failed: Vec<String>,
    pub restarted: Vec<String>,
}

/// Runs `actions` in `dir` on the box: each install once (its services
/// restart only if it succeeded), then the restarts, except intercepted
/// services.
pub async fn apply(onbox: &BoxShell, dir: &str, actions: &Actions, report: &dyn Report) -> Result<Applied, LifecycleError> {
    apply_with(onbox, dir, actions, true, report).await
}

/// [`apply`], or with `restart` false the installs only (a new box's stack
/// is not up yet).
pub async fn apply_with(onbox: &BoxShell, dir: &str, actions: &Actions, restart: bool, report: &dyn Report) -> Result<Applied, LifecycleError> {
    let mut applied = Applied::default();
    let mut to_restart: BTreeSet<String> = actions.restarts.clone();
    for (command, services) in &actions.installs {
        report.line(&format!("running `{command}` on the box (for {})", services.join(", ")));
        let out = onbox.session.output(&onbox.wrap(&format!("cd {} && sh -c {} 2>&1", sh(dir), sh(command)))).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status == 0 {
            to_restart.extend(services.iter().cloned());
            applied.installed.push(command.clone());
        } else {
            let tail: Vec<&str> = text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            report.line(&format!("`{command}` failed (exit {}); not restarting {}:\n{}", out.status, services.join(", "), tail.join("\n")));
            applied.install_failed.push(command.clone());
        }
    }
    if !restart {
        return Ok(applied);
    }
    if !to_restart.is_empty() {
        // An intercepted service runs on someone's laptop, and its
        // ports on the box are theirs until the intercept ends.
        let held = holds::holders(onbox).await?;
        for h in held.iter().filter(|h| to_restart.remove(&h.service)) {
            report.line(&format!("not restarting {}: intercepted by {} (it runs on their laptop)", h.service, h.by));
        }
    }
    if !to_restart.is_empty() {
        let names: Vec<String> = to_restart.iter().map(|s| sh(s)).collect();
        match onbox.run("restarting services", &onbox.supervisorctl(&format!("restart {}", names.join(" ")))).await {
            Ok(_) => {
                report.line(&format!("restarted {}", to_restart.iter().cloned().collect::<Vec<_>>().join(", ")));
                applied.restarted = to_restart.into_iter().collect();
            }
            Err(e) => report.line(&format!("restart failed: {e}")),
        }
    }
    Ok(applied)
}
