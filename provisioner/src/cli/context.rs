//! What every verb builds first: the manifest (found or given), the
//! settings, and the library's [`Context`] with its provider.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::Output;
use crate::boxes::{Context, SecretStore, SeedAccess, SshLogin};
use crate::laptop::paths::Paths;
use crate::laptop::settings::{AwsSettings, Settings};
use crate::manifest::name::BoxName;
use crate::manifest::{LoadedManifest, Manifest};
use crate::provider::aws::secrets::OwnParameters;
use crate::provider::aws::{sdk, ApiCalls, AwsProvider};
use crate::provider::local::LocalProvider;
use crate::provider::ProviderKind;
use crate::provider::{BoxInfo, Provider};
use crate::ssh::known_hosts::KnownHosts;
use crate::ssh::ssm::{Connect, StartSession};

/// Options every verb shares.
#[derive(Clone)]
pub struct Global {
    pub manifest: Option<PathBuf>,
    pub provider: Option<ProviderKind>,
    pub output: Output,
    /// `--output markdown` (preview up and list; `output` is Text then).
    pub markdown: bool,
    /// Seed paths may leave the manifest's directory.
    pub allow_outside: bool,
    /// `--profile` and `--region`: over the settings' `[aws]`.
    pub profile: Option<String>,
    pub region: Option<String>,
}

impl Global {
    pub fn manifest_path(&self) -> Result<PathBuf> {
        match &self.manifest {
            Some(p) => Ok(p.clone()),
            None => Ok(Manifest::find(&std::env::current_dir().context("cannot read the current directory")?)?),
        }
    }

    /// The manifest, required (create).
    pub fn load_manifest(&self) -> Result<LoadedManifest> {
        Ok(Manifest::load(&self.manifest_path()?)?)
    }

    /// The manifest for verbs that need none of it but the region (list,
    /// status, ssh, stop, destroy): a broken one is set aside with a
    /// warning instead of failing a verb it does not concern.
    pub fn manifest_for_lookup(&self) -> Option<LoadedManifest> {
        self.optional_manifest().unwrap_or_else(|e| {
            tracing::warn!("ignoring the manifest ({e:#}); fix it before create, up or seed");
            None
        })
    }

    /// The manifest if there is one: other verbs only take the region from it.
    pub fn optional_manifest(&self) -> Result<Option<LoadedManifest>> {
        match self.manifest_path() {
            Ok(p) => Ok(Some(Manifest::load(&p)?)),
            Err(_) if self.manifest.is_none() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The context and the owner's box `name`, running: a verb that
    /// connects to a stopped box starts it first (wake on connect), as
    /// `start` would, with progress on stderr.
    pub async fn wake(&self, manifest: Option<&LoadedManifest>, name: &BoxName) -> Result<(Context, BoxInfo)> {
        let ctx = self.context(manifest).await?;
        let info = self.wake_in(&ctx, manifest, name).await?;
        Ok((ctx, info))
    }

    /// [`Global::wake`] in a context already made. What the wake did goes
    /// to stderr: stdout is the command's (or, for the ProxyCommand, ssh's
    /// connection).
    pub async fn wake_in(&self, ctx: &Context, manifest: Option<&LoadedManifest>, name: &BoxName) -> Result<BoxInfo> {
        let woken = super::output::with_spinner(self.output, async |p| ctx.wake(name, manifest, p).await).await?;
        if let crate::boxes::Woken::Started(started) = &woken {
            super::output::report_wake(started);
        }
        Ok(woken.into_info())
    }

    /// Which provider this run uses: `--provider`, else the settings'
    /// (`provider`, `WORKSTATION_PROVIDER`), else aws. Settings that cannot
    /// be read are an error, never a silent fall back to AWS.
    pub fn provider_kind(&self) -> Result<ProviderKind> {
        if let Some(kind) = self.provider {
            return Ok(kind);
        }
        Ok(Settings::provider(&Paths::from_env()?.settings_file(), &|k| std::env::var(k).ok())?)
    }

    /// This run's settings (the file, then WORKSTATION_* variables).
    pub fn settings(&self) -> Result<Settings> {
        Ok(Settings::load(&Paths::from_env()?, &|k| std::env::var(k).ok())?)
    }

    /// Settings, provider and pinned keys: everything a verb needs.
    pub async fn context(&self, manifest: Option<&LoadedManifest>) -> Result<Context> {
        let paths = Paths::from_env()?;
        let mut settings = Settings::load(&paths, &|k| std::env::var(k).ok())?;
        if let Some(kind) = self.provider {
            settings.provider = kind;
        }
        self.override_aws(&mut settings.aws);
        // `ssh ws-NAME` wakes the box through this same provider, from any
        // directory (without the manifest that may have named the region).
        let mut proxy = vec![std::env::current_exe().context("cannot find the workstation binary")?.display().to_string()];
        let (provider, secrets): (Box<dyn Provider>, SecretStore) = match settings.provider {
            ProviderKind::Aws => {
                let region = aws_region(&settings.aws, manifest);
                // It goes into the generated SSH config's ProxyCommand.
                if let Some(r) = region.as_deref().filter(|r| !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) {
                    anyhow::bail!("region {r:?} is not an AWS region name (letters, digits and '-', e.g. eu-west-1); fix box.region in the manifest, [aws] region in your settings, or --region");
                }
                proxy.extend(["--provider".into(), "aws".into()]);
                proxy.extend(region.iter().flat_map(|r| ["--region".into(), r.clone()]));
                proxy.extend(settings.aws.profile.iter().flat_map(|p| ["--profile".into(), p.clone()]));
                let sdk = sdk::config(settings.aws.profile.as_deref(), region).await;
                let aws = AwsProvider::new(aws_sdk_ec2::Client::from_conf(sdk::ec2_config(&sdk).build()), aws_sdk_sqs::Client::new(&sdk), settings.aws.address)
                    .with_instance_connect(aws_sdk_ec2instanceconnect::Client::new(&sdk));
                (Box::new(aws), SecretStore::Ssm(OwnParameters::new(&sdk)))
            }
            ProviderKind::Local => {
                proxy.extend(["--provider".into(), "local".into()]);
                let local = LocalProvider::new(paths.local_boxes(), settings.local.clone(), settings.local_idle_check_every)?;
                (Box::new(local), SecretStore::Laptop(settings.secrets.clone()))
            }
        };
        let ssh_user = settings.ssh_user.clone().unwrap_or_else(|| match settings.provider {
            ProviderKind::Aws => settings.owner.to_string(),
            // Local boxes share this machine's accounts, and need root.
            ProviderKind::Local => "root".into(),
        });
        let s3 = match manifest {
            // S3 seeds, or the deployed manifest `doctor` compares.
            Some(m)
                if m.manifest.machine.deployed_manifest.is_some()
                    || m.manifest.stores.values().any(|s| s.seed.as_deref().is_some_and(|u| u.starts_with("s3://"))) =>
            {
                let region = settings.aws.region.clone().or_else(|| m.manifest.machine.region.clone());
                Some(sdk::s3_client(&sdk::config(settings.aws.profile.as_deref(), region).await))
            }
            _ => None,
        };
        let known_hosts = KnownHosts::new(paths.known_hosts());
        let ssm = (settings.connect == Connect::Ssm).then(|| StartSession {
            region: (settings.provider == ProviderKind::Aws).then(|| aws_region(&settings.aws, manifest)).flatten(),
            profile: settings.aws.profile.clone().filter(|_| settings.provider == ProviderKind::Aws),
        });
        let ssh = SshLogin { user: ssh_user, identity: settings.ssh_key.clone(), proxy, ssm };
        let seeds = SeedAccess { s3, outside: self.allow_outside };
        Ok(Context::new(provider, settings.owner.clone(), paths, known_hosts, ssh, seeds, crate::laptop::hosts::HostsAgent::from_env(), secrets))
    }
}

impl Global {
    /// The aws provider itself, whatever the settings say (reap works on
    /// every owner's instances), with its API calls counted.
    pub async fn aws(&self, manifest: Option<&LoadedManifest>) -> Result<(AwsProvider, ApiCalls)> {
        self.aws_on(&self.sdk(manifest).await?)
    }

    /// [`Global::aws`] on an SDK configuration the verb also uses for
    /// other services.
    pub fn aws_on(&self, sdk: &aws_config::SdkConfig) -> Result<(AwsProvider, ApiCalls)> {
        let calls = ApiCalls::default();
        let config = sdk::ec2_config(sdk).interceptor(calls.clone()).build();
        let sqs = aws_sdk_sqs::config::Builder::from(sdk).interceptor(calls.clone()).build();
        Ok((AwsProvider::new(aws_sdk_ec2::Client::from_conf(config), aws_sdk_sqs::Client::from_conf(sqs), self.aws_settings()?.address), calls))
    }

    /// The SDK configuration of [`Global::aws`], for other services.
    pub async fn sdk(&self, manifest: Option<&LoadedManifest>) -> Result<aws_config::SdkConfig> {
        let aws = self.aws_settings()?;
        Ok(sdk::config(aws.profile.as_deref(), aws_region(&aws, manifest)).await)
    }
}

impl Global {
    /// The `[aws]` settings alone, with `--profile`/`--region`: verbs that
    /// act for the platform (reap, image publish) need no owner of their own.
    pub fn aws_settings(&self) -> Result<AwsSettings> {
        let mut aws = Settings::read_file(&Paths::from_env()?.settings_file())?.aws;
        self.override_aws(&mut aws);
        Ok(aws)
    }

    fn override_aws(&self, aws: &mut AwsSettings) {
        if let Some(p) = &self.profile {
            aws.profile = Some(p.clone());
        }
        if let Some(r) = &self.region {
            aws.region = Some(r.clone());
        }
    }
}

/// The settings' region, else the manifest's (else aws-config's chain).
pub fn aws_region(aws: &AwsSettings, manifest: Option<&LoadedManifest>) -> Option<String> {
    aws.region.clone().or_else(|| manifest.and_then(|m| m.manifest.machine.region.clone()))
}
