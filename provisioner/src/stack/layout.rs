//! Where workstation keeps its files on a box. One root directory:
//! `/var/lib/workstation` on an image-built box; local boxes share this
//! machine's filesystem, so each gets its own root (sshd hands it to
//! sessions as `WORKSTATION_BOX_ROOT`).

use sha2::Digest;

/// The root on an image-built box.
pub const DEFAULT_ROOT: &str = "/var/lib/workstation";

/// Who runs the data stores. On an image-built box, systemd through
/// nixpkgs' own modules (images/workstation.nix); on a local or
/// bring-your-own box, supervisord beside the services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreRunner {
    #[default]
    Supervisord,
    Systemd,
}

/// Where a program's secrets come from when it starts. On a box in AWS,
/// Systems Manager and Secrets Manager, read with the box's own role; on a
/// local box, the laptop (its file or command), which hands the values to
/// a holder in the box's memory over SSH (boxside/held.rs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretSource {
    #[default]
    Aws,
    Laptop,
}

impl SecretSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretSource::Aws => "aws",
            SecretSource::Laptop => "laptop",
        }
    }
}

/// Where an `sqs` store's queues are: Amazon SQS itself for a box in AWS,
/// or a server beside the services (a local box).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueHost {
    #[default]
    Aws,
    Beside,
}

/// The box's root, the `PATH` its programs run with, who runs its stores,
/// the `workstation` its launchers run, where secrets come from and where
/// queues are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
    /// `PATH` for every program; `None` keeps supervisord's own.
    pub path: Option<String>,
    pub stores: StoreRunner,
    /// The box's `workstation` (on `PATH` on an image-built box; local
    /// boxes run the laptop's own, as they share its filesystem).
    pub bin: String,
    pub secrets: SecretSource,
    pub queues: QueueHost,
}

#[derive(Debug, thiserror::Error)]
#[error("box root {0:?} must be an absolute path of letters, digits and / . _ - + (it is written unquoted into supervisord.conf)")]
pub struct BadRoot(String);

impl Layout {
    pub fn new(root: &str, path: Option<String>) -> Result<Self, BadRoot> {
        let safe = root.starts_with('/') && root.len() > 1 && root.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
        if !safe {
            return Err(BadRoot(root.into()));
        }
        Ok(Self {
            root: root.trim_end_matches('/').into(),
            path,
            stores: StoreRunner::Supervisord,
            bin: "workstation".into(),
            secrets: SecretSource::Aws,
            queues: QueueHost::Aws,
        })
    }

    pub fn with_bin(self, bin: &str) -> Self {
        Self { bin: bin.into(), ..self }
    }

    pub fn with_secrets(self, secrets: SecretSource) -> Self {
        Self { secrets, ..self }
    }

    pub fn with_stores(self, stores: StoreRunner) -> Self {
        Self { stores, ..self }
    }

    pub fn with_queues(self, queues: QueueHost) -> Self {
        Self { queues, ..self }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Rendered configurations, one directory per content hash.
    pub fn supervisor_dir(&self) -> String {
        format!("{}/supervisor", self.root)
    }

    /// Symlink to the active rendered configuration.
    pub fn current(&self) -> String {
        format!("{}/current", self.supervisor_dir())
    }

    pub fn conf(&self) -> String {
        format!("{}/supervisord.conf", self.current())
    }

    pub fn run_dir(&self) -> String {
        format!("{}/run", self.root)
    }

    /// supervisord's control socket. Unix socket paths are limited to 108
    /// bytes; a deep root (local boxes live under the user's state
    /// directory) uses a short path under /run named by the root's hash.
    pub fn socket(&self) -> String {
        self.short_socket("supervisor.sock")
    }

    /// The holder of secrets the laptop handed over (local boxes only).
    pub fn secrets_socket(&self) -> String {
        self.short_socket("secrets.sock")
    }

    /// The control socket of the HTTP proxy in front of services.
    pub fn front_socket(&self) -> String {
        self.short_socket("front.sock")
    }

    fn short_socket(&self, name: &str) -> String {
        let socket = format!("{}/{name}", self.run_dir());
        if socket.len() <= 100 {
            return socket;
        }
        let hash = hex::encode(&sha2::Sha256::digest(self.root.as_bytes())[..6]);
        format!("/run/workstation/{hash}/{name}")
    }

    /// Who logged in and who intercepted what (boxside/access.rs); kept
    /// across boots, unlike the run directory.
    pub fn access_log(&self) -> String {
        format!("{}/access.jsonl", self.root)
    }

    pub fn logs(&self) -> String {
        format!("{}/logs", self.root)
    }

    pub fn log(&self, program: &str) -> String {
        format!("{}/{program}.log", self.logs())
    }

    pub fn store_dir(&self, store: &str) -> String {
        format!("{}/stores/{store}", self.root)
    }

    /// Snapshots staged on the box and the markers of loaded ones.
    pub fn seeds(&self) -> String {
        format!("{}/seeds", self.root)
    }

    pub fn marker(&self, store: &str) -> String {
        format!("{}/{store}.loaded", self.seeds())
    }
}

/// Quotes for the box's POSIX shell.
pub fn sh(s: &str) -> String {
    // try_quote only fails on NUL, which TOML strings cannot contain.
    shlex::try_quote(s).map(|q| q.into_owned()).unwrap_or_else(|_| "''".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_that_could_break_the_config_are_refused() {
        for bad in ["", "relative", "/a b", "/a;b", "/a%b", "/a\nb", "/"] {
            assert!(Layout::new(bad, None).is_err(), "{bad:?}");
        }
        assert_eq!(Layout::new("/srv/ws/", None).unwrap().conf(), "/srv/ws/supervisor/current/supervisord.conf");
        let deep = Layout::new(&format!("/{}", "d/".repeat(60)), None).unwrap();
        assert!(deep.socket().starts_with("/run/workstation/") && deep.socket().len() < 60, "{}", deep.socket());
    }
}
