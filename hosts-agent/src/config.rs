//! The agent's root-owned configuration: who may call it and which names
//! they may point. A config that anyone but root could edit would let that
//! someone allow themselves, so such a file is refused.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::{self, Allowlist};
use workstation_hosts_protocol::DEFAULT_SOCKET;

pub const DEFAULT_CONFIG: &str = "/etc/workstation/hosts-agent.toml";
pub const DEFAULT_HOSTS: &str = "/etc/hosts";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/workstation-hosts";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Login names allowed to change the hosts file (root always may).
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Exact hostnames callers may point.
    #[serde(default)]
    pub allowed_names: Vec<String>,
    /// Suffixes (".dev.example.com") whose subdomains callers may point.
    #[serde(default)]
    pub allowed_suffixes: Vec<String>,
    #[serde(default = "default_hosts")]
    pub hosts_file: PathBuf,
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Desired state, kept across restarts for crash recovery.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// DNS servers for DNS targets (default: the system's resolv.conf).
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
}

fn default_hosts() -> PathBuf {
    DEFAULT_HOSTS.into()
}
fn default_socket() -> PathBuf {
    DEFAULT_SOCKET.into()
}
fn default_state_dir() -> PathBuf {
    DEFAULT_STATE_DIR.into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            allowed_users: Vec::new(),
            allowed_names: Vec::new(),
            allowed_suffixes: Vec::new(),
            hosts_file: default_hosts(),
            socket: default_socket(),
            state_dir: default_state_dir(),
            nameservers: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path} is owned by uid {uid}, not root: anyone who can edit it can allow themselves; run `sudo chown root: {path}`")]
    NotRootOwned { path: String, uid: u32 },
    #[error("{path} is writable by group or others (mode {mode:o}); run `sudo chmod 644 {path}`")]
    Writable { path: String, mode: u32 },
    #[error("{path}: {field}: {message}")]
    Invalid { path: String, field: String, message: String },
}

impl Config {
    /// Loads and checks the config; `owner` is the uid that must own it
    /// (root in production; the tests run as root too).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        if meta.uid() != 0 {
            return Err(ConfigError::NotRootOwned { path: shown, uid: meta.uid() });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(ConfigError::Writable { path: shown, mode: meta.mode() & 0o7777 });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        Config::parse(&text, &shown)
    }

    pub fn parse(text: &str, shown: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse { path: shown.to_owned(), message: e.to_string() })?;
        let invalid = |field: String, message: String| ConfigError::Invalid { path: shown.to_owned(), field, message };
        for (i, name) in config.allowed_names.iter().enumerate() {
            names::hostname(name).map_err(|e| invalid(format!("allowed_names[{i}]"), e.to_string()))?;
        }
        for (i, suffix) in config.allowed_suffixes.iter().enumerate() {
            let bare = suffix.strip_prefix('.').unwrap_or(suffix);
            names::hostname(bare).map_err(|e| invalid(format!("allowed_suffixes[{i}]"), e.to_string()))?;
            if !bare.contains('.') {
                return Err(invalid(
                    format!("allowed_suffixes[{i}]"),
                    format!("{suffix:?} would allow names under a whole top-level domain; use something like \".dev.example.com\""),
                ));
            }
        }
        for (i, user) in config.allowed_users.iter().enumerate() {
            if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                return Err(invalid(format!("allowed_users[{i}]"), format!("{user:?} is not a login name")));
            }
        }
        Ok(config)
    }

    pub fn allowlist(&self) -> Allowlist {
        Allowlist { names: self.allowed_names.clone(), suffixes: self.allowed_suffixes.clone() }
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let err = Config::parse("allowed_names = [\"ok.dev\", \"bad name\"]", "c.toml").unwrap_err().to_string();
        assert!(err.contains("allowed_names[1]") && err.contains("whitespace"), "{err}");
        let err = Config::parse("allowed_suffixes = [\".com\"]", "c.toml").unwrap_err().to_string();
        assert!(err.contains("allowed_suffixes[0]") && err.contains("top-level"), "{err}");
        let err = Config::parse("alowed_users = []", "c.toml").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        let ok = Config::parse("allowed_users = [\"alice\"]\nallowed_suffixes = [\".dev.example.com\"]", "c.toml").unwrap();
        assert_eq!(ok.hosts_file, PathBuf::from("/etc/hosts"));
    }

    #[test]
    fn a_config_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "allowed_users = []\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = Config::load(&path).unwrap_err();
        // Tests run as root (CI and the sandbox); elsewhere ownership fails first.
        assert!(matches!(err, ConfigError::Writable { .. } | ConfigError::NotRootOwned { .. }), "{err}");
    }
}
