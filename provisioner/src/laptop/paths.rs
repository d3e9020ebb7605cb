//! Where workstation keeps files on the laptop (XDG layout on every OS, so
//! the docs can name one path).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[error("HOME is not set; workstation keeps its settings under $HOME/.config/workstation")]
pub struct NoHome;

#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
    /// `~/.config/workstation`: settings the user edits.
    pub config_dir: PathBuf,
    /// `~/.local/state/workstation`: pinned host keys, generated SSH config,
    /// local-provider boxes.
    pub state_dir: PathBuf,
    /// `~/.cache/workstation`: what can be fetched again (prices).
    pub cache_dir: PathBuf,
}

impl Paths {
    pub fn from_env() -> Result<Self, NoHome> {
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).ok_or(NoHome)?;
        let xdg = |var: &str, default: &str| {
            std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or_else(|| home.join(default)).join("workstation")
        };
        Ok(Self {
            config_dir: xdg("XDG_CONFIG_HOME", ".config"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state"),
            cache_dir: xdg("XDG_CACHE_HOME", ".cache"),
            home,
        })
    }

    pub fn settings_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.state_dir.join("known_hosts")
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.state_dir.join("ssh_config")
    }

    pub fn local_boxes(&self) -> PathBuf {
        self.state_dir.join("local")
    }

    /// Expands a leading `~/` the way a shell would, for paths in settings.
    pub fn expand(&self, p: &str) -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None => PathBuf::from(p),
        }
    }
}

/// Whether `tool` is an executable file on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}
