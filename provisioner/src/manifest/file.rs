//! The manifest file: found from the working directory upwards, parsed
//! strictly, validated, hashed; and the errors that name the field and fix.

use super::{IdlePolicy, MachineSpec, Service, Store, SyncSpec};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest file name looked up from the working directory upwards.
pub const FILE_NAME: &str = "workstation.toml";

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
    /// The policy of team boxes (`workstation env`) when it differs from
    /// `[idle]`: for example up in working hours (`start` windows) and
    /// stopped when idle at night and at weekends.
    #[serde(default)]
    pub team_idle: Option<IdlePolicy>,
    #[serde(default)]
    pub sync: SyncSpec,
    /// Third-party callbacks fanned out to previews and team boxes.
    #[serde(default)]
    pub webhooks: super::Webhooks,
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
    /// The idle policy of a team box (`team`) or of an engineer's box.
    pub fn idle_for(&self, team: bool) -> &IdlePolicy {
        match &self.team_idle {
            Some(policy) if team => policy,
            _ => &self.idle,
        }
    }

    /// Finds `workstation.toml` in `start` or the nearest parent.
    pub fn find(start: &Path) -> Result<PathBuf, ConfigError> {
        start.ancestors().map(|d| d.join(FILE_NAME)).find(|p| p.is_file()).ok_or_else(|| ConfigError::NotFound { start: start.to_owned() })
    }

    pub fn load(path: &Path) -> Result<LoadedManifest, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let text = String::from_utf8_lossy(&bytes);
        let manifest = Self::parse(&text).map_err(|e| match e {
            ParseError::Syntax(message) => ConfigError::Parse { path: path.to_owned(), message },
            ParseError::Invalid(problems) => ConfigError::Invalid { path: path.to_owned(), problems },
        })?;
        Ok(LoadedManifest { path: path.to_owned(), manifest, hash: hex::encode(Sha256::digest(&bytes)) })
    }

    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| ParseError::Syntax(plain(&e.to_string())))?;
        // A box that resumes from hibernation can stop sooner (docs/idle.md).
        let default = super::default_idle_timeout(manifest.machine.hibernate);
        for policy in std::iter::once(&mut manifest.idle).chain(manifest.team_idle.as_mut()) {
            policy.timeout.get_or_insert(default);
        }
        let problems = manifest.validate();
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ParseError::Invalid(problems))
        }
    }
}

/// serde's and humantime's words for a wrong value ("expected u16",
/// "expected number at 0") in terms of what the field takes.
fn plain(message: &str) -> String {
    const SAYINGS: [(&str, &str); 5] = [
        ("expected u16", "expected a port number from 1 to 65535"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected number at 0", "expected a duration: a number with a unit, such as 90s, 30m, 2h or 1h30m"),
    ];
    let mut out = message.to_owned();
    for (jargon, plain) in SAYINGS {
        out = out.replace(jargon, plain);
    }
    // humantime names the position of a bad character; the unit list says more.
    if out.contains("unknown time unit") || out.contains("expected number at") {
        out.push_str("\n(a duration is a number with a unit, such as 90s, 30m, 2h or 1h30m)");
    }
    out
}

/// A program or store name that the manifest does not declare.
#[derive(Debug, thiserror::Error)]
#[error("no {what} {name:?} in the manifest; {what}s: {}", if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub known: Vec<String>,
}

impl Manifest {
    /// Every port the services declare, their fronts' too (their traffic
    /// is activity).
    pub fn service_ports(&self) -> Vec<u16> {
        self.services.values().flat_map(|s| s.ports.iter().copied().chain(s.front.map(|f| f.port))).collect()
    }

    /// Checks that `name` is one of the manifest's stores.
    pub fn check_store(&self, name: &str) -> Result<(), UnknownName> {
        if self.stores.contains_key(name) {
            return Ok(());
        }
        Err(UnknownName { what: "store", name: name.into(), known: self.stores.keys().cloned().collect() })
    }

    /// Checks that `name` is one of the manifest's services.
    pub fn check_service(&self, name: &str) -> Result<(), UnknownName> {
        if self.services.contains_key(name) {
            return Ok(());
        }
        Err(UnknownName { what: "service", name: name.into(), known: self.services.keys().cloned().collect() })
    }

    /// Checks that `name` is one of the manifest's services or stores.
    pub fn check_program(&self, name: &str) -> Result<(), UnknownName> {
        if self.services.contains_key(name) || self.stores.contains_key(name) {
            return Ok(());
        }
        let known = self.stores.keys().chain(self.services.keys()).cloned().collect();
        Err(UnknownName { what: "program", name: name.into(), known })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Syntax(String),
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SeedSource;
    use std::time::Duration;

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
        assert_eq!(m.idle.timeout(), Duration::from_secs(45 * 60));
        let hibernating = Manifest::parse(&MINIMAL.replace("[box]\n", "[box]\nhibernate = true\n")).unwrap();
        assert_eq!(hibernating.idle.timeout(), super::super::default_idle_timeout(true));
        assert!(hibernating.idle.timeout() < m.idle.timeout());
        assert!(m.services.is_empty());
    }

    #[test]
    fn example_manifests_are_valid() {
        for text in [include_str!("../../../examples/workstation.toml"), include_str!("../../../examples/local/workstation.toml")] {
            let m = Manifest::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(!m.services.is_empty() && !m.stores.is_empty() && !m.hostnames.is_empty());
        }
    }

    #[test]
    fn seed_formats_come_from_names_or_the_format_field() {
        let store = |extra: &str| -> Vec<String> { problems_or_none(&format!("{MINIMAL}\n[stores.s]\n{extra}")) };
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
        assert!(store("kind = \"mysql\"\nseed = \"seeds/shop.sql\"").is_empty());
        assert!(store("kind = \"mysql\"\nseed = \"seeds/shop\"").is_empty(), "a directory of CSV files");
        let p = store("kind = \"mysql\"\nseed = \"a.dump\"");
        assert!(p[0].contains("not a mysql snapshot format"), "{p:?}");
        let p = store("kind = \"mysql\"\nurl_env = \"1-BAD\"");
        assert!(p[0].starts_with("stores.s.url_env:") && p[0].contains("A-Z, 0-9 and '_'"), "{p:?}");
    }

    #[test]
    fn webhooks_go_to_a_port_the_box_opens_at_a_path() {
        let p = problems_or_none(&format!("{MINIMAL}\n[webhooks]\nstripe = \"/hooks/stripe\"\n"));
        assert!(p[0].starts_with("webhooks.port: 80 is not a service's port or front"), "{p:?}");
        let ok = format!("{MINIMAL}\n[webhooks]\nport = 8080\nstripe = \"/hooks/stripe\"\n[services.api]\ncommand = \"x\"\nports = [8080]\n");
        assert!(problems_or_none(&ok).is_empty());
        let p = problems_or_none(&ok.replace("/hooks/stripe", "hooks/stripé"));
        assert!(p[0].starts_with("webhooks.stripe:") && p[0].contains("starting with '/'"), "{p:?}");
    }

    #[test]
    fn services_get_each_stores_url_under_its_name_or_the_one_chosen() {
        let m = Manifest::parse(&format!(
            "{MINIMAL}\n[stores.order-db]\nkind = \"mysql\"\nport = 3307\n[stores.shop]\nkind = \"mysql\"\ndatabase = \"shop_v2\"\nurl_env = \"WESTAGE_MYSQL_URL\"\n"
        ))
        .unwrap();
        let (a, b) = (&m.stores["order-db"], &m.stores["shop"]);
        assert_eq!((a.url_env("order-db"), a.url("order-db")), ("WORKSTATION_MYSQL_ORDER_DB_URL".into(), "mysql://root@127.0.0.1:3307/order_db".into()));
        assert_eq!((b.url_env("shop"), b.url("shop")), ("WESTAGE_MYSQL_URL".into(), "mysql://root@127.0.0.1:3306/shop_v2".into()));
    }

    #[test]
    fn an_sqs_stores_queues_are_checked_and_named_in_variables() {
        let m =
            Manifest::parse(&format!("{MINIMAL}\n[stores.jobs]\nkind = \"sqs\"\nurl_env = \"WESTAGE_SQS_URL\"\nqueues = [\"emails\", \"pay-outs.fifo\"]\n"))
                .unwrap();
        let jobs = &m.stores["jobs"];
        assert_eq!(jobs.queue_env("jobs", "pay-outs.fifo", false), "WESTAGE_SQS_PAY_OUTS_URL");
        assert_eq!(jobs.queue_env("jobs", "emails", true), "WESTAGE_SQS_EMAILS_DLQ_URL");
        let bad = problems(&format!(
            "{MINIMAL}\n[stores.jobs]\nkind = \"sqs\"\nseed = \"x.resp\"\nqueues = [\"Emails\", \"a_b\", \"mail-dlq\", \"pay\", \"pay.fifo\", \"{}\"]\n\
             [stores.more]\nkind = \"sqs\"\nqueues = []\n[stores.cache]\nkind = \"redis\"\nqueues = [\"x\"]\n",
            "q".repeat(41)
        ));
        for want in [
            "stores.cache.queues: only an sqs store has queues",
            "stores.jobs.seed: an sqs store has no snapshot",
            "stores.jobs.queues[0]: \"Emails\" is not a queue name",
            "stores.jobs.queues[1]: \"a_b\" is not a queue name",
            "stores.jobs.queues[2]: \"mail-dlq\": every queue gets a dead-letter queue",
            "stores.jobs.queues[4]: \"pay.fifo\" and \"pay\" would share one variable",
            "stores.jobs.queues[5]",
            "stores.more.queues: is empty",
            "stores.more: is a second sqs store",
        ] {
            assert!(bad.iter().any(|p| p.starts_with(want)), "{want} not in {bad:#?}");
        }
    }

    #[test]
    fn subnets_and_fallback_types_are_an_ordered_list_of_choices() {
        let m = Manifest::parse(&format!("{MINIMAL}subnets = [\"subnet-a\", \"subnet-b\"]\nfallback_instance_types = [\"m6i.large\"]\n")).unwrap();
        assert_eq!(m.machine.subnet_choices(), [Some("subnet-a".to_string()), Some("subnet-b".to_string())]);
        assert_eq!(m.machine.instance_types().collect::<Vec<_>>(), ["m7i.large", "m6i.large"]);
        assert_eq!(Manifest::parse(MINIMAL).unwrap().machine.subnet_choices(), [None]);
        let bad = problems(&format!(
            "{MINIMAL}subnet = \"subnet-a\"\nsubnets = [\"subnet-a\", \"vpc-1\", \"subnet-a\"]\nfallback_instance_types = [\"m7i.large\"]\n"
        ));
        for want in [
            "box.subnets: set either subnet or subnets",
            "box.subnets[1]: \"vpc-1\" is not a subnet id",
            "box.subnets[2]: \"subnet-a\" is listed twice",
            "box.fallback_instance_types[0]: \"m7i.large\" is already tried",
        ] {
            assert!(bad.iter().any(|p| p.starts_with(want)), "{want} not in {bad:#?}");
        }
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
    fn out_of_range_values_say_what_is_allowed() {
        let text = format!("{MINIMAL}\n[services.api]\ncommand = \"x\"\nports = [80810]\n");
        let ParseError::Syntax(msg) = Manifest::parse(&text).unwrap_err() else { panic!() };
        assert!(msg.contains("port number from 1 to 65535") && !msg.contains("u16"), "{msg}");
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
        assert_eq!("s3://b/k/x.rdb".parse::<SeedSource>(), Ok(SeedSource::S3 { bucket: "b".into(), key: "k/x.rdb".into() }));
        assert!("s3://b".parse::<SeedSource>().is_err());
        assert_eq!("seeds/a.rdb".parse::<SeedSource>(), Ok(SeedSource::File("seeds/a.rdb".into())));
    }
}
