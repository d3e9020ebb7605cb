//! Sessions of the `mariadb` client, fed statements on stdin, and the
//! router that hands a dump's statements to them: rows to whichever
//! session is free, session state to all, anything else to the first
//! once the others are done (see statements.rs for which is which).
//!
//! The client is the same one `mariadb < dump` runs (its parser, its
//! errors, `--sandbox` against a dump's `\!`). When a session has done
//! what it was given is learned by a marker: `SELECT 'marker';` after
//! it, and its line on stdout (`--unbuffered`: the client flushes each).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::client::{Client, LoadError};
use super::kinds::Kind;

/// The most of a client's stderr kept: its last error is at the end.
const STDERR_KEPT: usize = 64 * 1024;

/// One `mariadb` process, reading statements from its stdin. Its stdout
/// and stderr are read all along (a client blocked writing either would
/// stop reading its stdin): the markers' lines are passed on, the rest of
/// stdout (a dump's own SELECTs) dropped, the end of stderr kept.
struct Session {
    child: Child,
    stdin: ChildStdin,
    markers: mpsc::UnboundedReceiver<Vec<u8>>,
    /// The end of its stderr, once it has ended (taken by the first failure).
    stderr: Option<JoinHandle<String>>,
    synced: u64,
}

impl Session {
    fn spawn(client: &Client) -> Result<Session, LoadError> {
        let mut child = client
            .command()
            .args(["--batch", "--unbuffered", "--skip-column-names", "--sandbox", "--skip-print-query-on-error"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(LoadError::spawn)?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, markers) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut line = Vec::new();
            while stdout.read_until(b'\n', &mut line).await.is_ok_and(|n| n > 0) {
                if line.starts_with(MARKER) {
                    let _ = tx.send(line.trim_ascii_end().to_vec());
                }
                line.clear();
            }
        });
        let stderr = tokio::spawn(tail(child.stderr.take().expect("piped")));
        Ok(Session { child, stdin, markers, stderr: Some(stderr), synced: 0 })
    }

    async fn send(&mut self, statement: &[u8]) -> Result<(), LoadError> {
        let written = async {
            self.stdin.write_all(statement).await?;
            self.stdin.write_all(b";\n").await
        };
        match written.await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failure().await),
        }
    }

    /// Returns once the server has run all this session was sent.
    async fn sync(&mut self) -> Result<(), LoadError> {
        self.synced += 1;
        let marker = [MARKER, self.synced.to_string().as_bytes()].concat();
        // Binary, and its own LIMIT: what the dump set for results
        // (character_set_results, sql_select_limit) leaves it as it is.
        self.send(&[b"SELECT _binary'", &marker[..], b"' LIMIT 1"].concat()).await?;
        while let Some(line) = self.markers.recv().await {
            if line == marker {
                return Ok(());
            }
        }
        Err(self.failure().await)
    }

    /// Ends the session; its exit status says whether all went in.
    async fn finish(mut self) -> Result<(), LoadError> {
        drop(self.stdin);
        let status = self.child.wait().await.map_err(|e| LoadError::Client(format!("waiting for mariadb: {e}")))?;
        if status.success() {
            return Ok(());
        }
        Err(failure(&mut self.child, self.stderr.take()).await)
    }

    async fn failure(&mut self) -> LoadError {
        failure(&mut self.child, self.stderr.take()).await
    }
}

/// What a session's marker lines start with.
const MARKER: &[u8] = b"workstation-sync-";

/// The end of what `from` writes, at most STDERR_KEPT bytes of it.
async fn tail(mut from: impl AsyncRead + Unpin) -> String {
    let (mut kept, mut buf) = (Vec::new(), vec![0; 8192]);
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_KEPT {
            kept.drain(..kept.len() - STDERR_KEPT);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// What the client said when it stopped (it stops at the first error).
/// A client that stopped reading without exiting is ended first.
async fn failure(child: &mut Child, stderr: Option<JoinHandle<String>>) -> LoadError {
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.start_kill();
    }
    let status = child.wait().await.ok();
    let said = match stderr {
        Some(tail) => tail.await.unwrap_or_default(),
        None => String::new(),
    };
    match (client_error(&said), status) {
        (error, _) if !error.is_empty() => LoadError::Client(error),
        (_, Some(status)) => LoadError::Client(format!("mariadb stopped ({status}) without saying why")),
        (_, None) => LoadError::Client("mariadb stopped without saying why".into()),
    }
}

/// The client's error without its echo of the whole statement (a dump's
/// may be megabytes) and without its line number, which counts the
/// session's input, not the dump's.
pub(super) fn client_error(stderr: &str) -> String {
    let Some(at) = stderr.rfind("ERROR ") else { return stderr.trim().to_string() };
    let error = stderr[at..].trim();
    match (error.find(" at line "), error.find(": ")) {
        (Some(line), Some(colon)) if line < colon => format!("{}{}", &error[..line], &error[colon..]),
        _ => error.to_string(),
    }
}

enum Job {
    /// A statement; `rows`: say when it is written (the session is free).
    Run {
        statement: Vec<u8>,
        rows: bool,
    },
    Sync(oneshot::Sender<Result<(), LoadError>>),
}

/// A session's task: its jobs in order, then the session's end.
async fn work(id: usize, mut session: Session, mut jobs: mpsc::Receiver<Job>, free: mpsc::UnboundedSender<Result<usize, LoadError>>) -> Result<(), LoadError> {
    while let Some(job) = jobs.recv().await {
        let done = match job {
            Job::Run { statement, rows } => {
                let sent = session.send(&statement).await;
                if rows && sent.is_ok() {
                    let _ = free.send(Ok(id));
                }
                sent
            }
            Job::Sync(reply) => {
                let synced = session.sync().await;
                let _ = reply.send(synced.clone());
                synced
            }
        };
        if let Err(e) = done {
            let _ = free.send(Err(e.clone()));
            return Err(e);
        }
    }
    session.finish().await
}

/// Hands statements to the sessions (see the module's doc).
pub struct Router {
    jobs: Vec<mpsc::Sender<Job>>,
    tasks: tokio::task::JoinSet<Result<(), LoadError>>,
    free: mpsc::UnboundedReceiver<Result<usize, LoadError>>,
    idle: Vec<usize>,
    /// Rows sent since every session was last synced.
    rows_out: bool,
    /// In-order statements sent to the first session since its last sync.
    first_out: bool,
    /// Something only one session may see began (a transaction): one
    /// session, in order, from here on.
    one_session: bool,
    /// Statements that went to more than one session at once.
    pub spread: u64,
}

impl Router {
    pub fn start(client: &Client, sessions: usize) -> Result<Router, LoadError> {
        let (free_tx, free) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        let mut jobs = Vec::new();
        for id in 0..sessions {
            let (tx, rx) = mpsc::channel(4);
            tasks.spawn(work(id, Session::spawn(client)?, rx, free_tx.clone()));
            jobs.push(tx);
        }
        let idle = (0..sessions).rev().collect();
        Ok(Router { jobs, tasks, free, idle, rows_out: false, first_out: false, one_session: false, spread: 0 })
    }

    pub async fn route(&mut self, kind: Kind, statement: Vec<u8>) -> Result<(), LoadError> {
        match kind {
            Kind::Nothing => return Ok(()),
            Kind::Refused(why) => return Err(LoadError::Dump(why.into())),
            _ if self.one_session => return self.run(0, statement, false).await,
            _ => {}
        }
        match kind {
            Kind::Lock => Ok(()),
            Kind::OneSession => {
                self.sync_all().await?;
                self.one_session = true;
                self.run(0, statement, false).await
            }
            Kind::Rows => {
                if self.first_out {
                    self.sync(&[0]).await?;
                    self.first_out = false;
                }
                let id = match self.idle.pop() {
                    Some(id) => id,
                    None => self.next_free().await?,
                };
                self.rows_out = true;
                self.spread += 1;
                self.run(id, statement, true).await
            }
            Kind::Everywhere => {
                for id in 1..self.jobs.len() {
                    self.run(id, statement.clone(), false).await?;
                }
                self.run(0, statement, false).await
            }
            // InOrder (Nothing and Refused went above).
            _ => {
                if self.rows_out {
                    self.sync_all().await?;
                    self.rows_out = false;
                }
                self.first_out = true;
                self.run(0, statement, false).await
            }
        }
    }

    /// Waits for every session to run all it was given, and for each to
    /// end well.
    pub async fn finish(mut self) -> Result<(), LoadError> {
        // A session that ended early but well (the dump's `exit`) would
        // leave what was in its pipe unrun: every one must answer first.
        self.sync_all().await?;
        self.jobs.clear();
        let mut first = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let ended = joined.unwrap_or_else(|e| Err(LoadError::Client(format!("a session's task failed: {e}"))));
            if first.is_ok() {
                first = ended;
            }
        }
        first
    }

    async fn run(&mut self, id: usize, statement: Vec<u8>, rows: bool) -> Result<(), LoadError> {
        if self.jobs[id].send(Job::Run { statement, rows }).await.is_err() {
            return Err(self.failed().await);
        }
        Ok(())
    }

    async fn next_free(&mut self) -> Result<usize, LoadError> {
        match self.free.recv().await {
            Some(Ok(id)) => Ok(id),
            Some(Err(e)) => Err(e),
            None => Err(self.failed().await),
        }
    }

    /// Every session free, then each synced.
    async fn sync_all(&mut self) -> Result<(), LoadError> {
        while self.idle.len() < self.jobs.len() {
            let id = self.next_free().await?;
            self.idle.push(id);
        }
        let all: Vec<usize> = (0..self.jobs.len()).collect();
        self.sync(&all).await
    }

    async fn sync(&mut self, ids: &[usize]) -> Result<(), LoadError> {
        let mut replies = Vec::new();
        for &id in ids {
            let (tx, rx) = oneshot::channel();
            if self.jobs[id].send(Job::Sync(tx)).await.is_err() {
                return Err(self.failed().await);
            }
            replies.push(rx);
        }
        for reply in replies {
            match reply.await {
                Ok(synced) => synced?,
                Err(_) => return Err(self.failed().await),
            }
        }
        Ok(())
    }

    /// A session's task ended early: its error, as it reported it.
    async fn failed(&mut self) -> LoadError {
        while let Some(reported) = self.free.recv().await {
            if let Err(e) = reported {
                return e;
            }
        }
        LoadError::Client("a session ended without saying why".into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_error_is_its_last_error_line_without_the_statement() {
        let stderr = "--------------\nINSERT INTO t VALUES (1),(1)\n--------------\n\nERROR 1062 (23000) at line 18: Duplicate entry '1' for key 'PRIMARY'\n";
        assert_eq!(super::client_error(stderr), "ERROR 1062 (23000): Duplicate entry '1' for key 'PRIMARY'");
        assert_eq!(super::client_error("ERROR 2002 (HY000): Can't connect\n"), "ERROR 2002 (HY000): Can't connect");
        assert_eq!(super::client_error(" other\n"), "other");
    }
}
