//! A dump read from stdin: cut into statements (statements.rs), each
//! sorted (kinds.rs) and handed to the sessions (sessions.rs).

use tokio::io::{AsyncRead, AsyncReadExt};

use super::client::{Client, LoadError, Loaded};
use super::kinds::{Dialect, Kind};
use super::sessions::Router;
use super::statements::Splitter;

/// Loads a dump read from `input`.
pub async fn load(client: &Client, sessions: usize, mut input: impl AsyncRead + Unpin) -> Result<Loaded, LoadError> {
    let mut router = Router::start(client, sessions)?;
    let mut splitter = Splitter::default();
    let mut dialect = Dialect::default();
    let mut buf = vec![0; 256 * 1024];
    let mut loaded = Loaded { sessions, unit: "statements", ..Loaded::default() };
    loop {
        let n = input.read(&mut buf).await.map_err(|e| LoadError::Read(e.to_string()))?;
        splitter.feed(&buf[..n]);
        while let Some(statement) = splitter.next(n == 0).map_err(|e| LoadError::Dump(e.to_string()))? {
            let kind = dialect.kind(&statement);
            loaded.statements += u64::from(kind != Kind::Nothing);
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
