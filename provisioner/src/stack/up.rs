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
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::manifest::Manifest;
use crate::poll::{self, Backoff};
use crate::progress::step;
use crate::ssh::remote::Held;
use crate::stack::layout::{sh, Layout, StoreRunner};
use crate::stack::seed::{self, SeedReport, Snapshot};
use crate::stack::services::{self, ProgramStatus};
use crate::stack::shell::{BoxShell, ShellError};
use crate::stack::stores;
use crate::stack::supervisor;

/// Health polls: from a few milliseconds up, so a stack that is quick to
/// start is not made to wait for a long first pause; at most 100 ms apart,
/// because a poll costs a few milliseconds over the open connection, while
/// a long pause is paid in full by a stack that got healthy just after a
/// poll.
const HEALTH_POLL: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));

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
    queues: &BTreeMap<String, String>,
    health_timeout: Duration,
    progress: Option<&ProgressBar>,
) -> Result<UpReport, ShellError> {
    let layout = &onbox.layout;
    let rendered = supervisor::render(manifest, layout, queues);
    let hash = rendered.hash();
    // Directories, the configuration and supervisord in one round trip:
    // each exec is a round trip to the box, which on EC2 is what costs.
    step(progress, format!("preparing {} and supervisord configuration {hash}", layout.root()));
    // On stdin: the launchers (base64) may be larger than one command line.
    let script = bring_up_script(layout, manifest, &rendered, &hash);
    // In a function called on its last line: a script cut short (the
    // laptop interrupted mid-upload, and sh read end of input) runs none
    // of its lines instead of a truncated last one.
    let script = format!("bring_up() {{\n{script}}}\nbring_up\n");
    let out = onbox.run_input("preparing the box and starting supervisord", &bring_up_command(layout), script.as_bytes()).await?;
    let supervisord = match out.lines().last() {
        Some("started") => "started",
        Some("updated") => "updated",
        _ => "unchanged",
    };

    step(progress, "seeding data stores".into());
    let seeds = seed::seed_all(onbox, locked, &manifest.stores, None, snapshots, false).await;

    step(progress, "waiting for health checks".into());
    let programs = match manifest.services.is_empty() && manifest.stores.is_empty() {
        true => Vec::new(),
        false => {
            // Up, or given up on by supervisord: nothing more to wait for.
            let mut last = Vec::new();
            let settled = poll::until(health_timeout, HEALTH_POLL, async || {
                let programs = services::status(onbox, manifest, None).await?;
                if programs.iter().all(ProgramStatus::is_up) || programs.iter().any(ProgramStatus::has_failed) {
                    return Ok::<_, ShellError>(Some(programs));
                }
                last = programs;
                Ok(None)
            })
            .await?;
            settled.unwrap_or(last)
        }
    };
    let healthy = programs.iter().all(ProgramStatus::is_up) && seeds.iter().all(|s| s.error.is_none());
    Ok(UpReport { root: layout.root().into(), config: hash, supervisord, seeds, programs, healthy })
}

/// The command that runs [`bring_up_script`]: one at a time per box. An
/// interrupted `up`'s script runs on after the laptop has gone (nothing
/// ends a command without a terminal when its SSH session does), and two
/// `supervisorctl update`s at once leave programs stopped or removed; the
/// lock is the script's own, so it lasts exactly as long as the script
/// (`-o`: supervisord and the stores' first starts, which outlive it, do
/// not inherit it).
fn bring_up_command(l: &Layout) -> String {
    format!(
        "mkdir -p -m 0755 {run} && {{ flock -o -E 75 -w {wait} {lock} sh -s; s=$?; [ $s != 75 ] || echo \"an earlier up's script still runs on the box after {wait} s (it holds {lock})\" >&2; exit $s; }}",
        run = sh(&l.run_dir()),
        lock = sh(&format!("{}/up.lock", l.run_dir())),
        wait = UP_LOCK_WAIT.as_secs(),
    )
}

/// How long `up` waits for an earlier, interrupted one's script.
const UP_LOCK_WAIT: Duration = Duration::from_secs(120);

/// One shell script for the whole configuration step; every part checks
/// before it acts, so a second run changes nothing:
/// 1. the root and its directories; each store's directory owned by the
///    store's user, who must be able to reach it;
/// 2. the rendered configuration in `supervisor/<hash>/` unless complete
///    (files base64-encoded, so no byte of them is shell syntax), then
///    `current` pointed at it with an atomic rename, keeping the one being
///    replaced (its programs may still read their launchers);
/// 3. supervisord started, or told to apply a changed configuration (only
///    changed programs restart). Its last line says which.
fn bring_up_script(l: &Layout, manifest: &Manifest, rendered: &supervisor::Rendered, hash: &str) -> String {
    use base64::Engine;
    let mut script = format!(
        "set -e\nmkdir -p -m 0755 {root} {root}/stores {sup} {run} {logs} && chmod 0755 {root} && mkdir -p -m 0700 {seeds} \"$(dirname {socket})\"\n",
        root = sh(l.root()),
        sup = sh(&l.supervisor_dir()),
        run = sh(&l.run_dir()),
        logs = sh(&l.logs()),
        seeds = sh(&l.seeds()),
        socket = sh(&l.socket()),
    );
    // Stores that systemd runs have the directories their modules made.
    let supervised: Vec<_> = manifest.stores.iter().filter(|(_, s)| stores::runner(s, l) == Some(StoreRunner::Supervisord)).collect();
    for (name, store) in &supervised {
        let user = stores::user(store.kind);
        let dir = sh(&l.store_dir(name));
        script += &format!(
            "getent passwd {user} >/dev/null || {{ echo \"user {user} does not exist on the box; install the {kind} server package (the image has it)\" >&2; exit 1; }}\n\
             install -d -o {user} -g \"$(id -gn {user})\" -m 0700 {dir}\n\
             runuser -u {user} -- test -x {dir} || {{ d={dir}; bad=$d; while [ \"$d\" != / ]; do d=$(dirname \"$d\"); runuser -u {user} -- test -x \"$d\" || bad=$d; done; \
             echo \"user {user} cannot reach {dir} (store {name}): $bad is not searchable by {user} (chmod o+x $bad, or keep the box root out of it)\" >&2; exit 1; }}\n",
            kind = store.kind.as_str(),
        );
    }
    // The image's unit starts supervisord at boot too: one started
    // meanwhile makes ours fail to bind the socket, and runs (told to
    // apply the new configuration, which it may have missed).
    // supervisord takes a Python start-up to daemonise; when it runs
    // nothing yet, nobody waits for that.
    let supervised_programs = !manifest.services.is_empty() || !supervised.is_empty();
    let start = match supervised_programs {
        true => format!("supervisord -c {}", sh(&l.conf())),
        false => format!("(setsid supervisord -c {} </dev/null >/dev/null 2>&1 &)", sh(&l.conf())),
    };
    let dir = format!("{}/{hash}", l.supervisor_dir());
    script += &format!("if [ ! -f {complete} ]; then\n", complete = sh(&format!("{dir}/.complete")));
    for (path, text) in &rendered.files {
        let file = sh(&format!("{dir}/{path}"));
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        script += &format!("mkdir -p \"$(dirname {file})\" && printf %s '{encoded}' | base64 -d > {file} && chmod 0644 {file}\n");
    }
    script += &format!("touch {complete}\nfi\n", complete = sh(&format!("{dir}/.complete")));
    // Stores' first-start steps (initdb) overlap supervisord's own start-up
    // (a Python import of ~0.4 s); the launcher waits for them.
    for (user, path) in &rendered.inits {
        script += &format!("runuser -u {user} -- /bin/sh {} </dev/null >/dev/null 2>&1 &\n", sh(&format!("{dir}/{path}")));
    }
    let applied = format!("{}/applied", l.supervisor_dir());
    // Whether supervisord has taken this configuration is `applied`,
    // written once it has: an `up` interrupted between the switch of
    // `current` and supervisord's update (or during the update, which stops
    // a changed program before starting it) leaves it behind, so the next
    // run updates again and starts what the interrupted update left
    // stopped, except a service an intercept holds (started under its
    // lock, so an intercept cannot take it in between).
    script += &format!(
        "\
         prev=$(readlink {current} || true)\n\
         if [ \"$prev\" != {hash} ]; then\n\
         (cd {sup} && ln -sfn {hash} current.new && mv -T current.new current && \
         find . -mindepth 1 -maxdepth 1 -type d ! -name {hash} ! -name \"${{prev:-{hash}}}\" -exec rm -rf {{}} +)\n\
         fi\n\
         changed=0; [ \"$(cat {applied} 2>/dev/null || true)\" = {hash} ] || changed=1\n\
         pid=$(cat {pidfile} 2>/dev/null || true)\n\
         if [ -n \"$pid\" ] && grep -qsF {conf} /proc/\"$pid\"/cmdline; then\n\
         if [ $changed = 1 ]; then said=$({ctl} update 2>&1) || {{ echo \"supervisorctl update: $said\" >&2; exit 1; }}\n\
         {ctl} status 2>/dev/null | awk '$2 == \"STOPPED\" {{ print $1 }}' | while read -r p; do \
         f={holds}/\"$p\".lock; if [ -e \"$f\" ]; then flock -n \"$f\" {ctl} start \"$p\" >/dev/null || true; else {ctl} start \"$p\" >/dev/null || true; fi; done\n\
         {record}; echo updated; else echo unchanged; fi\n\
         else {start} || {{ sleep 1; pid=$(cat {pidfile} 2>/dev/null || true); [ -n \"$pid\" ] && grep -qsF {conf} /proc/\"$pid\"/cmdline && \
         {{ [ $changed = 0 ] || {ctl} update >/dev/null; }}; }}; {record}; echo started; fi\n",
        current = sh(&l.current()),
        sup = sh(&l.supervisor_dir()),
        applied = sh(&applied),
        record = format!("echo {hash} > {a}.new && mv {a}.new {a}", a = sh(&applied)),
        holds = sh(&super::holds::dir(l)),
        pidfile = sh(&format!("{}/supervisord.pid", l.run_dir())),
        ctl = format!("supervisorctl -c {}", sh(&l.conf())),
        start = start,
        // This box's supervisord: local boxes share one PID space, and a
        // stale pidfile's PID may be another box's supervisord by now.
        conf = sh(&l.conf()),
    );
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script run by `sh` (from stdin, as on the box) in a scratch
    /// root, with stand-ins for supervisord (a process whose command line
    /// names the configuration, its PID in the pidfile) and supervisorctl:
    /// the files arrive byte for byte (a last line without a newline,
    /// quotes, `$`), `current` points at them, a second run changes nothing,
    /// and a changed configuration is applied with `update`.
    #[test]
    fn the_bring_up_script_installs_the_configuration_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let layout = Layout::new(root.to_str().unwrap(), None).unwrap();
        let manifest =
            Manifest::parse("[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n[services.api]\ncommand = \"true\"\n")
                .unwrap();
        let mut rendered = supervisor::render(&manifest, &layout, &BTreeMap::new());
        rendered.files.insert("programs/odd.sh".into(), "echo \"$HOME\" 'it''s' `x` \\n no newline".into());
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("calls");
        let stub = |name: &str, body: &str| {
            std::fs::write(bin.join(name), format!("#!/bin/sh\necho {name} \"$@\" >> {}\n{body}", log.display())).unwrap();
            std::fs::set_permissions(bin.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        // supervisord: a long-lived process naming the configuration.
        stub("supervisord", &format!("tail -f \"$2\" >/dev/null 2>&1 &\necho $! > {}/supervisord.pid\n", layout.run_dir()));
        // One program left stopped, as an interrupted update leaves it.
        stub("supervisorctl", "[ \"$3\" = status ] && echo 'api                 STOPPED   Dec 06 05:00 PM'\ntrue\n");
        let run = |rendered: &supervisor::Rendered| {
            let mut child = std::process::Command::new("sh")
                .arg("-s")
                .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let script = bring_up_script(&layout, &manifest, rendered, &rendered.hash());
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().lines().last().unwrap_or_default().to_string()
        };
        assert_eq!(run(&rendered), "started");
        let hash = rendered.hash();
        for (path, text) in &rendered.files {
            assert_eq!(&std::fs::read_to_string(root.join("supervisor").join(&hash).join(path)).unwrap(), text, "{path}");
        }
        assert_eq!(std::fs::read_link(root.join("supervisor/current")).unwrap().to_str(), Some(hash.as_str()));
        let complete = root.join("supervisor").join(&hash).join(".complete");
        let before = std::fs::metadata(&complete).unwrap().modified().unwrap();
        assert_eq!(run(&rendered), "unchanged", "supervisord runs and nothing changed");
        assert_eq!(std::fs::metadata(&complete).unwrap().modified().unwrap(), before, "a complete upload is not redone");

        rendered.files.insert("programs/new.sh".into(), "exec true\n".into());
        assert_eq!(run(&rendered), "updated");
        assert_eq!(std::fs::read_link(root.join("supervisor/current")).unwrap().to_str(), Some(rendered.hash().as_str()));
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls.matches("supervisord -c").count(), 1, "{calls}");
        assert!(calls.contains(&format!("supervisorctl -c {} update", layout.conf())), "{calls}");
        assert!(calls.contains(&format!("supervisorctl -c {} start api", layout.conf())), "what an update left stopped is started: {calls}");

        // An `up` interrupted after `current` moved but before supervisord
        // took it: the next run updates, not "unchanged".
        std::fs::remove_file(root.join("supervisor/applied")).unwrap();
        assert_eq!(run(&rendered), "updated");
        assert_eq!(run(&rendered), "unchanged");
        let pid = std::fs::read_to_string(root.join("run/supervisord.pid")).unwrap();
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}
