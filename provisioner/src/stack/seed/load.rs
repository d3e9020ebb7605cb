//! Loading a store: wait until it answers, check its marker, load the
//! snapshot by the store's native path into staging, commit, mark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::manifest::{SeedFormat, Store, StoreKind};
use crate::poll::{self, Backoff};
use crate::ssh::remote::Held;
use crate::stack::layout::sh;
use crate::stack::shell::{BoxShell, ShellError};
use crate::stack::stores;

use super::csv::{file_name, CsvSnapshot};
use super::documents::{bulk_command, mongorestore_command};
use super::snapshot::{HashingReader, Identity, Location, StreamHash};
use super::{Phase, SeedError, SeedOutcome, SeedReport, Snapshot};

/// Redis database that receives a load before it is swapped with 0.
pub(super) const REDIS_STAGING_DB: u32 = 15;
/// A store just started by supervisord may take a while (postgres' first
/// start runs initdb).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Asking a starting store whether it answers: soon, then at most each second.
const READY_POLL: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
/// Between the laptop's reader and the SSH channel.
pub(super) const PIPE_BUFFER: usize = 256 * 1024;

/// Waits until the store answers; supervisord has just started it.
pub async fn wait_ready(onbox: &BoxShell, name: &str, store: &Store) -> Result<(), SeedError> {
    let check = stores::ready_command(name, store, &onbox.layout);
    let ready = poll::until(READY_TIMEOUT, READY_POLL, async || Ok::<_, ShellError>(onbox.check(&check).await?.then_some(()))).await?;
    ready.ok_or(SeedError::NotReady { store: name.into(), waited: READY_TIMEOUT, check })
}

/// Loads `snapshot` into the store unless its marker says it already holds
/// it. A marker naming another snapshot is an error unless `reset`.
pub async fn seed(onbox: &BoxShell, name: &str, store: &Store, snapshot: Option<&Snapshot>, reset: bool) -> Result<SeedReport, SeedError> {
    let report = |outcome, identity: Option<String>, bytes, seconds, phases| SeedReport {
        store: name.into(),
        outcome,
        snapshot: identity,
        bytes,
        seconds,
        phases,
        error: None,
    };
    let Some(snap) = snapshot else { return Ok(report(SeedOutcome::NoSeed, None, 0, 0.0, Vec::new())) };
    let layout = &onbox.layout;
    let marker = sh(&layout.marker(name));
    let loaded = onbox.run("reading the seed marker", &format!("cat {marker} 2>/dev/null || true")).await?;
    let loaded = loaded.trim();
    if !reset && !loaded.is_empty() {
        // The marker must be compared first: a changed local file is
        // hashed on its own here, not while streaming.
        let wanted = match snap.identity() {
            Some(id) => id.to_string(),
            None => snap.hash().await?,
        };
        if loaded == wanted {
            return Ok(report(SeedOutcome::AlreadyLoaded, Some(wanted), 0, 0.0, Vec::new()));
        }
        return Err(SeedError::Stale { store: name.into(), loaded: loaded.into(), wanted });
    }
    let started = Instant::now();
    let hash = matches!(snap.identity, Identity::Unhashed { .. }).then(StreamHash::default);
    let loader = Loader { onbox, name, store, snap, hash, phases: Default::default() };
    loader.timed("waiting for the store", wait_ready(onbox, name, store)).await?;
    loader.run("preparing the seeds directory", &format!("mkdir -p -m 0700 {}", sh(&layout.seeds()))).await?;

    match (store.kind, snap.format) {
        (StoreKind::Redis, SeedFormat::Resp | SeedFormat::Jsonl) => loader.redis_pipe().await?,
        (StoreKind::Redis, SeedFormat::Rdb) => loader.redis_rdb().await?,
        (StoreKind::Postgres, SeedFormat::PgDump) => loader.postgres_dump().await?,
        (StoreKind::Postgres, SeedFormat::Csv) => loader.postgres_csv().await?,
        (StoreKind::Mysql, SeedFormat::MysqlDump) => loader.mysql_dump().await?,
        (StoreKind::Mysql, SeedFormat::Csv) => loader.mysql_csv().await?,
        (StoreKind::Mongodb, SeedFormat::MongoArchive) => drop(loader.stream(&mongorestore_command(name, store, snap)).await?),
        (StoreKind::Opensearch, SeedFormat::Bulk) => drop(loader.stream(&bulk_command(store)).await?),
        (kind, format) => {
            return Err(SeedError::Rejected { store: name.into(), detail: format!("{} cannot load {} snapshots", kind.as_str(), format.as_str()) })
        }
    }
    let identity = loader.identity()?;
    loader.run("writing the seed marker", &format!("printf '%s\\n' {id} > {marker}.part && mv {marker}.part {marker}", id = sh(&identity))).await?;
    snap.remember(&identity);
    let phases = loader.phases.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(report(SeedOutcome::Loaded, Some(identity), snap.size, started.elapsed().as_secs_f64(), phases))
}

/// Seeds every store of `stores` (or only `only`) at once, each reported
/// on its own: one store's failure neither stops nor undoes the others.
/// Runs under the box's bring-up lock (`up` and `seed` share it).
pub async fn seed_all(
    onbox: &BoxShell,
    _locked: &Held,
    stores: &BTreeMap<String, Store>,
    only: Option<&str>,
    snapshots: &BTreeMap<String, Option<Snapshot>>,
    reset: bool,
) -> Vec<SeedReport> {
    let chosen = stores.iter().filter(|(name, _)| only.is_none_or(|o| o == name.as_str()));
    futures::future::join_all(chosen.map(|(name, store)| async move {
        let snapshot = snapshots.get(name).and_then(Option::as_ref);
        match seed(onbox, name, store, snapshot, reset).await {
            Ok(report) => report,
            Err(e) => SeedReport::failed(name, snapshot, &e),
        }
    }))
    .await
}

pub(super) struct Loader<'a> {
    pub(super) onbox: &'a BoxShell,
    pub(super) name: &'a str,
    pub(super) store: &'a Store,
    pub(super) snap: &'a Snapshot,
    /// Hashes the local snapshot as it is read, when its identity is not
    /// known yet.
    pub(super) hash: Option<StreamHash>,
    /// Each step on the box and how long it took, for the report.
    pub(super) phases: std::sync::Mutex<Vec<Phase>>,
}

impl Loader<'_> {
    pub(super) async fn timed<T>(&self, step: &str, work: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        let seconds = started.elapsed().as_secs_f64();
        self.phases.lock().unwrap_or_else(|p| p.into_inner()).push(Phase { step: step.into(), seconds });
        out
    }

    pub(super) async fn run(&self, what: &str, command: &str) -> Result<String, ShellError> {
        self.timed(what, self.onbox.run(what, command)).await
    }

    pub(super) async fn run_input(&self, what: &str, command: &str, input: impl tokio::io::AsyncRead + Unpin) -> Result<String, ShellError> {
        self.timed(what, self.onbox.run_input(what, command, input)).await
    }

    pub(super) async fn check(&self, command: &str) -> Result<bool, ShellError> {
        self.timed("checking", self.onbox.check(command)).await
    }

    pub(super) fn malformed(&self, detail: String) -> SeedError {
        SeedError::Malformed { store: self.name.into(), path: self.snap.describe(), format: self.snap.format.as_str(), detail }
    }

    /// Opens a local snapshot file (or a file of a snapshot directory) for
    /// loading, hashing it on the way when its identity is not known yet.
    pub(super) async fn open(&self, path: &Path) -> Result<HashingReader<tokio::fs::File>, SeedError> {
        let inner = tokio::fs::File::open(path).await.map_err(|source| SeedError::Read { path: path.into(), source })?;
        Ok(match &self.hash {
            Some(hash) => hash.reader(path, inner),
            None => HashingReader { inner, hash: None },
        })
    }

    /// The identity to record: known before, or hashed while loading, in
    /// which case every byte must have gone through (a snapshot that
    /// changed under the load is not recorded as loaded).
    pub(super) fn identity(&self) -> Result<String, SeedError> {
        let (Some(hash), Location::Local(snapshot)) = (&self.hash, &self.snap.location) else {
            return Ok(self.snap.identity().unwrap_or_default().to_string());
        };
        let (identity, read) = hash.finish(snapshot);
        if read != self.snap.size {
            return Err(SeedError::Rejected {
                store: self.name.into(),
                detail: format!("{} changed while it was loaded ({read} bytes read, {} expected); run the command again", self.snap.describe(), self.snap.size),
            });
        }
        Ok(identity)
    }

    /// Streams the snapshot into `command`: from the laptop over the SSH
    /// channel, or downloaded on the box.
    pub(super) async fn stream(&self, command: &str) -> Result<String, SeedError> {
        match &self.snap.location {
            Location::Local(path) => Ok(self.run_input("loading the snapshot", command, self.open(path).await?).await?),
            Location::S3 { url, .. } => Ok(self.download("loading the snapshot from S3", url, command).await?),
        }
    }

    /// Copies the snapshot whole to `dest` on the box and checks its size.
    pub(super) async fn stage(&self, dest: &str) -> Result<(), SeedError> {
        let part = sh(&format!("{dest}.part"));
        self.stream(&format!("cat > {part}")).await?;
        let got: u64 = self.run("checking the staged snapshot", &format!("stat -c %s {part}")).await?.trim().parse().unwrap_or(0);
        if got != self.snap.size {
            return Err(SeedError::Incomplete { store: self.name.into(), expected: self.snap.size, got });
        }
        self.run("staging the snapshot", &format!("mv {part} {}", sh(dest))).await?;
        Ok(())
    }

    /// A failed load step as a snapshot error naming `files` (what to
    /// fix; none: the schema).
    pub(super) fn named(&self, result: Result<String, ShellError>, files: &[PathBuf]) -> Result<String, SeedError> {
        match result {
            Err(ShellError::Failed { stderr, .. }) => {
                let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
                let names = if names.is_empty() { "schema.sql".to_string() } else { names.join(", ") };
                Err(self.malformed(format!("{names}: {}", stderr.trim())))
            }
            other => other.map_err(Into::into),
        }
    }

    /// A CSV snapshot's files, read from its directory on the laptop.
    pub(super) fn csv_snapshot(&self) -> Result<CsvSnapshot, SeedError> {
        let Location::Local(dir) = &self.snap.location else {
            return Err(self.malformed("CSV snapshots are directories on the laptop".into()));
        };
        CsvSnapshot::read(dir).map_err(|source| SeedError::Read { path: dir.clone(), source })?.map_err(|why| self.malformed(why))
    }

    pub(super) fn staged_path(&self) -> String {
        format!("{}/{}.incoming", self.onbox.layout.seeds(), self.name)
    }
}

impl Loader<'_> {
    /// On the box: downloads `url` into `command`, failing if either fails.
    /// The presigned URL is a credential: it reaches curl on stdin, never a
    /// command line that any process on the box can read.
    pub(super) async fn download(&self, what: &str, url: &str, command: &str) -> Result<String, ShellError> {
        self.run_input(what, &download_into(command), curl_config(url).as_bytes()).await
    }
}

/// curl reading its URL from a config on stdin (`-K -`), piped into
/// `command` (bash for pipefail).
pub(super) fn download_into(command: &str) -> String {
    let pipeline = format!("curl -fsS --retry 3 -K - | {command}");
    format!("bash -o pipefail -c {}", sh(&pipeline))
}

/// A curl config naming `url` (quoted as curl's config syntax wants).
pub(super) fn curl_config(url: &str) -> String {
    format!("url = \"{}\"\n", url.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn download_fails_with_either_side_of_the_pipe_and_keeps_the_url_off_the_command_line() {
        assert_eq!(download_into("redis-cli --pipe"), "bash -o pipefail -c 'curl -fsS --retry 3 -K - | redis-cli --pipe'");
        assert_eq!(curl_config("https://b.s3/k?X-Amz-Signature=a&b=c"), "url = \"https://b.s3/k?X-Amz-Signature=a&b=c\"\n");
        assert_eq!(curl_config(r#"a"b\c"#), "url = \"a\\\"b\\\\c\"\n");
    }
}
