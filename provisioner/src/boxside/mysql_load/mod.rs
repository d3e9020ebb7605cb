//! `workstation box mysql-load`: a mysql store's seed, read on stdin (from
//! the laptop's SSH channel or curl) and loaded on several sessions at
//! once: a dump's rows (statements.rs, sessions.rs) or a CSV file's
//! records (csv.rs). One session, as `mariadb < dump` uses, leaves the
//! server's other cores idle while it parses and inserts.

mod csv;
mod sessions;
mod statements;

use tokio::io::{AsyncRead, AsyncReadExt};

pub use csv::load as csv;

/// How the sessions reach the server: the staging database, as the
/// account allowed only that (stack/seed/mysql.rs).
#[derive(Debug, Clone)]
pub struct Client {
    pub port: u16,
    pub user: String,
    pub database: String,
}

impl Client {
    fn command(&self) -> tokio::process::Command {
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
    fn spawn(e: std::io::Error) -> LoadError {
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

/// Loads a dump read from `input`.
pub async fn dump(client: &Client, sessions: usize, mut input: impl AsyncRead + Unpin) -> Result<Loaded, LoadError> {
    let mut router = sessions::Router::start(client, sessions)?;
    let mut splitter = statements::Splitter::default();
    let mut dialect = statements::Dialect::default();
    let mut buf = vec![0; 256 * 1024];
    let mut loaded = Loaded { sessions, unit: "statements", ..Loaded::default() };
    loop {
        let n = input.read(&mut buf).await.map_err(|e| LoadError::Read(e.to_string()))?;
        splitter.feed(&buf[..n]);
        while let Some(statement) = splitter.next(n == 0).map_err(|e| LoadError::Dump(e.to_string()))? {
            let kind = dialect.kind(&statement);
            loaded.statements += u64::from(kind != statements::Kind::Nothing);
            router.route(kind, statement).await?;
        }
        if n == 0 {
            break;
        }
    }
    loaded.spread = router.spread;
    router.finish().await?;
    Ok(loaded)
}
