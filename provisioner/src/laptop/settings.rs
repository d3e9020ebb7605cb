//! Per-user settings: `~/.config/workstation/config.toml`, overridden by
//! `WORKSTATION_*` environment variables, overridden by flags.
//!
//! Loaded once in the CLI and passed down; library code never reads the
//! environment for these.

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::laptop::paths::Paths;
use crate::manifest::name::{NameError, Owner};
use crate::provider::{AddressKind, LocalNetwork, ProviderKind};
use crate::ssh::ssm::Connect;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("settings {path} are not valid:\n{message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field} (from {origin}): {source}")]
    Name {
        field: &'static str,
        origin: String,
        #[source]
        source: NameError,
    },
    #[error("no owner set: add owner = \"yourname\" to {path} or set WORKSTATION_OWNER")]
    NoOwner { path: PathBuf },
    #[error("local.{field} = {value}: {message}")]
    Local { field: &'static str, value: String, message: String },
    #[error("WORKSTATION_CONNECT: {message}")]
    Connect { message: String },
    #[error("{var}={value:?} is not a provider; use \"aws\" or \"local\"")]
    Provider { var: &'static str, value: String },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub owner: Option<String>,
    pub provider: Option<ProviderKind>,
    /// Private key used to log in; its `.pub` is imported as the EC2 key pair.
    pub ssh_key: Option<String>,
    /// Login user on the box; defaults to the owner (aws) or the current
    /// user (local boxes share this machine's accounts).
    pub ssh_user: Option<String>,
    /// Your dotfiles: a git URL (cloned on this laptop) or a directory;
    /// installed on the boxes you create (docs/engineer.md).
    pub dotfiles: Option<String>,
    /// How to reach boxes: "direct" (TCP: VPN, Transit Gateway) or "ssm"
    /// (Session Manager, when the platform's terraform says connect = "ssm").
    pub connect: Option<Connect>,
    #[serde(default)]
    pub aws: AwsSettings,
    #[serde(default)]
    pub local: LocalFile,
    #[serde(default)]
    pub secrets: SecretsFile,
}

/// `[secrets]`: where local boxes' secrets come from (docs/engineer.md).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsFile {
    /// Values by reference, mode 0600 (default
    /// `~/.config/workstation/secrets.toml`).
    pub file: Option<String>,
    /// Run with `sh -c` for a reference the file lacks, with the reference
    /// in `WORKSTATION_SECRET`; prints the value (`pass show ...`).
    pub command: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    pub profile: Option<String>,
    pub region: Option<String>,
    #[serde(default)]
    pub address: AddressKind,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFile {
    pub bridge: Option<String>,
    pub network: Option<Ipv4Net>,
    pub subnet: Option<Ipv4Net>,
    /// How often each local box runs its idle check (default 1m, as the
    /// image's timer).
    #[serde(default, with = "humantime_serde")]
    pub idle_check_every: Option<std::time::Duration>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub owner: Owner,
    pub provider: ProviderKind,
    pub ssh_key: PathBuf,
    pub ssh_user: Option<String>,
    /// `dotfiles`, `~/` expanded (`WORKSTATION_DOTFILES` overrides).
    pub dotfiles: Option<String>,
    /// `connect` (`WORKSTATION_CONNECT` overrides).
    pub connect: Connect,
    pub aws: AwsSettings,
    pub local: LocalNetwork,
    pub local_idle_check_every: std::time::Duration,
    pub secrets: super::secrets::LaptopSecrets,
}

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

impl Settings {
    /// Reads the settings file (missing is fine: everything has a default)
    /// and applies `WORKSTATION_*` overrides from `env`.
    pub fn load(paths: &Paths, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let path = paths.settings_file();
        let file = Self::read_file(&path)?;

        let (owner, origin) = match (env("WORKSTATION_OWNER"), &file.owner, env("USER")) {
            (Some(o), _, _) => (o, "WORKSTATION_OWNER".to_string()),
            (None, Some(o), _) => (o.clone(), path.display().to_string()),
            (None, None, Some(u)) => (u, "$USER".to_string()),
            (None, None, None) => return Err(SettingsError::NoOwner { path }),
        };
        let owner = owner.parse().map_err(|source| SettingsError::Name { field: "owner", origin, source })?;

        let provider = provider(&file, env)?;

        let ssh_key = env("WORKSTATION_SSH_KEY").or(file.ssh_key).map(|k| paths.expand(&k)).unwrap_or_else(|| paths.home.join(".ssh/id_ed25519"));

        let defaults = LocalNetwork::default();
        let network = file.local.network.unwrap_or(defaults.network).trunc();
        let local = LocalNetwork {
            bridge: file.local.bridge.unwrap_or(defaults.bridge),
            subnet: file.local.subnet.unwrap_or(if file.local.network.is_some() { network } else { defaults.subnet }).trunc(),
            network,
        };
        check_local(&local)?;
        let local_idle_check_every = file.local.idle_check_every.unwrap_or(std::time::Duration::from_secs(60));
        if local_idle_check_every < std::time::Duration::from_secs(1) {
            return Err(SettingsError::Local {
                field: "idle_check_every",
                value: humantime::format_duration(local_idle_check_every).to_string(),
                message: "must be at least 1s, e.g. \"1m\"".into(),
            });
        }

        let dotfiles = env("WORKSTATION_DOTFILES").or(file.dotfiles).filter(|d| !d.trim().is_empty()).map(|d| match d.starts_with("~/") {
            true => paths.expand(&d).display().to_string(),
            false => d,
        });
        let connect = match env("WORKSTATION_CONNECT") {
            Some(v) => v.parse().map_err(|message| SettingsError::Connect { message })?,
            None => file.connect.unwrap_or_default(),
        };
        let secrets = super::secrets::LaptopSecrets {
            file: file.secrets.file.as_deref().map(|f| paths.expand(f)).unwrap_or_else(|| paths.config_dir.join("secrets.toml")),
            command: file.secrets.command.filter(|c| !c.trim().is_empty()),
        };
        Ok(Settings { path, owner, provider, ssh_key, ssh_user: file.ssh_user, dotfiles, connect, aws: file.aws, local, local_idle_check_every, secrets })
    }

    /// The provider alone (`WORKSTATION_PROVIDER`, else the file's, else
    /// aws), for verbs that need no owner (reap).
    pub fn provider(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<ProviderKind, SettingsError> {
        provider(&Self::read_file(path)?, env)
    }

    pub fn read_file(path: &Path) -> Result<File, SettingsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| SettingsError::Parse { path: path.to_owned(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(source) => Err(SettingsError::Read { path: path.to_owned(), source }),
        }
    }
}

fn provider(file: &File, env: &dyn Fn(&str) -> Option<String>) -> Result<ProviderKind, SettingsError> {
    match env("WORKSTATION_PROVIDER") {
        Some(v) => match v.as_str() {
            "aws" => Ok(ProviderKind::Aws),
            "local" => Ok(ProviderKind::Local),
            _ => Err(SettingsError::Provider { var: "WORKSTATION_PROVIDER", value: v }),
        },
        None => Ok(file.provider.unwrap_or(ProviderKind::Aws)),
    }
}

/// Sets what `workstation init` decides (owner, provider, AWS profile and
/// region) in the settings file, keeping every other key. The owner is
/// checked first. Returns whether the file changed: an unchanged file is
/// not rewritten.
pub fn write_init(path: &Path, owner: &str, provider: ProviderKind, profile: Option<&str>, region: Option<&str>) -> Result<bool, SettingsError> {
    owner.parse::<Owner>().map_err(|source| SettingsError::Name { field: "owner", origin: "init".into(), source })?;
    let mut file = Settings::read_file(path)?;
    let before = toml::to_string(&file).expect("settings serialize");
    file.owner = Some(owner.into());
    file.provider = Some(provider);
    if profile.is_some() {
        file.aws.profile = profile.map(String::from);
    }
    if region.is_some() {
        file.aws.region = region.map(String::from);
    }
    let after = toml::to_string(&file).expect("settings serialize");
    if after == before && path.exists() {
        return Ok(false);
    }
    let text = format!("# workstation settings (written by `workstation init`; edit freely)\n{after}");
    workstation_hosts_protocol::atomic::write(path, text.as_bytes(), 0o644).map_err(|source| SettingsError::Read { path: path.to_owned(), source })?;
    Ok(true)
}

fn check_local(l: &LocalNetwork) -> Result<(), SettingsError> {
    if l.bridge.is_empty() || l.bridge.len() > IFNAME_MAX || !l.bridge.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(SettingsError::Local {
            field: "bridge",
            value: l.bridge.clone(),
            message: format!("use 1-{IFNAME_MAX} characters from a-z, 0-9, '-' and '_'"),
        });
    }
    if l.network.prefix_len() > 30 {
        return Err(SettingsError::Local { field: "network", value: l.network.to_string(), message: "is too small; use a /30 or larger".into() });
    }
    if !l.network.contains(&l.subnet) {
        return Err(SettingsError::Local { field: "subnet", value: l.subnet.to_string(), message: format!("must lie inside local.network ({})", l.network) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths { home: dir.into(), config_dir: dir.join("cfg"), state_dir: dir.join("state"), cache_dir: dir.join("cache") }
    }

    #[test]
    fn defaults_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load(&paths(dir.path()), &|k| (k == "USER").then(|| "alice".into())).unwrap();
        assert_eq!(s.owner.as_str(), "alice");
        assert_eq!(s.provider, ProviderKind::Aws);
        assert_eq!(s.ssh_key, dir.path().join(".ssh/id_ed25519"));
        assert_eq!(s.local, LocalNetwork::default());
    }

    #[test]
    fn env_beats_file_and_bad_owner_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::create_dir_all(&p.config_dir).unwrap();
        std::fs::write(p.settings_file(), "owner = \"bob\"\nprovider = \"local\"\n[local]\nnetwork = \"10.9.0.0/16\"\n").unwrap();
        let s = Settings::load(&p, &|_| None).unwrap();
        assert_eq!((s.owner.as_str(), s.provider), ("bob", ProviderKind::Local));
        assert_eq!(s.local.subnet, "10.9.0.0/16".parse().unwrap());
        let err = Settings::load(&p, &|k| (k == "WORKSTATION_OWNER").then(|| "Bob Smith".into())).unwrap_err();
        assert!(err.to_string().starts_with("owner (from WORKSTATION_OWNER): invalid owner"), "{err}");
    }

    #[test]
    fn unknown_setting_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::create_dir_all(&p.config_dir).unwrap();
        std::fs::write(p.settings_file(), "ownr = \"bob\"\n").unwrap();
        let err = Settings::load(&p, &|_| None).unwrap_err().to_string();
        assert!(err.contains("ownr"), "{err}");
    }
}
