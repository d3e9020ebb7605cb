//! `doctor`'s checks of what the platform set up: the Session Manager
//! tools (`connect = "ssm"`) and the deployed manifest.

use super::check::{fail, ok, Check};
use super::Context;
use crate::laptop::paths::on_path;
use crate::manifest::{deployed, LoadedManifest, S3Url};

/// `aws ssm start-session` needs the AWS CLI and AWS's Session Manager
/// plugin on PATH.
pub(super) fn session_manager() -> Check {
    let missing: Vec<&str> = ["aws", "session-manager-plugin"].into_iter().filter(|tool| !on_path(tool)).collect();
    match missing.as_slice() {
        [] => ok("session manager", "connect = \"ssm\": aws and session-manager-plugin are installed"),
        _ => fail(
            "session manager",
            format!("connect = \"ssm\", but {} not found on PATH", missing.join(" and ")),
            "install the AWS CLI v2 and the Session Manager plugin (docs/engineer.md, \"Connecting through Session Manager\")",
        ),
    }
}

/// Whether the manifest the reaper applies is this one; None without
/// box.deployed_manifest.
pub(super) async fn deployed_manifest(ctx: &Context, manifest: &LoadedManifest) -> Option<Check> {
    let url = manifest.manifest.machine.deployed_manifest.as_deref()?;
    let (Ok(url), Some(s3)) = (S3Url::parse(url), ctx.seeds.s3.as_ref()) else {
        return Some(fail("deployed manifest", format!("box.deployed_manifest {url:?} cannot be read"), "set it to terraform's manifest_url output"));
    };
    let local = match std::fs::read_to_string(&manifest.path) {
        Ok(text) => text,
        Err(e) => return Some(fail("deployed manifest", format!("cannot read {}: {e}", manifest.path.display()), "check the file")),
    };
    Some(match deployed::fetch(s3, &url).await {
        Ok(text) if text == local => ok("deployed manifest", format!("{url} is this manifest")),
        Ok(text) => {
            let lines: Vec<String> = deployed::differing_lines(&local, &text, 5).iter().map(|l| l.to_string()).collect();
            fail(
                "deployed manifest",
                format!("{url} differs from {} (lines {}): the reaper applies the deployed one", manifest.path.display(), lines.join(", ")),
                "pull the latest manifest, or have the platform team run `workstation manifest publish` once the change is merged",
            )
        }
        Err(e) => fail("deployed manifest", e.to_string(), "check your AWS credentials; the platform team publishes it with `workstation manifest publish`"),
    })
}
