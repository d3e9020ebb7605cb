//! `workstation doctor`: checks every piece between this laptop and the box
//! and says how to fix each one that fails. Checks that depend on a failed
//! one are skipped with the reason, so the first failure is the one to fix.

use std::net::{IpAddr, ToSocketAddrs};

use crate::boxes::{Context, LifecycleError};
use crate::laptop::hosts;
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;
use crate::provider::ProviderKind;
use crate::provider::{BoxInfo, BoxState, ProviderError};
use crate::ssh::remote::RemoteError;
use crate::ssh::ssh_config;
use crate::stack::layout::{sh, StoreRunner};
use crate::stack::services;
use crate::stack::shell::BoxShell;

use super::check::{fail, ok, skip};
pub use super::check::{Check, Outcome};

/// The systemd timer of the image's idle check (images/workstation.nix).
pub const IDLE_TIMER: &str = "workstation-idle-check.timer";

pub async fn run(ctx: &Context, manifest: &LoadedManifest, name: &BoxName) -> Vec<Check> {
    let mut checks = Vec::new();
    let kind = ctx.provider.kind();

    // The provider answers: credentials for aws, the local registry else.
    let found = match ctx.provider.find(&ctx.owner, name).await {
        Ok(found) => {
            let what = match kind {
                ProviderKind::Aws => "the EC2 API answers",
                ProviderKind::Local => "the local provider answers",
            };
            checks.push(ok("credentials", format!("{what}; owner {}", ctx.owner)));
            Ok(found)
        }
        Err(e) => {
            // The fix of the actual failure (an expired session, no region,
            // an unreachable endpoint), not a generic "sign in".
            let fix = match (&e, kind) {
                (ProviderError::Aws(f), _) => f.fix.clone(),
                (_, ProviderKind::Aws) => "run again with -v for the full error".into(),
                (_, ProviderKind::Local) => "run as root (local boxes are network namespaces)".into(),
            };
            checks.push(fail("credentials", e.to_string(), fix));
            Err(())
        }
    };
    let running = match &found {
        // Not known: that is not a missing box.
        Err(()) => {
            checks.push(skip("box", "the provider did not answer"));
            None
        }
        Ok(Some(b)) if b.state == BoxState::Running => {
            checks.push(ok("box", format!("{} ({}) is running at {}", b.name, b.id, b.address.map_or("-".into(), |a| a.to_string()))));
            Some(b)
        }
        Ok(Some(b)) => {
            checks.push(fail("box", format!("{} ({}) is {}", b.name, b.id, b.state.as_str()), format!("workstation start {name}")));
            None
        }
        Ok(None) => {
            checks.push(fail("box", format!("no box named {name}"), format!("workstation create {name}")));
            None
        }
    };

    if let Ok(Some(b)) = &found {
        checks.push(image_check(ctx, manifest, b).await);
    }
    checks.push(include_check(ctx));
    if ctx.via_ssm() {
        checks.push(super::platform_checks::session_manager());
    }
    if let Some(check) = super::platform_checks::deployed_manifest(ctx, manifest).await {
        checks.push(check);
    }
    checks.extend(hosts_checks(ctx, manifest, running).await);

    let Some(info) = running else {
        for c in ["bring-up", "ssh", "services", "seeds", "idle timer", "hibernation"] {
            checks.push(skip(c, "the box is not running"));
        }
        return checks;
    };
    // The box's own record of its last bring-up (a tag): an interrupted or
    // failed create, start or up.
    checks.push(match info.bring_up_unfinished {
        false => ok("bring-up", "the last bring-up finished healthy"),
        true => fail("bring-up", "the last bring-up (create, start, up or a wake) did not finish healthy", format!("workstation up {name}")),
    });
    let connected = || ok("ssh", format!("{}@{} with the pinned host key", ctx.ssh.user, info.address.map_or("-".into(), |a| a.to_string())));
    let shell = match ctx.shell(info).await {
        Ok(s) => {
            checks.push(connected());
            s
        }
        // Connected, but the box did not answer the layout probe.
        Err(LifecycleError::Shell(e)) => {
            checks.push(connected());
            checks.push(fail("services", e.to_string(), format!("workstation ssh {name}")));
            return checks;
        }
        Err(e) => {
            checks.push(fail("ssh", e.to_string(), ssh_fix(&e, name)));
            for c in ["services", "seeds", "idle timer", "hibernation"] {
                checks.push(skip(c, "no SSH session"));
            }
            return checks;
        }
    };
    checks.extend(box_checks(&shell, manifest, name, kind).await);
    shell.close().await;
    checks
}

/// Whether the box runs the newest image of its line (drift).
async fn image_check(ctx: &Context, manifest: &LoadedManifest, b: &BoxInfo) -> Check {
    let line = ctx.image_line(Some(manifest)).await;
    match (super::drift::Drift::of(b.image_id.as_deref(), &line), &b.image_id) {
        (Some(d), _) => fail("image", format!("{} runs an older image: {}", b.name, d.sentence(&b.name)), format!("workstation upgrade {}", b.name)),
        (None, Some(image)) if !line.is_empty() => ok("image", format!("{image}, the newest of its line")),
        _ => skip("image", "no image line to compare with (an image pinned by id, or a local box)"),
    }
}

/// The fix for a failed SSH connection, by what failed.
fn ssh_fix(e: &LifecycleError, name: &BoxName) -> String {
    match e {
        LifecycleError::Remote(r) => match r.as_ref() {
            RemoteError::HostKeyMismatch { .. } => {
                format!("only if box {name} was rebuilt on purpose: `workstation pin {name} --replace`; otherwise do not connect and tell the platform team")
            }
            RemoteError::NotPinned { .. } => format!("workstation pin {name}"),
            RemoteError::AuthFailed { .. } | RemoteError::Identity { .. } => "check ssh_key and ssh_user in ~/.config/workstation/config.toml".into(),
            _ => "check the network path to the box (VPN, security group allowing your address on port 22)".into(),
        },
        _ => format!("workstation status {name}"),
    }
}

fn include_check(ctx: &Context) -> Check {
    let user_config = ctx.paths.home.join(".ssh/config");
    let line = ssh_config::include_line(&ctx.paths.ssh_config());
    if ssh_config::has_include(&user_config, &ctx.paths.ssh_config()) {
        ok("ssh config", format!("{} includes workstation's hosts", user_config.display()))
    } else {
        fail("ssh config", format!("{} lacks `{}`", user_config.display(), line.trim()), "workstation ssh-config")
    }
}

/// The agent answers, and the OS resolver (not the file) sends each
/// hostname to the box the agent says it points at.
async fn hosts_checks(ctx: &Context, manifest: &LoadedManifest, running: Option<&BoxInfo>) -> Vec<Check> {
    let names = &manifest.manifest.hostnames;
    if names.is_empty() {
        return vec![skip("hosts agent", "the manifest has no hostnames")];
    }
    let status = match ctx.hosts.status().await {
        Ok(s) => s,
        Err(e) => {
            return vec![
                fail(
                    "hosts agent",
                    e.to_string(),
                    format!("sudo workstation-hosts install --user $USER {}", names.iter().map(|n| format!("--name {n}")).collect::<Vec<_>>().join(" ")),
                ),
                skip("hostnames", "the hosts agent is not reachable"),
            ];
        }
    };
    let mut out = vec![ok("hosts agent", format!("reachable, {} names pointed", status.names.len()))];
    let Some(info) = running else {
        out.push(skip("hostnames", "the box is not running"));
        return out;
    };
    let mine = hosts::label(ctx.owner.as_str(), &info.name);
    // What the agent's block in the hosts file says now (someone may have
    // edited it since the agent wrote it).
    let in_block = |name: &str| status.block.iter().find(|e| e.names.iter().any(|n| n == name)).map(|e| e.address);
    let mut wrong = Vec::new();
    for name in names {
        let entry = status.names.iter().find(|e| &e.name == name);
        // Shared with a colleague on purpose: where the agent says.
        let expected: Option<IpAddr> = match entry {
            Some(e) if e.label.as_deref() != Some(mine.as_str()) => e.address,
            _ => info.address,
        };
        let resolved: Vec<IpAddr> = (name.as_str(), 0).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default();
        // Clients connect to the first answer (with `multi on`, glibc
        // returns every matching line of /etc/hosts, in file order).
        if expected.is_none() || resolved.first() != expected.as_ref() {
            wrong.push(Wrong {
                name: name.clone(),
                text: format!("{name} → {} (expected {})", fmt_ips(&resolved), expected.map_or("-".into(), |a| a.to_string())),
                agent_agrees: expected.is_some() && in_block(name) == expected,
            });
        }
    }
    if wrong.is_empty() {
        out.push(ok("hostnames", format!("{} resolve to the box", names.join(", "))));
    } else if wrong.iter().any(|w| w.agent_agrees) {
        let first = wrong.iter().find(|w| w.agent_agrees).map_or("", |w| w.name.as_str());
        out.push(fail(
            "hostnames",
            wrong.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join("; "),
            format!(
                "the agent's block is right but something answers first for {first}: an earlier line in {} or the resolver; remove it",
                status.hosts_file.display()
            ),
        ));
    } else {
        out.push(fail(
            "hostnames",
            wrong.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join("; "),
            "workstation share --off   (points them at your box again)",
        ));
    }
    out
}

/// A hostname that does not resolve where it should.
struct Wrong {
    name: String,
    text: String,
    /// The block in the hosts file says the right address: something else
    /// answers first.
    agent_agrees: bool,
}

fn fmt_ips(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        "nothing".into()
    } else {
        ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    }
}

async fn box_checks(onbox: &BoxShell, manifest: &LoadedManifest, name: &BoxName, kind: ProviderKind) -> Vec<Check> {
    let mut out = Vec::new();
    let m = &manifest.manifest;
    match services::status(onbox, m, None).await {
        Ok(programs) => {
            let down: Vec<_> = programs.iter().filter(|p| !p.is_up()).collect();
            match down.first() {
                None => out.push(ok("services", format!("{} programs running and healthy", programs.len()))),
                Some(first) => out.push(fail(
                    "services",
                    down.iter().map(|p| format!("{} {} ({})", p.name, p.state.to_lowercase(), p.health.as_str())).collect::<Vec<_>>().join("; "),
                    format!("workstation logs {} --box {name}, then workstation restart {} --box {name}", first.name, first.name),
                )),
            }
        }
        Err(e) => out.push(fail("services", e.to_string(), format!("workstation up {name}"))),
    }

    let seeded: Vec<&String> = m.stores.iter().filter(|(_, s)| s.seed.is_some()).map(|(n, _)| n).collect();
    if seeded.is_empty() {
        out.push(skip("seeds", "no store has a seed"));
    } else {
        let markers: Vec<String> = seeded.iter().map(|n| format!("test -s {} || echo {}", sh(&onbox.layout.marker(n)), sh(n))).collect();
        match onbox.output(&markers.join("; ")).await {
            Ok(missing) if missing.trim().is_empty() => {
                out.push(ok("seeds", format!("{} loaded", seeded.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))))
            }
            Ok(missing) => {
                let missing: Vec<&str> = missing.split_whitespace().collect();
                out.push(fail("seeds", format!("not loaded: {}", missing.join(", ")), format!("workstation seed {} --box {name}", missing[0])))
            }
            Err(e) => out.push(fail("seeds", e.to_string(), format!("workstation seed --box {name}"))),
        }
    }

    // Image boxes run the idle check from a systemd timer; a local box
    // from a loop its boot starts.
    if kind == ProviderKind::Local || onbox.layout.stores == StoreRunner::Supervisord {
        out.push(skip("idle timer", "not an image-built box: a local box runs its check every local.idle_check_every, its last output in idle-check.log in the box directory, ~/.local/state/workstation/local/OWNER--NAME/ (docs/idle.md)"));
    } else {
        match onbox.check(&format!("systemctl is-active --quiet {IDLE_TIMER}")).await {
            Ok(true) => out.push(ok("idle timer", format!("{IDLE_TIMER} active"))),
            Ok(false) => out.push(fail(
                "idle timer",
                format!("{IDLE_TIMER} is not active: the box will not stop itself"),
                format!("workstation ssh {name} -- sudo systemctl start {IDLE_TIMER}"),
            )),
            Err(e) => out.push(fail("idle timer", e.to_string(), format!("workstation ssh {name}"))),
        }
    }
    out.push(hibernation_check(onbox, manifest, name, kind).await);
    out
}

/// What the image's hibernation service found at this boot
/// (boxside/hibernation.rs, images/hibernation.nix).
pub const HIBERNATION_STATUS: &str = "/var/lib/workstation-root/hibernation";

async fn hibernation_check(onbox: &BoxShell, manifest: &LoadedManifest, name: &BoxName, kind: ProviderKind) -> Check {
    if !manifest.manifest.machine.hibernate {
        return skip("hibernation", "box.hibernate is off: idle stops are plain stops");
    }
    if kind == ProviderKind::Local || onbox.layout.stores == StoreRunner::Supervisord {
        return skip("hibernation", "not an image-built box: only an image prepares hibernation, and a local box has no memory image to keep");
    }
    match onbox.output(&format!("cat {HIBERNATION_STATUS} 2>/dev/null || true")).await {
        Ok(line) if line.starts_with("ready:") => ok("hibernation", line.trim()),
        Ok(line) if line.trim().is_empty() => fail(
            "hibernation",
            "this box has not prepared hibernation: its image was built without box.hibernate, or workstation-hibernation.service has not run",
            format!("workstation upgrade {name} to an image built with box.hibernate = true (docs/images.md)"),
        ),
        Ok(line) => fail("hibernation", line.trim(), format!("workstation ssh {name} -- sudo journalctl -b -u workstation-hibernation")),
        Err(e) => fail("hibernation", e.to_string(), format!("workstation ssh {name}")),
    }
}
