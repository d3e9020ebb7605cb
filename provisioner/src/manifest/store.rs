//! `[stores.NAME]`: data stores, their snapshots and seed formats.

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest queue name (without `.fifo`): with a box's prefix
/// (`ws_OWNER_BOX_`) and the dead-letter queue's `_dlq.fifo`, SQS takes 80.
pub const QUEUE_NAME_MAX: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Redis,
    Postgres,
    Mongodb,
    Opensearch,
    Mysql,
    /// Amazon SQS queues: real ones for a box in AWS, a local SQS server
    /// beside the services on a local box.
    Sqs,
}

impl StoreKind {
    /// The name used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Postgres => "postgres",
            StoreKind::Mongodb => "mongodb",
            StoreKind::Opensearch => "opensearch",
            StoreKind::Mysql => "mysql",
            StoreKind::Sqs => "sqs",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            StoreKind::Redis => 6379,
            StoreKind::Postgres => 5432,
            StoreKind::Mongodb => 27017,
            StoreKind::Opensearch => 9200,
            StoreKind::Mysql => 3306,
            // ElasticMQ's, the usual local SQS port.
            StoreKind::Sqs => 9324,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub kind: StoreKind,
    pub port: Option<u16>,
    pub database: Option<String>,
    /// Snapshot to load once: a local path (relative to the manifest) or an
    /// `s3://bucket/key` URI.
    pub seed: Option<String>,
    /// The snapshot's format when its name does not tell (see [`SeedFormat`]).
    pub format: Option<SeedFormat>,
    /// The environment variable that gives services the store's URL,
    /// instead of `WORKSTATION_<KIND>_<STORE>_URL`.
    pub url_env: Option<String>,
    /// sqs: the queues, each `NAME` or `NAME.fifo` (a FIFO queue).
    #[serde(default)]
    pub queues: Vec<String>,
}

impl Store {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.kind.default_port())
    }

    /// The database seeded (postgres, mongodb): `database`, else the store
    /// name with '-' as '_' (a valid identifier everywhere).
    pub fn database(&self, store_name: &str) -> String {
        self.database.clone().unwrap_or_else(|| store_name.replace('-', "_"))
    }

    /// The store's URL on the box's loopback, as services get it. The
    /// accounts are the ones loopback trusts (stack/stores.rs).
    pub fn url(&self, store_name: &str) -> String {
        let port = self.port();
        match self.kind {
            StoreKind::Redis => format!("redis://127.0.0.1:{port}/0"),
            StoreKind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{}?sslmode=disable", self.database(store_name)),
            StoreKind::Mongodb => format!("mongodb://127.0.0.1:{port}/{}", self.database(store_name)),
            StoreKind::Opensearch => format!("http://127.0.0.1:{port}"),
            StoreKind::Mysql => format!("mysql://root@127.0.0.1:{port}/{}", self.database(store_name)),
            // The local server; a box in AWS uses its region's endpoint
            // (provider/queues.rs), which its services get instead.
            StoreKind::Sqs => format!("http://127.0.0.1:{port}"),
        }
    }

    /// The variable [`Store::url`] is in: `url_env`, else
    /// `WORKSTATION_<KIND>_<STORE>_URL` (the name upper-cased, '-' as '_').
    pub fn url_env(&self, store_name: &str) -> String {
        self.url_env.clone().unwrap_or_else(|| format!("WORKSTATION_{}_{}_URL", self.kind.as_str().to_uppercase(), store_name.replace('-', "_").to_uppercase()))
    }

    /// The variable a queue's URL is in: the store's variable with the
    /// queue's name before `_URL` (`WORKSTATION_SQS_JOBS_EMAILS_URL`;
    /// `url_env = "WESTAGE_SQS_URL"` gives `WESTAGE_SQS_EMAILS_URL`), and
    /// its dead-letter queue's with `_DLQ` (`..._EMAILS_DLQ_URL`). A FIFO
    /// queue's `.fifo` is left out.
    pub fn queue_env(&self, store_name: &str, queue: &str, dead_letter: bool) -> String {
        let store = self.url_env(store_name);
        let base = store.strip_suffix("_URL").unwrap_or(&store);
        let queue = queue.strip_suffix(".fifo").unwrap_or(queue).replace('-', "_").to_uppercase();
        let dlq = if dead_letter { "_DLQ" } else { "" };
        format!("{base}_{queue}{dlq}_URL")
    }

    /// The seed's format: `format` if set, else from the file name.
    pub fn seed_format(&self) -> Result<Option<SeedFormat>, String> {
        let Some(seed) = &self.seed else { return Ok(None) };
        let format = match self.format {
            Some(f) => f,
            None => SeedFormat::from_name(self.kind, seed).ok_or_else(|| {
                format!(
                    "cannot tell the format of {seed:?} from its name; set format = one of {}",
                    SeedFormat::for_kind(self.kind).iter().map(|f| format!("\"{}\"", f.as_str())).collect::<Vec<_>>().join(", ")
                )
            })?,
        };
        if !SeedFormat::for_kind(self.kind).contains(&format) {
            return Err(format!("format \"{}\" is not a {} snapshot format", format.as_str(), self.kind.as_str()));
        }
        if seed.starts_with("s3://") && !format.is_single_object() {
            return Err(format!(
                "\"{}\" snapshots are read on the laptop (converted or split while streaming); use a local path, or an S3 object in a native format",
                format.as_str()
            ));
        }
        Ok(Some(format))
    }
}

/// Snapshot formats, each loaded with its store's native fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedFormat {
    /// Redis protocol commands, for `redis-cli --pipe` (`.resp`).
    Resp,
    /// A Redis dump file (`.rdb`).
    Rdb,
    /// One JSON object per line: `{"key", "type", "value", "ttl"}` (`.jsonl`).
    Jsonl,
    /// `pg_dump -Fc` custom format, for `pg_restore -j` (`.dump`, `.pgdump`).
    PgDump,
    /// `mysqldump` output of one database (without `--databases`), SQL
    /// text (`.sql`).
    MysqlDump,
    /// A directory: optional `schema.sql`, then one `[NN-]TABLE.csv` per
    /// table with a header row, loaded in file-name order (postgres,
    /// mysql).
    Csv,
    /// `mongodump --archive` output, optionally gzipped (`.archive[.gz]`).
    MongoArchive,
    /// OpenSearch `_bulk` NDJSON (`.ndjson`).
    Bulk,
}

impl SeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SeedFormat::Resp => "resp",
            SeedFormat::Rdb => "rdb",
            SeedFormat::Jsonl => "jsonl",
            SeedFormat::PgDump => "pg-dump",
            SeedFormat::MysqlDump => "mysql-dump",
            SeedFormat::Csv => "csv",
            SeedFormat::MongoArchive => "mongo-archive",
            SeedFormat::Bulk => "bulk",
        }
    }

    pub fn for_kind(kind: StoreKind) -> &'static [SeedFormat] {
        match kind {
            StoreKind::Redis => &[SeedFormat::Resp, SeedFormat::Rdb, SeedFormat::Jsonl],
            StoreKind::Postgres => &[SeedFormat::PgDump, SeedFormat::Csv],
            StoreKind::Mongodb => &[SeedFormat::MongoArchive],
            StoreKind::Opensearch => &[SeedFormat::Bulk],
            StoreKind::Mysql => &[SeedFormat::MysqlDump, SeedFormat::Csv],
            StoreKind::Sqs => &[],
        }
    }

    fn from_name(kind: StoreKind, seed: &str) -> Option<SeedFormat> {
        let name = seed.trim_end_matches('/').rsplit('/').next().unwrap_or(seed);
        let ext = |e: &str| name.ends_with(e);
        let guess = if ext(".resp") {
            SeedFormat::Resp
        } else if ext(".rdb") {
            SeedFormat::Rdb
        } else if ext(".jsonl") {
            SeedFormat::Jsonl
        } else if ext(".dump") || ext(".pgdump") {
            SeedFormat::PgDump
        } else if ext(".sql") {
            SeedFormat::MysqlDump
        } else if ext(".archive") || ext(".archive.gz") {
            SeedFormat::MongoArchive
        } else if ext(".ndjson") {
            SeedFormat::Bulk
        } else if matches!(kind, StoreKind::Postgres | StoreKind::Mysql) && !name.contains('.') {
            // A directory of CSV files has no extension.
            SeedFormat::Csv
        } else {
            return None;
        };
        Some(guess)
    }

    /// Loadable straight from one S3 object on the box.
    pub fn is_single_object(self) -> bool {
        !matches!(self, SeedFormat::Jsonl | SeedFormat::Csv)
    }
}

/// Where a store's snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedSource {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl FromStr for SeedSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("s3://") {
            let url = super::S3Url::parse(s)?;
            Ok(SeedSource::S3 { bucket: url.bucket, key: url.key })
        } else if s.contains("://") {
            Err(format!("{s:?} uses an unsupported scheme; use a file path or s3://BUCKET/KEY"))
        } else if s.is_empty() {
            Err("is empty; use a file path or s3://BUCKET/KEY".into())
        } else {
            Ok(SeedSource::File(PathBuf::from(s)))
        }
    }
}
