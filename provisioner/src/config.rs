//! `workstation.toml`: the manifest that declares a box.
//!
//! The CLI, the Nix image (through `builtins.fromTOML`) and the box-side
//! commands all read this one file. Parsing is strict (`deny_unknown_fields`,
//! so a typo is an error rather than a silently ignored setting), and
//! [`Manifest::validate`] checks what types cannot, naming each field and
//! the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest file name looked up from the working directory upwards.
pub const FILE_NAME: &str = "workstation.toml";

/// gp3 volumes range from 1 GiB to 16 TiB; below 8 GiB no NixOS image boots.
const DISK_GIB: std::ops::RangeInclusive<u32> = 8..=16384;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {FILE_NAME} found in {start} or any parent directory; pass --manifest PATH or set WORKSTATION_MANIFEST (examples/workstation.toml is a commented template)")]
    NotFound { start: PathBuf },
    #[error("cannot read manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is not valid:\n{message}")]
    Parse { path: PathBuf, message: String },
    #[error("manifest {path} is not valid:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

/// One thing wrong with a manifest: which field, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Names the laptop points at the box (through hosts-agent).
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(rename = "box")]
    pub machine: MachineSpec,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub stores: BTreeMap<String, Store>,
    #[serde(default)]
    pub idle: IdlePolicy,
    #[serde(default)]
    pub sync: SyncSpec,
}

/// `workstation sync`: the laptop's checkout mirrored onto the box.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// Where on the box, relative to the box root (default: `src/<name of
    /// the checkout directory>`).
    pub path: Option<String>,
    /// rsync patterns never synced, besides `.git/` and what `.gitignore`
    /// files ignore.
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    pub instance_type: String,
    pub disk_gib: u32,
    /// Falls back to the user's settings, then the AWS config chain.
    pub region: Option<String>,
    pub subnet: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The box's IAM instance profile (terraform's `instance_profile`
    /// output): lets the box tag and stop only itself and read the seeds.
    pub instance_profile: Option<String>,
    /// Exactly one of `image_id`, `image_name` and `image_tag`.
    pub image_id: Option<String>,
    pub image_name: Option<String>,
    /// The newest AMI of this account tagged `workstation:image` = this
    /// value (what `workstation image publish --image` tags) that runs on
    /// the instance type's architecture.
    pub image_tag: Option<String>,
}

/// How the manifest names the box's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRef<'a> {
    Id(&'a str),
    Name(&'a str),
    Tag(&'a str),
}

impl MachineSpec {
    /// The image, once [`Manifest::validate`] has checked exactly one is set.
    pub fn image(&self) -> ImageRef<'_> {
        match (&self.image_id, &self.image_name, &self.image_tag) {
            (Some(id), _, _) => ImageRef::Id(id),
            (None, Some(name), _) => ImageRef::Name(name),
            (None, None, Some(tag)) => ImageRef::Tag(tag),
            (None, None, None) => unreachable!("manifest validation requires an image"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub command: String,
    pub directory: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub user: Option<String>,
    #[serde(default = "yes")]
    pub autorestart: bool,
    /// Services started (and healthy) before this one.
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
    pub health: Option<HealthCheck>,
    #[serde(default)]
    pub logs: ServiceLogs,
    /// Run in the synced checkout on the box when a file matching
    /// `install_on` changed (e.g. "npm ci"), then restart this service.
    pub install: Option<String>,
    /// Globs relative to the checkout, e.g. ["package-lock.json"].
    #[serde(default)]
    pub install_on: Vec<String>,
    /// Globs whose changes restart this service, e.g. ["src/**"].
    #[serde(default)]
    pub restart_on: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Where a program's output goes: `<box root>/logs/<name>.log` (stdout and
/// stderr merged, in order), rotated by supervisord.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogs {
    /// Rotate when the log reaches this size.
    #[serde(default = "default_log_max_mb")]
    pub max_mb: u32,
    /// Rotated files kept.
    #[serde(default = "default_log_backups")]
    pub backups: u32,
}

fn default_log_max_mb() -> u32 {
    50
}
fn default_log_backups() -> u32 {
    5
}

impl Default for ServiceLogs {
    fn default() -> Self {
        Self { max_mb: default_log_max_mb(), backups: default_log_backups() }
    }
}

/// Exactly one of `http` (with `port`), `tcp` or `command`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path answered with 2xx, e.g. "/healthz".
    pub http: Option<String>,
    pub port: Option<u16>,
    /// TCP port that accepts connections.
    pub tcp: Option<u16>,
    /// Shell command that exits 0.
    pub command: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Redis,
    Postgres,
    Mongodb,
    Opensearch,
}

impl StoreKind {
    /// The name used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Postgres => "postgres",
            StoreKind::Mongodb => "mongodb",
            StoreKind::Opensearch => "opensearch",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            StoreKind::Redis => 6379,
            StoreKind::Postgres => 5432,
            StoreKind::Mongodb => 27017,
            StoreKind::Opensearch => 9200,
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
    /// A directory: optional `schema.sql`, then one `[NN-]TABLE.csv` per
    /// table with a header row, loaded in file-name order.
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
        } else if ext(".archive") || ext(".archive.gz") {
            SeedFormat::MongoArchive
        } else if ext(".ndjson") {
            SeedFormat::Bulk
        } else if kind == StoreKind::Postgres && !name.contains('.') {
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdlePolicy {
    /// Stop after this long without activity.
    #[serde(with = "humantime_serde", default = "default_idle_timeout")]
    pub timeout: Duration,
    /// Warn logged-in users this long before stopping.
    #[serde(with = "humantime_serde", default = "default_warning")]
    pub warning: Duration,
    /// Longest `workstation keep --for` accepted.
    #[serde(with = "humantime_serde", default = "default_max_keep")]
    pub max_keep: Duration,
    /// CPU use (percent of one core) that counts as activity.
    #[serde(default = "default_cpu_threshold")]
    pub cpu_percent: f64,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(60 * 60)
}
fn default_warning() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_max_keep() -> Duration {
    Duration::from_secs(12 * 60 * 60)
}
fn default_cpu_threshold() -> f64 {
    25.0
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self {
            timeout: default_idle_timeout(),
            warning: default_warning(),
            max_keep: default_max_keep(),
            cpu_percent: default_cpu_threshold(),
            schedules: Vec::new(),
        }
    }
}

/// `stop` at each cron tick, or `keep` the box up for `duration` from each
/// tick (a demo window).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub action: ScheduleAction,
    /// Seconds-first cron expression, e.g. "0 0 20 * * Mon-Fri".
    pub cron: String,
    /// IANA zone, e.g. "Europe/Paris".
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(with = "humantime_serde", default)]
    pub duration: Option<Duration>,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleAction {
    Stop,
    Keep,
}

/// A parsed, validated manifest and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// sha256 of the file's bytes: tagged on the box so drift is visible.
    pub hash: String,
}

impl Manifest {
    /// Finds `workstation.toml` in `start` or the nearest parent.
    pub fn find(start: &Path) -> Result<PathBuf, ConfigError> {
        start
            .ancestors()
            .map(|d| d.join(FILE_NAME))
            .find(|p| p.is_file())
            .ok_or_else(|| ConfigError::NotFound { start: start.to_owned() })
    }

    pub fn load(path: &Path) -> Result<LoadedManifest, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let manifest = Self::parse(&text).map_err(|e| match e {
            ParseError::Syntax(message) => ConfigError::Parse { path: path.to_owned(), message },
            ParseError::Invalid(problems) => ConfigError::Invalid { path: path.to_owned(), problems },
        })?;
        Ok(LoadedManifest {
            path: path.to_owned(),
            manifest,
            hash: hex::encode(Sha256::digest(&bytes)),
        })
    }

    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let problems = manifest.validate();
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ParseError::Invalid(problems))
        }
    }

    /// Everything wrong with the manifest, in file order.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |field: String, message: String| out.push(Problem { field, message });

        let m = &self.machine;
        if m.instance_type.trim().is_empty() {
            problem("box.instance_type".into(), "is empty; set an EC2 instance type such as \"m7i.xlarge\"".into());
        }
        if !DISK_GIB.contains(&m.disk_gib) {
            problem(
                "box.disk_gib".into(),
                format!("{} is out of range; use {} to {} (GiB)", m.disk_gib, DISK_GIB.start(), DISK_GIB.end()),
            );
        }
        let set = [m.image_id.is_some(), m.image_name.is_some(), m.image_tag.is_some()].iter().filter(|s| **s).count();
        match (&m.image_id, set) {
            (_, 0) => problem(
                "box.image_id".into(),
                "missing; set box.image_id = \"ami-...\", box.image_name = \"workstation-...\" or box.image_tag = \"workstation\" (what `workstation image publish` tags)".into(),
            ),
            (_, 2..) => problem(
                "box.image_name".into(),
                "set only one of box.image_id, box.image_name and box.image_tag".into(),
            ),
            (Some(id), _) if !id.starts_with("ami-") => problem(
                "box.image_id".into(),
                format!("{id:?} is not an AMI id; it looks like \"ami-0123456789abcdef0\""),
            ),
            _ => {}
        }
        if let Some(subnet) = &m.subnet {
            if !subnet.starts_with("subnet-") {
                problem("box.subnet".into(), format!("{subnet:?} is not a subnet id; it looks like \"subnet-0123abcd\""));
            }
        }
        for (i, sg) in m.security_groups.iter().enumerate() {
            if !sg.starts_with("sg-") {
                problem(format!("box.security_groups[{i}]"), format!("{sg:?} is not a security group id; it looks like \"sg-0123abcd\""));
            }
        }

        for (i, h) in self.hostnames.iter().enumerate() {
            if let Err(why) = check_hostname(h) {
                problem(format!("hostnames[{i}]"), why);
            }
        }
        let dup: BTreeSet<_> = self.hostnames.iter().filter(|h| self.hostnames.iter().filter(|o| o == h).count() > 1).collect();
        for h in dup {
            problem("hostnames".into(), format!("{h:?} is listed more than once"));
        }

        // Ports must be unique across services and stores: they share the box.
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        let mut claim = |port: u16, field: String, problem: &mut dyn FnMut(String, String)| {
            if port == 0 {
                problem(field, "port 0 is not a port; use 1-65535".into());
            } else if let Some(prev) = ports.insert(port, field.clone()) {
                problem(field, format!("port {port} is already used by {prev}"));
            }
        };

        for (name, svc) in &self.services {
            let at = format!("services.{name}");
            if !is_program_name(name) {
                problem(at.clone(), "service names use a-z, 0-9, '-' and '_' (they become supervisord program names)".into());
            }
            if svc.command.trim().is_empty() {
                problem(format!("{at}.command"), "is empty; set the command that runs the service".into());
            }
            for dep in &svc.depends_on {
                if !self.services.contains_key(dep) {
                    problem(format!("{at}.depends_on"), format!("{dep:?} is not a service in this manifest"));
                } else if dep == name {
                    problem(format!("{at}.depends_on"), "a service cannot depend on itself".into());
                }
            }
            for key in svc.environment.keys() {
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || key.starts_with(|c: char| c.is_ascii_digit()) {
                    problem(format!("{at}.environment"), format!("{key:?} is not a valid variable name; use A-Z, 0-9 and '_'"));
                }
            }
            if let Some(user) = &svc.user {
                if !is_user_name(user) {
                    problem(format!("{at}.user"), format!("{user:?} is not a user name; use a-z, 0-9, '_' and '-', starting with a letter or '_'"));
                }
            }
            for (i, p) in svc.ports.iter().enumerate() {
                claim(*p, format!("{at}.ports[{i}]"), &mut problem);
            }
            if let Some(h) = &svc.health {
                let kinds = [h.http.is_some(), h.tcp.is_some(), h.command.is_some()].iter().filter(|k| **k).count();
                if kinds != 1 {
                    problem(format!("{at}.health"), "set exactly one of http = \"/path\" (with port), tcp = PORT or command = \"...\"".into());
                } else if h.http.is_some() && h.port.is_none() {
                    problem(format!("{at}.health.port"), "missing; an http health check needs the port to call".into());
                } else if let Some(path) = &h.http {
                    if !path.starts_with('/') {
                        problem(format!("{at}.health.http"), format!("{path:?} must be a path starting with '/'"));
                    }
                }
            }
        }
        if let Some(cycle) = dependency_cycle(&self.services) {
            problem("services".into(), format!("depends_on forms a cycle: {}", cycle.join(" -> ")));
        }

        for (name, store) in &self.stores {
            let at = format!("stores.{name}");
            if !is_program_name(name) {
                problem(at.clone(), "store names use a-z, 0-9, '-' and '_'".into());
            }
            if self.services.contains_key(name) {
                problem(at.clone(), format!("services.{name} has the same name; stores and services share supervisord's program names, rename one"));
            }
            claim(store.port(), format!("{at}.port"), &mut problem);
            if let Some(seed) = &store.seed {
                match SeedSource::from_str(seed) {
                    Err(why) => problem(format!("{at}.seed"), why),
                    Ok(_) => {
                        if let Err(why) = store.seed_format() {
                            problem(format!("{at}.format"), why);
                        }
                    }
                }
            } else if store.format.is_some() {
                problem(format!("{at}.format"), "set only with a seed; remove it or add seed = \"...\"".into());
            }
            match (&store.database, store.kind) {
                (Some(_), StoreKind::Redis | StoreKind::Opensearch) => {
                    problem(format!("{at}.database"), format!("{} has no named databases; remove the field", store.kind.as_str()))
                }
                (Some(db), _) if !is_identifier(db) => problem(
                    format!("{at}.database"),
                    format!("{db:?} is not a database name; use a-z, 0-9 and '_', starting with a letter (at most 50)"),
                ),
                _ => {}
            }
        }

        for (name, svc) in &self.services {
            for (field, globs) in [("install_on", &svc.install_on), ("restart_on", &svc.restart_on)] {
                for (i, g) in globs.iter().enumerate() {
                    if let Err(e) = globset::Glob::new(g) {
                        problem(format!("services.{name}.{field}[{i}]"), format!("{g:?} is not a glob ({e}); use e.g. \"src/**\""));
                    }
                }
            }
            if svc.install_on.is_empty() != svc.install.is_none() {
                problem(format!("services.{name}.install"), "install and install_on go together: the command, and the files whose change runs it".into());
            }
        }
        if let Some(path) = &self.sync.path {
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == ".." || c == ".") {
                problem("sync.path".into(), format!("{path:?} must be a relative path below the box root without . or .., e.g. \"src/app\""));
            }
        }

        let idle = &self.idle;
        if idle.timeout < Duration::from_secs(60) {
            problem("idle.timeout".into(), "must be at least 1m (the idle check runs once a minute)".into());
        }
        if idle.warning >= idle.timeout {
            problem("idle.warning".into(), "must be shorter than idle.timeout".into());
        }
        if !(0.0..=100.0 * 1024.0).contains(&idle.cpu_percent) {
            problem("idle.cpu_percent".into(), "must be a percentage of one core, e.g. 25".into());
        }
        for (i, s) in idle.schedules.iter().enumerate() {
            let at = format!("idle.schedules[{i}]");
            if let Err(e) = cron::Schedule::from_str(&s.cron) {
                problem(format!("{at}.cron"), format!("{:?} is not a cron expression ({e}); use seconds-first form, e.g. \"0 0 20 * * Mon-Fri\"", s.cron));
            }
            if s.timezone.parse::<chrono_tz::Tz>().is_err() {
                problem(format!("{at}.timezone"), format!("{:?} is not an IANA time zone; use e.g. \"Europe/Paris\" or \"UTC\"", s.timezone));
            }
            match (s.action, s.duration) {
                (ScheduleAction::Keep, None) => problem(format!("{at}.duration"), "missing; a keep window needs a duration such as \"3h\"".into()),
                (ScheduleAction::Stop, Some(_)) => problem(format!("{at}.duration"), "only keep windows have a duration; remove it".into()),
                _ => {}
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Syntax(String),
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
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
        if let Some(rest) = s.strip_prefix("s3://") {
            match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(SeedSource::S3 {
                    bucket: bucket.into(),
                    key: key.into(),
                }),
                _ => Err(format!("{s:?} is not an S3 object URI; use s3://BUCKET/KEY")),
            }
        } else if s.contains("://") {
            Err(format!("{s:?} uses an unsupported scheme; use a file path or s3://BUCKET/KEY"))
        } else if s.is_empty() {
            Err("is empty; use a file path or s3://BUCKET/KEY".into())
        } else {
            Ok(SeedSource::File(PathBuf::from(s)))
        }
    }
}

fn is_program_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Safe unquoted in SQL, shell and mongo namespaces; short enough for a
/// staging suffix within postgres' 63-byte limit.
fn is_identifier(s: &str) -> bool {
    s.len() <= 50
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_hostname(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 253 {
        return Err(format!("{h:?} must be 1-253 characters"));
    }
    for label in h.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{h:?} is not a hostname; use dot-separated labels of a-z, 0-9 and '-'"));
        }
    }
    if h.eq_ignore_ascii_case("localhost") {
        return Err("localhost cannot be pointed at a box".into());
    }
    Ok(())
}

fn dependency_cycle(services: &BTreeMap<String, Service>) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        services: &'a BTreeMap<String, Service>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == name) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.into());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        stack.push(name);
        for dep in services.get(name).map(|s| s.depends_on.as_slice()).unwrap_or_default() {
            if let Some(c) = visit(dep, services, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    services
        .keys()
        .find_map(|name| visit(name, services, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[box]
instance_type = "m7i.large"
disk_gib = 50
image_id = "ami-0123456789abcdef0"
"#;

    fn problems(text: &str) -> Vec<String> {
        match Manifest::parse(text) {
            Err(ParseError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
            other => panic!("expected validation problems, got {other:?}"),
        }
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = Manifest::parse(MINIMAL).unwrap();
        assert_eq!(m.idle.timeout, Duration::from_secs(3600));
        assert!(m.services.is_empty());
    }

    #[test]
    fn example_manifests_are_valid() {
        for text in [include_str!("../../examples/workstation.toml"), include_str!("../../examples/local/workstation.toml")] {
            let m = Manifest::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(!m.services.is_empty() && !m.stores.is_empty() && !m.hostnames.is_empty());
        }
    }

    #[test]
    fn seed_formats_come_from_names_or_the_format_field() {
        let store = |extra: &str| -> Vec<String> {
            problems_or_none(&format!("{MINIMAL}\n[stores.s]\n{extra}"))
        };
        assert!(store("kind = \"redis\"\nseed = \"a.rdb\"").is_empty());
        assert!(store("kind = \"postgres\"\nseed = \"seeds/main\"").is_empty());
        let p = store("kind = \"redis\"\nseed = \"a.bin\"");
        assert!(p[0].starts_with("stores.s.format: cannot tell") && p[0].contains("\"resp\", \"rdb\", \"jsonl\""), "{p:?}");
        assert!(store("kind = \"redis\"\nseed = \"a.bin\"\nformat = \"rdb\"").is_empty());
        let p = store("kind = \"postgres\"\nseed = \"a.rdb\"");
        assert!(p[0].contains("not a postgres snapshot format"), "{p:?}");
        let p = store("kind = \"redis\"\nseed = \"s3://b/a.jsonl\"");
        assert!(p[0].starts_with("stores.s.format:") && p[0].contains("use a local path"), "{p:?}");
        let p = store("kind = \"postgres\"\ndatabase = \"drop table\"");
        assert!(p[0].starts_with("stores.s.database:"), "{p:?}");
    }

    fn problems_or_none(text: &str) -> Vec<String> {
        match Manifest::parse(text) {
            Ok(_) => Vec::new(),
            Err(ParseError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let err = Manifest::parse(&MINIMAL.replace("disk_gib", "disk_gb")).unwrap_err();
        let ParseError::Syntax(msg) = err else { panic!() };
        assert!(msg.contains("disk_gb"), "{msg}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Manifest::parse(&MINIMAL.replace("50", "\"fifty\"")).unwrap_err();
        let ParseError::Syntax(msg) = err else { panic!() };
        assert!(msg.contains("disk_gib") && msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn missing_image_names_both_fields() {
        let p = problems(&MINIMAL.replace("image_id = \"ami-0123456789abcdef0\"", ""));
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("box.image_id: missing") && p[0].contains("image_name"), "{p:?}");
    }

    #[test]
    fn semantic_problems_are_all_reported() {
        let text = format!(
            "hostnames = [\"api.dev\", \"bad host\"]\n{MINIMAL}\n{}",
            r#"
[services.api]
command = "run"
ports = [8080]
depends_on = ["web"]
health = { http = "healthz" , port = 8080 }
[services.web]
command = ""
ports = [8080]
depends_on = ["api"]
[stores.cache]
kind = "redis"
seed = "ftp://x"
[idle]
timeout = "30s"
[[idle.schedules]]
action = "keep"
cron = "every day"
timezone = "Mars/Base"
"#
        );
        let p = problems(&text);
        let want = [
            "hostnames[1]:",
            "services.api.health.http:",
            "services.web.command: is empty",
            "services.web.ports[0]: port 8080 is already used by services.api.ports[0]",
            "services: depends_on forms a cycle: api -> web -> api",
            "stores.cache.seed:",
            "idle.timeout:",
            "idle.schedules[0].cron:",
            "idle.schedules[0].timezone:",
            "idle.schedules[0].duration: missing",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.starts_with(w)), "missing {w:?} in {p:#?}");
        }
    }

    #[test]
    fn seed_sources() {
        assert_eq!(
            "s3://b/k/x.rdb".parse::<SeedSource>(),
            Ok(SeedSource::S3 { bucket: "b".into(), key: "k/x.rdb".into() })
        );
        assert!("s3://b".parse::<SeedSource>().is_err());
        assert_eq!("seeds/a.rdb".parse::<SeedSource>(), Ok(SeedSource::File("seeds/a.rdb".into())));
    }
}
