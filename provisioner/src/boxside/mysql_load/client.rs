//! How a load reaches the server (the `mariadb` client's command line),
//! what it reports, and how it fails.

/// How the sessions reach the server: the staging database, as the
/// account allowed only that (stack/seed/mysql.rs).
#[derive(Debug, Clone)]
pub struct Client {
    pub port: u16,
    pub user: String,
    pub database: String,
}

impl Client {
    pub(super) fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("mariadb");
        command.args(["--no-defaults", "-h", "127.0.0.1", "-P", &self.port.to_string(), "-u", &self.user]);
        command.arg(format!("--database={}", self.database)).arg("--max-allowed-packet=1G");
        command
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("cannot start mariadb: {0}")]
    Spawn(String),
    #[error("{0}")]
    Client(String),
    #[error("{0}")]
    Dump(String),
    #[error("reading the seed: {0}")]
    Read(String),
}

impl LoadError {
    pub(super) fn spawn(e: std::io::Error) -> LoadError {
        LoadError::Spawn(e.to_string())
    }
}

/// What a load did, for its one line of output.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Statements of a dump, pieces of a CSV file.
    pub statements: u64,
    /// Those that ran beside others.
    pub spread: u64,
    pub sessions: usize,
    pub unit: &'static str,
}
