//! Seeding data stores from snapshots with each store's native fast path,
//! streaming: a snapshot is never held in memory, on the laptop or the box.
//!
//! Every load is staged and then committed in a separate step that the
//! laptop only issues once the whole snapshot was delivered and loaded, so
//! a dropped connection, a truncated file or a malformed snapshot leaves the
//! store as it was and writes no marker:
//! - redis: load into database 15, then `SWAPDB 0 15` (atomic);
//! - postgres: load into `<db>__ws_load`, then swap names;
//! - redis RDB and postgres dumps are first copied whole to the box and
//!   checked (`redis-check-rdb`, `pg_restore --list`).
//!
//! MongoDB (`mongorestore --drop`) and OpenSearch (`_bulk`) have no cheap
//! swap: they load in place. The marker (`<root>/seeds/<store>.loaded`)
//! records the snapshot's identity (sha256 of a local snapshot, the ETag of
//! an S3 object) after success; `--reset` loads again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::config::{SeedFormat, SeedSource, Store, StoreKind};
use crate::layout::sh;
use crate::onbox::{OnBox, OnBoxError};
use crate::stores;

/// Redis database that receives a load before it is swapped with 0.
const REDIS_STAGING_DB: u32 = 15;
/// A store just started by supervisord may take a while (postgres' first
/// start runs initdb).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Presigned S3 URLs only need to outlive one download.
const PRESIGN_FOR: Duration = Duration::from_secs(60 * 60);
/// Between the laptop's reader and the SSH channel.
const PIPE_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read snapshot {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {path} for store {store} is not valid {format}: {detail}; the store was left as it was")]
    Malformed { store: String, path: String, format: &'static str, detail: String },
    #[error(
        "store {store} holds snapshot {loaded}, but the manifest names {wanted}; \
         run `workstation seed {store} --reset` to replace its data with the new snapshot"
    )]
    Stale { store: String, loaded: String, wanted: String },
    #[error("store {store} did not answer within {waited:?} (checked with `{check}`); see `workstation logs {store}`")]
    NotReady { store: String, waited: Duration, check: String },
    #[error("store {store}: the box received {got} of {expected} bytes of the snapshot; run the command again")]
    Incomplete { store: String, expected: u64, got: u64 },
    #[error("store {store}: {detail}; the store was left as it was")]
    Rejected { store: String, detail: String },
    #[error("store {store} is seeded from S3 ({uri}): {detail}")]
    S3 { store: String, uri: String, detail: String },
    #[error(transparent)]
    OnBox(#[from] OnBoxError),
}

/// A snapshot, resolved on the laptop: where it is, what it is, and the
/// identity the marker records.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub format: SeedFormat,
    pub identity: String,
    pub size: u64,
    location: Location,
}

#[derive(Debug, Clone)]
enum Location {
    Local(PathBuf),
    /// A presigned GET URL the box downloads from, and the object URI.
    S3 { url: String, uri: String },
}

impl Snapshot {
    /// `None` when the store has no seed. Local paths are relative to the
    /// manifest's directory.
    pub async fn resolve(
        name: &str,
        store: &Store,
        manifest_dir: &Path,
        s3: Option<&aws_sdk_s3::Client>,
    ) -> Result<Option<Snapshot>, SeedError> {
        let (Some(seed), Ok(Some(format))) = (&store.seed, store.seed_format()) else { return Ok(None) };
        match SeedSource::from_str(seed) {
            Ok(SeedSource::File(path)) => {
                let path = manifest_dir.join(path);
                let p = path.clone();
                let (identity, size) = tokio::task::spawn_blocking(move || fingerprint(&p))
                    .await
                    .expect("hashing does not panic")
                    .map_err(|source| SeedError::Read { path: path.clone(), source })?;
                Ok(Some(Snapshot { format, identity, size, location: Location::Local(path) }))
            }
            Ok(SeedSource::S3 { bucket, key }) => {
                let s3_err = |detail: String| SeedError::S3 { store: name.into(), uri: seed.clone(), detail };
                let client = s3.ok_or_else(|| s3_err("no AWS configuration to reach S3 with".into()))?;
                let head = client
                    .head_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| s3_err(format!("cannot read the object: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
                let etag = head.e_tag().unwrap_or_default().trim_matches('"').to_string();
                let size = head.content_length().unwrap_or_default().max(0) as u64;
                let config = PresigningConfig::expires_in(PRESIGN_FOR).map_err(|e| s3_err(e.to_string()))?;
                let presigned = client
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .presigned(config)
                    .await
                    .map_err(|e| s3_err(format!("cannot presign a download: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
                Ok(Some(Snapshot {
                    format,
                    identity: format!("s3:{bucket}/{key}@{etag}"),
                    size,
                    location: Location::S3 { url: presigned.uri().to_string(), uri: seed.clone() },
                }))
            }
            Err(_) => Ok(None), // validation reports it
        }
    }

    fn describe(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { uri, .. } => uri.clone(),
        }
    }
}

/// sha256 of a file, or of a directory's snapshot files (name and content,
/// in name order), and the total size.
fn fingerprint(path: &Path) -> std::io::Result<(String, u64)> {
    fn hash_file(path: &Path, h: &mut Sha256) -> std::io::Result<u64> {
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0; 1 << 20];
        let mut total = 0;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            h.update(&buf[..n]);
            total += n as u64;
        }
    }
    let mut h = Sha256::new();
    let size = if path.is_dir() {
        let mut total = 0;
        for file in csv_files(path)? {
            h.update(file.file_name().unwrap_or_default().as_encoded_bytes());
            h.update([0]);
            total += hash_file(&file, &mut h)?;
        }
        total
    } else {
        hash_file(path, &mut h)?
    };
    Ok((format!("sha256:{}", hex::encode(h.finalize())), size))
}

/// A CSV snapshot's files in load order: `schema.sql` first, then the CSV
/// files by name (prefix them `01-`, `02-` to load referenced tables first).
fn csv_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut csv: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    csv.sort();
    let schema = dir.join("schema.sql");
    Ok(schema.is_file().then_some(schema).into_iter().chain(csv).collect())
}

/// The table a CSV file loads into: its name without `NN-` and `.csv`.
fn csv_table(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    let table = match stem.split_once('-') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => stem,
    };
    let ok = table.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| table.to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub store: String,
    pub outcome: SeedOutcome,
    pub snapshot: Option<String>,
    pub bytes: u64,
    pub seconds: f64,
    /// Why it failed (`outcome` = failed).
    pub error: Option<String>,
}

impl SeedReport {
    pub fn failed(store: &str, snapshot: Option<&Snapshot>, error: &SeedError) -> Self {
        SeedReport {
            store: store.into(),
            outcome: SeedOutcome::Failed,
            snapshot: snapshot.map(|s| s.identity.clone()),
            bytes: 0,
            seconds: 0.0,
            error: Some(error.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedOutcome {
    Loaded,
    AlreadyLoaded,
    NoSeed,
    Failed,
}

impl SeedOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SeedOutcome::Loaded => "loaded",
            SeedOutcome::AlreadyLoaded => "already loaded",
            SeedOutcome::NoSeed => "no seed",
            SeedOutcome::Failed => "failed",
        }
    }
}

/// Waits until the store answers; supervisord has just started it.
pub async fn wait_ready(onbox: &OnBox<'_>, name: &str, store: &Store) -> Result<(), SeedError> {
    let check = stores::ready_command(store);
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    while !onbox.check(&check).await? {
        if started.elapsed() > READY_TIMEOUT {
            return Err(SeedError::NotReady { store: name.into(), waited: READY_TIMEOUT, check });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    Ok(())
}

/// Loads `snapshot` into the store unless its marker says it already holds
/// it. A marker naming another snapshot is an error unless `reset`.
pub async fn seed(onbox: &OnBox<'_>, name: &str, store: &Store, snapshot: Option<&Snapshot>, reset: bool) -> Result<SeedReport, SeedError> {
    let report = |outcome, bytes, seconds| SeedReport {
        store: name.into(),
        outcome,
        snapshot: snapshot.map(|s| s.identity.clone()),
        bytes,
        seconds,
        error: None,
    };
    let Some(snap) = snapshot else { return Ok(report(SeedOutcome::NoSeed, 0, 0.0)) };
    let layout = &onbox.layout;
    let marker = sh(&layout.marker(name));
    let loaded = onbox.run("reading the seed marker", &format!("cat {marker} 2>/dev/null || true")).await?;
    let loaded = loaded.trim();
    if !reset && loaded == snap.identity {
        return Ok(report(SeedOutcome::AlreadyLoaded, 0, 0.0));
    }
    if !reset && !loaded.is_empty() {
        return Err(SeedError::Stale { store: name.into(), loaded: loaded.into(), wanted: snap.identity.clone() });
    }
    wait_ready(onbox, name, store).await?;
    onbox.run("preparing the seeds directory", &format!("mkdir -p -m 0700 {}", sh(&layout.seeds()))).await?;

    let started = Instant::now();
    let loader = Loader { onbox, name, store, snap };
    match (store.kind, snap.format) {
        (StoreKind::Redis, SeedFormat::Resp | SeedFormat::Jsonl) => loader.redis_pipe().await?,
        (StoreKind::Redis, SeedFormat::Rdb) => loader.redis_rdb().await?,
        (StoreKind::Postgres, SeedFormat::PgDump) => loader.postgres_dump().await?,
        (StoreKind::Postgres, SeedFormat::Csv) => loader.postgres_csv().await?,
        (StoreKind::Mongodb, SeedFormat::MongoArchive) => drop(loader.stream(&mongorestore_command(name, store, snap)).await?),
        (StoreKind::Opensearch, SeedFormat::Bulk) => drop(loader.stream(&bulk_command(store)).await?),
        (kind, format) => {
            return Err(SeedError::Rejected {
                store: name.into(),
                detail: format!("{} cannot load {} snapshots", kind.as_str(), format.as_str()),
            })
        }
    }
    onbox
        .run("writing the seed marker", &format!("printf '%s\\n' {id} > {marker}.part && mv {marker}.part {marker}", id = sh(&snap.identity)))
        .await?;
    Ok(report(SeedOutcome::Loaded, snap.size, started.elapsed().as_secs_f64()))
}

struct Loader<'a> {
    onbox: &'a OnBox<'a>,
    name: &'a str,
    store: &'a Store,
    snap: &'a Snapshot,
}

impl Loader<'_> {
    fn malformed(&self, detail: String) -> SeedError {
        SeedError::Malformed { store: self.name.into(), path: self.snap.describe(), format: self.snap.format.as_str(), detail }
    }

    async fn open(&self, path: &Path) -> Result<tokio::fs::File, SeedError> {
        tokio::fs::File::open(path).await.map_err(|source| SeedError::Read { path: path.into(), source })
    }

    /// Streams the snapshot into `command`: from the laptop over the SSH
    /// channel, or downloaded on the box.
    async fn stream(&self, command: &str) -> Result<String, SeedError> {
        match &self.snap.location {
            Location::Local(path) => Ok(self.onbox.run_input("loading the snapshot", command, self.open(path).await?).await?),
            Location::S3 { url, .. } => Ok(self.onbox.run("loading the snapshot from S3", &download_into(url, command)).await?),
        }
    }

    /// Copies the snapshot whole to `dest` on the box and checks its size.
    async fn stage(&self, dest: &str) -> Result<(), SeedError> {
        let part = sh(&format!("{dest}.part"));
        self.stream(&format!("cat > {part}")).await?;
        let got: u64 = self.onbox.run("checking the staged snapshot", &format!("stat -c %s {part}")).await?.trim().parse().unwrap_or(0);
        if got != self.snap.size {
            return Err(SeedError::Incomplete { store: self.name.into(), expected: self.snap.size, got });
        }
        self.onbox.run("staging the snapshot", &format!("mv {part} {}", sh(dest))).await?;
        Ok(())
    }

    fn staged_path(&self) -> String {
        format!("{}/{}.incoming", self.onbox.layout.seeds(), self.name)
    }

    /// RESP (checked while streaming) or JSON lines (converted to RESP while
    /// streaming) into `redis-cli --pipe`, aimed at the staging database.
    async fn redis_pipe(&self) -> Result<(), SeedError> {
        let cli = format!("redis-cli -h 127.0.0.1 -p {}", self.store.port());
        self.onbox.run("clearing the staging database", &format!("{cli} -n {REDIS_STAGING_DB} FLUSHDB >/dev/null")).await?;
        let select = resp_command(&[b"SELECT", REDIS_STAGING_DB.to_string().as_bytes()]);
        let pipe = format!("{cli} --pipe");
        let (out, sent) = match &self.snap.location {
            Location::Local(path) => {
                let file = self.open(path).await?;
                let (reader, writer) = tokio::io::duplex(PIPE_BUFFER);
                let json = self.snap.format == SeedFormat::Jsonl;
                let producer = tokio::spawn(async move {
                    let mut writer = writer;
                    writer.write_all(&select).await.map_err(|e| e.to_string())?;
                    let n = if json { jsonl_to_resp(file, &mut writer).await? } else { check_resp(file, &mut writer).await? };
                    writer.shutdown().await.map_err(|e| e.to_string())?;
                    Ok::<u64, String>(n)
                });
                let out = self.onbox.run_input("loading the snapshot (redis-cli --pipe)", &pipe, reader).await;
                // A snapshot problem explains redis' complaints about the
                // partial command it was sent: report it first.
                let sent = producer.await.expect("producer does not panic").map_err(|d| self.malformed(d))?;
                (out?, Some(sent))
            }
            Location::S3 { url, .. } => {
                let command = format!("{{ printf %s {}; cat; }} | {pipe}", sh(std::str::from_utf8(&select).expect("ascii")));
                (self.onbox.run("loading the snapshot from S3 (redis-cli --pipe)", &download_into(url, &command)).await?, None)
            }
        };
        let (errors, replies) = pipe_summary(&out).ok_or_else(|| SeedError::Rejected {
            store: self.name.into(),
            detail: format!("redis-cli --pipe gave no summary: {}", out.trim()),
        })?;
        if errors > 0 {
            return Err(SeedError::Rejected { store: self.name.into(), detail: format!("redis rejected {errors} of {replies} commands") });
        }
        if let Some(sent) = sent {
            if replies != sent + 1 {
                return Err(SeedError::Rejected {
                    store: self.name.into(),
                    detail: format!("redis answered {replies} commands, {} were sent", sent + 1),
                });
            }
        }
        self.onbox
            .run("swapping the loaded data in", &format!("{cli} SWAPDB 0 {REDIS_STAGING_DB} >/dev/null && {cli} -n {REDIS_STAGING_DB} FLUSHDB ASYNC >/dev/null"))
            .await?;
        Ok(())
    }

    /// Stops redis, puts the checked dump in place, starts it again.
    async fn redis_rdb(&self) -> Result<(), SeedError> {
        let staged = self.staged_path();
        self.stage(&staged).await?;
        let check = self.onbox.check(&format!("redis-check-rdb {} >/dev/null 2>&1", sh(&staged))).await?;
        if !check {
            let _ = self.onbox.run("removing the rejected snapshot", &format!("rm -f {}", sh(&staged))).await;
            return Err(self.malformed("redis-check-rdb rejects it".into()));
        }
        let dir = stores::redis_dir(self.name, &self.onbox.layout);
        let user = stores::runner_user(self.name, StoreKind::Redis, self.onbox.layout.stores);
        let ctl = |verb: &str| self.onbox.control(verb, self.name, Some(self.store));
        self.onbox
            .run(
                "replacing redis' dump",
                &format!(
                    "{stop} >/dev/null && install -o {user} -g {user} -m 0600 {staged} {dump} && rm -f {staged} && {start} >/dev/null",
                    stop = ctl("stop"),
                    start = ctl("start"),
                    staged = sh(&staged),
                    dump = sh(&format!("{dir}/dump.rdb")),
                ),
            )
            .await?;
        wait_ready(self.onbox, self.name, self.store).await
    }

    fn psql(&self, database: &str) -> String {
        format!("psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {} -U postgres -d {database}", self.store.port())
    }

    fn databases(&self) -> (String, String, String) {
        let db = self.store.database(self.name);
        (format!("{db}__ws_load"), format!("{db}__ws_old"), db)
    }

    async fn postgres_fresh_staging(&self) -> Result<(), SeedError> {
        let (load, _, _) = self.databases();
        self.onbox
            .run(
                "creating the staging database",
                &format!("{psql} -c 'DROP DATABASE IF EXISTS {load}' -c 'CREATE DATABASE {load}'", psql = self.psql("postgres")),
            )
            .await?;
        Ok(())
    }

    /// `pg_restore -j` needs a seekable file: the dump is staged on the box
    /// first, its table of contents checked, then restored in parallel.
    async fn postgres_dump(&self) -> Result<(), SeedError> {
        let staged = self.staged_path();
        self.stage(&staged).await?;
        if !self.onbox.check(&format!("pg_restore --list {} >/dev/null 2>&1", sh(&staged))).await? {
            let _ = self.onbox.run("removing the rejected snapshot", &format!("rm -f {}", sh(&staged))).await;
            return Err(self.malformed("pg_restore cannot read its table of contents (not a pg_dump -Fc file, or truncated)".into()));
        }
        self.postgres_fresh_staging().await?;
        let (load, _, _) = self.databases();
        let restore = format!(
            "pg_restore -h 127.0.0.1 -p {} -U postgres -d {load} --jobs=\"$(nproc)\" --no-owner --no-privileges --exit-on-error {}",
            self.store.port(),
            sh(&staged)
        );
        let restored = self.onbox.run("restoring the dump (pg_restore)", &restore).await;
        let _ = self.onbox.run("removing the staged dump", &format!("rm -f {}", sh(&staged))).await;
        if let Err(OnBoxError::Failed { stderr, .. }) = &restored {
            return Err(self.malformed(format!("pg_restore failed: {}", stderr.trim())));
        }
        restored?;
        self.postgres_swap().await
    }

    /// `schema.sql`, then each table's CSV through `\copy ... FROM STDIN`.
    async fn postgres_csv(&self) -> Result<(), SeedError> {
        let Location::Local(dir) = &self.snap.location else {
            return Err(self.malformed("CSV snapshots are directories on the laptop".into()));
        };
        let files = csv_files(dir).map_err(|source| SeedError::Read { path: dir.clone(), source })?;
        self.postgres_fresh_staging().await?;
        let (load, _, _) = self.databases();
        for file in files {
            let file_name = file.file_name().unwrap_or_default().to_string_lossy().to_string();
            let command = if file_name == "schema.sql" {
                format!("{} --single-transaction -f -", self.psql(&load))
            } else {
                let table = csv_table(&file)
                    .ok_or_else(|| self.malformed(format!("{file_name}: name the file [NN-]TABLE.csv with a lowercase table name")))?;
                format!("{} -c {}", self.psql(&load), sh(&format!("\\copy {table} FROM STDIN WITH (FORMAT csv, HEADER true)")))
            };
            let loaded = self.onbox.run_input(&format!("loading {file_name}"), &command, self.open(&file).await?).await;
            if let Err(OnBoxError::Failed { stderr, .. }) = &loaded {
                return Err(self.malformed(format!("{file_name}: {}", stderr.trim())));
            }
            loaded?;
        }
        self.postgres_swap().await
    }

    /// Renames the loaded database into place. Sessions on the old one are
    /// ended first (services reconnect); retried if one sneaks back in.
    async fn postgres_swap(&self) -> Result<(), SeedError> {
        let (load, old, db) = self.databases();
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ('{db}', '{old}') AND pid <> pg_backend_pid();\n\
             DROP DATABASE IF EXISTS {old};\n\
             DO $$ BEGIN\n  \
               IF EXISTS (SELECT FROM pg_database WHERE datname = '{db}') THEN ALTER DATABASE {db} RENAME TO {old}; END IF;\n  \
               ALTER DATABASE {load} RENAME TO {db};\n\
             END $$;\n\
             DROP DATABASE IF EXISTS {old};\n"
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.onbox.run_input("swapping the loaded database in", &format!("{} -f - >/dev/null", self.psql("postgres")), sql.as_bytes()).await {
                Err(OnBoxError::Failed { stderr, .. }) if attempt < 3 && stderr.contains("being accessed by other users") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map(drop).map_err(Into::into),
            }
        }
    }
}

/// On the box: download `url` and pipe it into `command`, failing if either
/// fails (bash for pipefail).
fn download_into(url: &str, command: &str) -> String {
    let pipeline = format!("curl -fsS --retry 3 {} | {command}", sh(url));
    format!("bash -o pipefail -c {}", sh(&pipeline))
}

/// `mongorestore` reading an archive from stdin, dropping each collection
/// before restoring it.
pub fn mongorestore_command(name: &str, store: &Store, snap: &Snapshot) -> String {
    let gzip = if snap.describe().ends_with(".gz") { " --gzip" } else { "" };
    format!(
        "mongorestore --host 127.0.0.1 --port {} --archive{gzip} --drop --numParallelCollections=4 --nsInclude={}",
        store.port(),
        sh(&format!("{}.*", store.database(name)))
    )
}

/// Splits bulk NDJSON into requests of 5,000 action/document pairs, each
/// posted to `_bulk`; a response with item errors fails the load.
pub fn bulk_command(store: &Store) -> String {
    let post = format!(
        "curl -fsS -H 'Content-Type: application/x-ndjson' --data-binary @- 'http://127.0.0.1:{}/_bulk' | grep -q '\"errors\":false'",
        store.port()
    );
    format!("split -l 10000 --filter={} -", sh(&post))
}

/// `errors: E, replies: R` from redis-cli's pipe mode.
fn pipe_summary(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().rev().find(|l| l.starts_with("errors:"))?;
    let mut nums = line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u64>());
    Some((nums.next()?.ok()?, nums.next()?.ok()?))
}

/// One command in the Redis protocol.
pub fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Checks that a stream is whole Redis protocol commands while copying it
/// through; returns the number of commands. Mass insertion accepts
/// anything, so a truncated file would otherwise load without complaint.
#[derive(Debug, Default)]
pub struct RespCheck {
    state: RespState,
    line: Vec<u8>,
    commands: u64,
    offset: u64,
}

#[derive(Debug, Default, Clone, Copy)]
enum RespState {
    #[default]
    Array,
    BulkHeader { args_left: u64 },
    Body { left: u64, args_left: u64 },
    Cr { args_left: u64 },
    Lf { args_left: u64 },
}

impl RespCheck {
    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                RespState::Array | RespState::BulkHeader { .. } => {
                    let Some(nl) = data[i..].iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(&data[i..]);
                        if self.line.len() > 32 {
                            return Err(self.error("a header line longer than 32 bytes"));
                        }
                        break;
                    };
                    self.line.extend_from_slice(&data[i..i + nl + 1]);
                    i += nl + 1;
                    self.header()?;
                    self.offset += self.line.len() as u64;
                    self.line.clear();
                }
                RespState::Body { left, args_left } => {
                    let take = left.min((data.len() - i) as u64);
                    i += take as usize;
                    self.offset += take;
                    self.state = if take == left { RespState::Cr { args_left } } else { RespState::Body { left: left - take, args_left } };
                }
                RespState::Cr { args_left } | RespState::Lf { args_left } => {
                    let want = if matches!(self.state, RespState::Cr { .. }) { b'\r' } else { b'\n' };
                    if data[i] != want {
                        return Err(self.error("a bulk string not followed by CRLF (its length is wrong)"));
                    }
                    i += 1;
                    self.offset += 1;
                    self.state = match self.state {
                        RespState::Cr { .. } => RespState::Lf { args_left },
                        _ => self.next_arg(args_left),
                    };
                }
            }
        }
        Ok(())
    }

    fn next_arg(&mut self, args_left: u64) -> RespState {
        if args_left == 0 {
            self.commands += 1;
            RespState::Array
        } else {
            RespState::BulkHeader { args_left }
        }
    }

    fn header(&mut self) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        let parsed = line
            .strip_suffix(b"\r\n")
            .and_then(|l| l.split_first())
            .and_then(|(kind, n)| Some((*kind, std::str::from_utf8(n).ok()?.parse::<u64>().ok()?)));
        self.line = line;
        match (self.state, parsed) {
            (RespState::Array, Some((b'*', n))) if n > 0 => self.state = RespState::BulkHeader { args_left: n },
            (RespState::BulkHeader { args_left }, Some((b'$', len))) => {
                self.state = RespState::Body { left: len, args_left: args_left - 1 };
                if len == 0 {
                    self.state = RespState::Cr { args_left: args_left - 1 };
                }
            }
            (RespState::Array, _) => return Err(self.error("something other than a command (`*N` array header)")),
            _ => return Err(self.error("something other than a bulk string header (`$LEN`)")),
        }
        Ok(())
    }

    fn error(&self, what: &str) -> String {
        format!("byte {} (after {} whole commands): found {what}", self.offset, self.commands)
    }

    /// The number of commands, if the stream ended between commands.
    pub fn finish(&self) -> Result<u64, String> {
        match self.state {
            RespState::Array if self.line.is_empty() => Ok(self.commands),
            _ => Err(format!("it ends in the middle of a command at byte {} (after {} whole commands): truncated", self.offset + self.line.len() as u64, self.commands)),
        }
    }
}

async fn check_resp(mut file: impl AsyncRead + Unpin, out: &mut (impl AsyncWrite + Unpin)) -> Result<u64, String> {
    let mut check = RespCheck::default();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return check.finish();
        }
        check.feed(&buf[..n])?;
        out.write_all(&buf[..n]).await.map_err(|e| format!("sending failed: {e}"))?;
    }
}

/// One line of a JSON-lines redis snapshot.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    key: String,
    #[serde(rename = "type", default = "string_type")]
    kind: String,
    value: serde_json::Value,
    /// Seconds to live.
    ttl: Option<u64>,
}

fn string_type() -> String {
    "string".into()
}

/// The Redis commands that recreate one JSON-lines entry.
pub fn json_entry_to_resp(line: &str) -> Result<(Vec<u8>, u64), String> {
    use serde_json::Value;
    let e: JsonEntry = serde_json::from_str(line).map_err(|err| err.to_string())?;
    let scalar = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("{other} is not a string or number")),
        }
    };
    let mut args: Vec<String> = Vec::new();
    match (e.kind.as_str(), &e.value) {
        ("string", v) => args.extend(["SET".into(), e.key.clone(), scalar(v)?]),
        ("hash", Value::Object(m)) if !m.is_empty() => {
            args.extend(["HSET".into(), e.key.clone()]);
            for (f, v) in m {
                args.extend([f.clone(), scalar(v)?]);
            }
        }
        (kind @ ("list" | "set"), Value::Array(items)) if !items.is_empty() => {
            args.extend([if kind == "list" { "RPUSH" } else { "SADD" }.into(), e.key.clone()]);
            for v in items {
                args.push(scalar(v)?);
            }
        }
        ("zset", Value::Object(m)) if !m.is_empty() => {
            args.extend(["ZADD".into(), e.key.clone()]);
            for (member, score) in m {
                args.extend([scalar(score)?, member.clone()]);
            }
        }
        (kind, _) => {
            return Err(format!(
                "type {kind:?} with this value is not supported; use string (value), hash (object), list or set (non-empty array), zset (object of member: score)"
            ))
        }
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut out = resp_command(&refs);
    let mut commands = 1;
    if let Some(ttl) = e.ttl {
        out.extend(resp_command(&[b"EXPIRE", e.key.as_bytes(), ttl.to_string().as_bytes()]));
        commands += 1;
    }
    Ok((out, commands))
}

async fn jsonl_to_resp(file: impl AsyncRead + Unpin, out: &mut (impl AsyncWrite + Unpin)) -> Result<u64, String> {
    let mut lines = BufReader::with_capacity(256 * 1024, file).lines();
    let (mut commands, mut n) = (0, 0u64);
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(line) = lines.next_line().await.map_err(|e| format!("line {}: {e}", n + 1))? {
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let (bytes, c) = json_entry_to_resp(&line).map_err(|e| format!("line {n}: {e}"))?;
        batch.extend_from_slice(&bytes);
        commands += c;
        if batch.len() >= 64 * 1024 {
            out.write_all(&batch).await.map_err(|e| format!("sending failed: {e}"))?;
            batch.clear();
        }
    }
    out.write_all(&batch).await.map_err(|e| format!("sending failed: {e}"))?;
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all(data: &[u8], chunk: usize) -> Result<u64, String> {
        let mut c = RespCheck::default();
        for part in data.chunks(chunk) {
            c.feed(part)?;
        }
        c.finish()
    }

    #[test]
    fn resp_check_counts_whole_commands_in_any_chunking() {
        let mut data = resp_command(&[b"SET", b"k", b"v\r\nwith crlf"]);
        data.extend(resp_command(&[b"SET", b"empty", b""]));
        data.extend(resp_command(&[b"PING"]));
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(check_all(&data, chunk), Ok(3), "chunk {chunk}");
        }
    }

    #[test]
    fn resp_check_reports_truncation_and_garbage() {
        let data = resp_command(&[b"SET", b"key", b"value"]);
        for cut in 1..data.len() {
            let err = check_all(&data[..cut], 4).unwrap_err();
            assert!(err.contains("truncated") || err.contains("found"), "cut {cut}: {err}");
        }
        let err = check_all(b"SET a b\r\n", 100).unwrap_err();
        assert!(err.contains("byte 0") && err.contains("`*N`"), "{err}");
        let err = check_all(b"*1\r\n$2\r\nabc\r\n", 100).unwrap_err();
        assert!(err.contains("CRLF"), "{err}");
    }

    #[test]
    fn json_lines_become_commands() {
        let (resp, n) = json_entry_to_resp(r#"{"key":"user:1","value":"ada","ttl":60}"#).unwrap();
        assert_eq!(n, 2);
        assert_eq!(resp, [resp_command(&[b"SET", b"user:1", b"ada"]), resp_command(&[b"EXPIRE", b"user:1", b"60"])].concat());
        let (resp, _) = json_entry_to_resp(r#"{"key":"z","type":"zset","value":{"a":1.5}}"#).unwrap();
        assert_eq!(resp, resp_command(&[b"ZADD", b"z", b"1.5", b"a"]));
        let (resp, _) = json_entry_to_resp(r#"{"key":"h","type":"hash","value":{"f":2}}"#).unwrap();
        assert_eq!(resp, resp_command(&[b"HSET", b"h", b"f", b"2"]));
        assert!(json_entry_to_resp(r#"{"key":"l","type":"list","value":[]}"#).unwrap_err().contains("non-empty"));
        assert!(json_entry_to_resp(r#"{"key":"x","value":"v","extra":1}"#).is_err());
        assert!(json_entry_to_resp(r#"{"key":"x","val"#).is_err());
    }

    #[test]
    fn pipe_summary_is_parsed() {
        let out = "All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 2, replies: 1001\n";
        assert_eq!(pipe_summary(out), Some((2, 1001)));
        assert_eq!(pipe_summary("nothing"), None);
    }

    #[test]
    fn csv_tables_come_from_file_names() {
        assert_eq!(csv_table(Path::new("/s/01-users.csv")).as_deref(), Some("users"));
        assert_eq!(csv_table(Path::new("/s/order_items.csv")).as_deref(), Some("order_items"));
        assert_eq!(csv_table(Path::new("/s/Bad Name.csv")), None);
    }

    // Not installable here: pin the command lines (see docs/services.md).
    #[test]
    fn mongodb_and_opensearch_loaders() {
        let mongo: Store = toml::from_str("kind = \"mongodb\"\nseed = \"s.archive.gz\"").unwrap();
        let snap = Snapshot {
            format: SeedFormat::MongoArchive,
            identity: "sha256:x".into(),
            size: 1,
            location: Location::Local("seeds/s.archive.gz".into()),
        };
        assert_eq!(
            mongorestore_command("docs", &mongo, &snap),
            "mongorestore --host 127.0.0.1 --port 27017 --archive --gzip --drop --numParallelCollections=4 --nsInclude='docs.*'"
        );
        let os: Store = toml::from_str("kind = \"opensearch\"\nport = 9201").unwrap();
        let cmd = bulk_command(&os);
        assert!(cmd.starts_with("split -l 10000 --filter=\"curl -fsS -H 'Content-Type: application/x-ndjson' --data-binary @-"), "{cmd}");
        assert!(cmd.contains("http://127.0.0.1:9201/_bulk") && cmd.ends_with(" -"), "{cmd}");
    }

    #[test]
    fn download_fails_with_either_side_of_the_pipe() {
        assert_eq!(
            download_into("https://b.s3/k?X-Amz-Signature=a&b=c", "redis-cli --pipe"),
            "bash -o pipefail -c \"curl -fsS --retry 3 'https://b.s3/k?X-Amz-Signature=a&b=c' | redis-cli --pipe\""
        );
    }
}
