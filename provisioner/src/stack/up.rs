//! `workstation up` (also the last part of `create` and `start`): make the
//! box run the manifest's stack. Every step checks before it acts, so
//! running it again on a half-made box finishes the job:
//! 1. directories, and each store's directory owned by its user;
//! 2. the rendered supervisord configuration, uploaded once per content
//!    hash and switched in with an atomic symlink swap;
//! 3. supervisord started, or told to apply the new configuration (only
//!    programs whose configuration changed restart);
//! 4. stores seeded (in parallel) unless their marker says it is done;
//! 5. health checks until everything is healthy, something failed for
//!    good, or the timeout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

use crate::manifest::Manifest;
use crate::stack::layout::{sh, StoreRunner};
use crate::progress::step;
use crate::stack::shell::{BoxShell, ShellError};
use crate::ssh::remote::Held;
use crate::stack::seed::{self, SeedReport, Snapshot};
use crate::stack::services::{self, ProgramStatus};
use crate::stack::stores;
use crate::stack::supervisor;

#[derive(Debug, Serialize)]
pub struct UpReport {
    /// The box's workstation directory.
    pub root: String,
    /// Hash of the rendered supervisord configuration now active.
    pub config: String,
    /// started, updated or unchanged.
    pub supervisord: &'static str,
    pub seeds: Vec<SeedReport>,
    pub programs: Vec<ProgramStatus>,
    /// Every program running and passing its check, every seed loaded.
    pub healthy: bool,
}

/// Runs while the caller holds the box's bring-up lock ([`BoxShell::lock`]),
/// so concurrent runs take turns.
pub async fn up(
    onbox: &BoxShell,
    locked: &Held,
    manifest: &Manifest,
    snapshots: &BTreeMap<String, Option<Snapshot>>,
    health_timeout: Duration,
    progress: Option<&ProgressBar>,
) -> Result<UpReport, ShellError> {
    let layout = &onbox.layout;
    step(progress, format!("preparing {}", layout.root()));
    prepare(onbox, manifest).await?;

    let rendered = supervisor::render(manifest, layout);
    let hash = rendered.hash();
    step(progress, format!("uploading supervisord configuration {hash}"));
    let changed = install_config(onbox, &rendered, &hash).await?;

    step(progress, "starting supervisord".into());
    let running = onbox.check(&format!("{} >/dev/null 2>&1", onbox.supervisorctl("pid"))).await?;
    let supervisord = match (running, changed) {
        (false, _) => {
            onbox.run("starting supervisord", &format!("supervisord -c {}", sh(&layout.conf()))).await?;
            "started"
        }
        (true, true) => {
            onbox.run("applying the new configuration (supervisorctl update)", &onbox.supervisorctl("update")).await?;
            "updated"
        }
        (true, false) => "unchanged",
    };

    step(progress, "seeding data stores".into());
    let seeds = seed::seed_all(onbox, locked, &manifest.stores, None, snapshots, false).await;

    step(progress, "waiting for health checks".into());
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    let programs = loop {
        let programs = services::status(onbox, manifest, None).await?;
        let all_up = programs.iter().all(ProgramStatus::is_up);
        if all_up || programs.iter().any(ProgramStatus::has_failed) || started.elapsed() >= health_timeout {
            break programs;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    };
    let healthy = programs.iter().all(ProgramStatus::is_up) && seeds.iter().all(|s| s.error.is_none());
    Ok(UpReport { root: layout.root().into(), config: hash, supervisord, seeds, programs, healthy })
}

/// The root and its directories; each store's directory owned by the
/// store's user, who must be able to reach it.
async fn prepare(onbox: &BoxShell, manifest: &Manifest) -> Result<(), ShellError> {
    let l = &onbox.layout;
    onbox
        .run(
            "creating the box's directories",
            &format!(
                "mkdir -p -m 0755 {root} {root}/stores {sup} {run} {logs} && chmod 0755 {root} && mkdir -p -m 0700 {seeds} \"$(dirname {socket})\"",
                root = sh(l.root()),
                sup = sh(&l.supervisor_dir()),
                run = sh(&l.run_dir()),
                logs = sh(&l.logs()),
                seeds = sh(&l.seeds()),
                socket = sh(&l.socket()),
            ),
        )
        .await?;
    // Stores that systemd runs have the directories their modules made.
    let supervised = manifest.stores.iter().filter(|_| l.stores == StoreRunner::Supervisord);
    for (name, store) in supervised {
        let user = stores::user(store.kind);
        let dir = sh(&l.store_dir(name));
        onbox
            .run(
                &format!("preparing store {name}"),
                &format!(
                    "getent passwd {user} >/dev/null || {{ echo \"user {user} does not exist on the box; install the {kind} server package (the image has it)\" >&2; exit 1; }}\n\
                     install -d -o {user} -g \"$(id -gn {user})\" -m 0700 {dir}\n\
                     runuser -u {user} -- test -x {dir} || {{ echo \"user {user} cannot reach {dir}: a parent directory is not searchable by others (chmod o+x it)\" >&2; exit 1; }}",
                    kind = store.kind.as_str(),
                ),
            )
            .await?;
    }
    Ok(())
}

/// Uploads the configuration into `supervisor/<hash>/` unless complete,
/// then points `current` at it. Returns whether `current` changed.
async fn install_config(onbox: &BoxShell, rendered: &supervisor::Rendered, hash: &str) -> Result<bool, ShellError> {
    let base = onbox.layout.supervisor_dir();
    let dir = format!("{base}/{hash}");
    if !onbox.check(&format!("test -f {}", sh(&format!("{dir}/.complete")))).await? {
        for (path, text) in &rendered.files {
            let file = sh(&format!("{dir}/{path}"));
            onbox
                .run_input(&format!("uploading {path}"), &format!("mkdir -p \"$(dirname {file})\" && cat > {file} && chmod 0644 {file}"), text.as_bytes())
                .await?;
        }
        onbox.run("finishing the upload", &format!("touch {}", sh(&format!("{dir}/.complete")))).await?;
    }
    let previous = onbox.output(&format!("readlink {} || true", sh(&onbox.layout.current()))).await?;
    let previous = previous.trim();
    if previous == hash {
        return Ok(false);
    }
    // Keep the configuration being replaced (its programs may still be
    // reading their launchers); remove older ones.
    onbox
        .run(
            "switching to the new configuration",
            &format!(
                "cd {base} && ln -sfn {hash} current.new && mv -T current.new current && \
                 find . -mindepth 1 -maxdepth 1 -type d ! -name {hash} ! -name {keep} -exec rm -rf {{}} +",
                base = sh(&base),
                keep = sh(if previous.is_empty() { hash } else { previous }),
            ),
        )
        .await?;
    Ok(true)
}
