//! [`Context`]: what every verb on a box needs (the provider, who you
//! are, where the laptop keeps its pins and config, the hosts agent),
//! built once by the CLI. Its methods live beside what they do: `create`
//! in [`super::create`], start/stop/wake in [`super::power`], the stack in
//! [`super::bring_up`], SSH in [`super::access`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::drift::Drift;
use super::LifecycleError;
use crate::idle::policy::{self, Seen, Verdict};
use crate::laptop::hosts::HostsAgent;
use crate::laptop::paths::Paths;
use crate::manifest::name::{BoxName, Owner};
use crate::manifest::{IdlePolicy, LoadedManifest};
use crate::provider::{BoxInfo, BoxState, ImageSummary, Provider};
use crate::ssh::known_hosts::{self, KnownHosts};

/// Everything the lifecycle needs, built once by the CLI ([`Context::new`]).
/// Its fields are the lifecycle's own; other modules read what they need
/// through the accessors.
pub struct Context {
    pub(super) provider: Box<dyn Provider>,
    pub(super) owner: Owner,
    pub(super) paths: Paths,
    pub(super) known_hosts: KnownHosts,
    pub(super) ssh: SshLogin,
    pub(super) seeds: SeedAccess,
    /// The laptop's hosts agent, which points hostnames at boxes.
    pub(super) hosts: HostsAgent,
    /// Where the owner's own secret values live (`workstation secrets`).
    pub(super) secrets: super::secrets::SecretStore,
}

/// How the laptop logs in to boxes.
pub struct SshLogin {
    pub user: String,
    /// The private key; its `.pub` is what boxes admit.
    pub identity: PathBuf,
    /// This binary and the flags that select this provider: the generated
    /// SSH config's ProxyCommand runs `<proxy...> proxy NAME`.
    pub proxy: Vec<String>,
    /// `connect = "ssm"`: sessions go through Session Manager, not TCP.
    pub ssm: Option<crate::ssh::ssm::StartSession>,
}

/// Where seeds may come from.
pub struct SeedAccess {
    /// For seeds stored in S3 and the deployed manifest (only built when
    /// the manifest names one).
    pub s3: Option<aws_sdk_s3::Client>,
    /// Local seeds may be read from outside the manifest's directory
    /// (`--allow-outside`); by default a manifest from a repository cannot
    /// send the laptop's other files to a box.
    pub outside: bool,
}

/// `workstation status`: the box and what the laptop knows about it.
#[derive(Debug, Serialize)]
pub struct BoxStatus {
    #[serde(flatten)]
    pub info: BoxInfo,
    pub host_key_pinned: bool,
    /// Whether the box was created from this manifest (None: unknown).
    pub manifest_current: Option<bool>,
    /// When the idle policy would stop it, and why (running aws boxes).
    pub idle: Option<Verdict>,
    /// Whether a newer image of its line is out (None: it runs the newest).
    pub drift: Option<Drift>,
}

impl Context {
    // One argument per part: each comes from the settings in its own way.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        provider: Box<dyn Provider>,
        owner: Owner,
        paths: Paths,
        known_hosts: KnownHosts,
        ssh: SshLogin,
        seeds: SeedAccess,
        hosts: HostsAgent,
        secrets: super::secrets::SecretStore,
    ) -> Context {
        Context { provider, owner, paths, known_hosts, ssh, seeds, hosts, secrets }
    }

    pub fn secrets(&self) -> &super::secrets::SecretStore {
        &self.secrets
    }

    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// Who runs this: the owner of the boxes the verbs act on.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn hosts(&self) -> &HostsAgent {
        &self.hosts
    }

    /// The private key boxes are logged in to with.
    pub fn identity(&self) -> &Path {
        &self.ssh.identity
    }

    pub async fn find(&self, name: &BoxName) -> Result<BoxInfo, LifecycleError> {
        self.provider.find(&self.owner, name).await?.ok_or_else(|| LifecycleError::UnknownBox { owner: self.owner.to_string(), name: name.to_string() })
    }

    /// The box `name`, whether its key is pinned, whether it runs this
    /// manifest, and when the idle policy would stop it.
    pub async fn status(&self, name: &BoxName, manifest: Option<&LoadedManifest>) -> Result<BoxStatus, LifecycleError> {
        let info = self.find(name).await?;
        let host_key_pinned = self.known_hosts.get(&known_hosts::alias(&info.id))?.is_some();
        let policy = manifest.map(|m| m.manifest.idle_for(info.team.is_some()).clone()).unwrap_or_default();
        // Both providers record activity and keeps where the box's own
        // idle check reads them (EC2 tags, a local box's record).
        let idle = (info.state == BoxState::Running).then(|| policy::decide(&policy, &Seen::of(&info), Utc::now()));
        let manifest_current = manifest.zip(info.manifest_hash.as_ref()).map(|(m, h)| &m.hash == h);
        let drift = self.drift(&info, manifest).await;
        Ok(BoxStatus { info, host_key_pinned, manifest_current, idle, drift })
    }

    /// Holds box `name` up for `duration` (at most the policy's
    /// `max_keep`): the idle check and `reap` leave it running until then.
    pub async fn keep(&self, name: &BoxName, duration: Duration, policy: &IdlePolicy) -> Result<(BoxInfo, DateTime<Utc>), LifecycleError> {
        if duration > policy.max_keep {
            return Err(LifecycleError::KeepTooLong { asked: duration, max: policy.max_keep });
        }
        let info = self.find(name).await?;
        // A stopped box does not stop itself: a keep would only hold it
        // up after a later start, which is not what was asked.
        if info.state != BoxState::Running {
            return Err(LifecycleError::Stopped { name: info.name.clone(), state: info.state.as_str() });
        }
        let until = Utc::now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        self.provider.keep_until(&info.id, until).await?;
        Ok((info, until))
    }
}

impl Context {
    /// The image line of the manifest, for [`Drift::of`]; empty when it
    /// cannot be read (drift is advice: a failed look is no error).
    pub async fn image_line(&self, manifest: Option<&LoadedManifest>) -> Vec<ImageSummary> {
        let Some(m) = manifest else { return Vec::new() };
        match self.provider.images(&m.manifest.machine).await {
            Ok(line) => line,
            Err(e) => {
                tracing::debug!("image line not read: {e}");
                Vec::new()
            }
        }
    }

    pub async fn drift(&self, info: &BoxInfo, manifest: Option<&LoadedManifest>) -> Option<Drift> {
        Drift::of(info.image_id.as_deref(), &self.image_line(manifest).await)
    }
}
