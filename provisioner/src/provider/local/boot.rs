//! Bringing a local box up (its namespace, sshd, idle check and stack)
//! and down.

use std::path::Path;

use chrono::Utc;

use super::record::{io, Record, Recorded};
use super::store::LocalProvider;
use crate::provider::host::path_str;
use crate::provider::netns::BoxHost;
use crate::provider::{LocalError, Result};

impl LocalProvider {
    pub(super) async fn boot(&self, r: Record) -> Result<Record> {
        // A box made before the machine-wide leases has none: claimed here,
        // so no other HOME is given its address while it is stopped.
        {
            let lock = self.machine.lock()?;
            self.machine.claim(&lock, r.address, &self.box_dir(&r.owner, &r.name).join("box.json"))?;
        }
        let host = self.host(&r);
        let host = tokio::task::spawn_blocking(move || host.boot().map(|_| host)).await.expect("boot task panicked")?;
        // What the image's data unit writes once its volume is mounted.
        if r.volume.is_some() {
            let marker = host.root().join(crate::provider::data::MARKER);
            std::fs::write(&marker, b"").map_err(io(&marker))?;
        }
        // The box publishes the host key it booted with (as the image does
        // at boot): the same as before, or a new root's (a replacement
        // interrupted after the old key was gone still publishes the new).
        let published = std::fs::read_to_string(host.host_key_pub()).map_err(io(&host.dir))?;
        let r = self.update(&r.id, |r| {
            r.host_key = Some(published.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
            r.state = Recorded::Running;
            // As EC2's LaunchTime: the last start, from which a box counts
            // as active (a woken box is not stopped by its idle check at once).
            r.launched_at = Utc::now();
        })?;
        // The idle check first: a box that runs must be able to stop itself,
        // whatever becomes of its stack.
        self.start_idle_check(&host, &r)?;
        if let Err(e) = start_stack(&host) {
            tracing::warn!("box {}: supervisord did not start at boot ({e}); `workstation up {}` starts it", r.name, r.name);
        }
        Ok(r)
    }

    /// The box's own idle check, every `idle_check_every`, inside the box:
    /// what the image's systemd timer is on EC2. It outlives the CLI that
    /// booted the box and goes away with the box (`halt` stops everything
    /// in its namespace). Its last run's output is in `idle-check.log`.
    fn start_idle_check(&self, host: &BoxHost, r: &Record) -> Result<()> {
        let Some(manifest) = &r.manifest else {
            return Ok(());
        };
        let exe = std::env::current_exe().map_err(io(&host.dir))?;
        let every = self.idle_check_every.as_secs().max(1).to_string();
        let log = host.dir.join("idle-check.log");
        let mut env: Vec<(&str, String)> = vec![("WORKSTATION_MANIFEST", manifest.display().to_string())];
        // The check finds this box's record as this CLI does.
        for var in ["HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"] {
            if let Some(v) = std::env::var_os(var) {
                env.push((var, v.to_string_lossy().into_owned()));
            }
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        host.spawn(
            r#"while sleep "$1"; do "$2" box idle-check --root "$3" >"$4" 2>&1; done"#,
            &[&every, path_str(&exe)?, path_str(&host.root())?, path_str(&log)?],
            &env,
        )
    }

    pub(super) async fn halt(&self, r: &Record) -> Result<()> {
        let host = self.host(r);
        tokio::task::spawn_blocking(move || host.halt()).await.expect("halt task panicked")
    }
}

/// The box's stack, as the image's systemd unit starts it at boot:
/// supervisord with the configuration `up` last installed, if any, in the
/// box's hostname and with the environment its SSH sessions have. Waited
/// for (0.3-0.5 s: supervisord daemonises once its socket listens), so
/// the verb that woke the box finds the stack starting, not missing.
fn start_stack(host: &BoxHost) -> Result<()> {
    let layout = crate::stack::layout::Layout::new(path_str(&host.root())?, None).map_err(LocalError::from)?;
    if !Path::new(&layout.conf()).exists() {
        return Ok(());
    }
    let root = path_str(&host.root())?.to_owned();
    let home = path_str(&host.home())?.to_owned();
    host.run_in(
        r#"exec unshare --uts -- sh -c 'hostname "$1" && exec supervisord -c "$2"' sh "$1" "$2""#,
        &[&host.hostname, &layout.conf()],
        &[("HOME", &home), ("WORKSTATION_BOX_ROOT", &root), ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")],
    )
}
