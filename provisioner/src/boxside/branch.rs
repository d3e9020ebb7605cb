//! Data branches for a personal intercept (`--branch-db STORE`): the
//! laptop's service gets its own copy of a store's data on the box, so its
//! writes never reach the shared data.
//! - postgres: `CREATE DATABASE copy TEMPLATE db` (PostgreSQL copies the
//!   files); it needs the source free of sessions, which a shared box's
//!   services rarely leave it, so on "being accessed by other users" the
//!   copy is `pg_dump | psql` (a consistent snapshot, with sessions on).
//! - redis: one script copies every key of database 0 into an empty
//!   numbered database with `COPY ... DB n` (Redis >= 6.2), atomically
//!   (redis answers nobody else meanwhile: sized for a box's dev data).

use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What to branch: `STORE=postgres:PORT:DATABASE` or `STORE=redis:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchSpec {
    pub store: String,
    pub port: u16,
    /// The postgres database; `None` for redis.
    pub database: Option<String>,
}

impl std::str::FromStr for BranchSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not STORE=postgres:PORT:DATABASE or STORE=redis:PORT");
        let (store, rest) = s.split_once('=').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
        let plain = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !plain(store) {
            return Err(bad());
        }
        match parts.as_slice() {
            ["postgres", p, db] if plain(db) && !db.contains('-') => Ok(BranchSpec { store: store.into(), port: port(p)?, database: Some((*db).into()) }),
            ["redis", p] => Ok(BranchSpec { store: store.into(), port: port(p)?, database: None }),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for BranchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.database {
            Some(db) => write!(f, "{}=postgres:{}:{db}", self.store, self.port),
            None => write!(f, "{}=redis:{}", self.store, self.port),
        }
    }
}

/// A branch made (or found kept from an earlier `--keep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub store: String,
    /// The postgres database name, or the redis database number.
    pub name: String,
    /// "template", "dump", "copy" (redis) or "kept" (a finished postgres
    /// branch from an earlier `--keep`).
    pub how: String,
    pub ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot branch store {store}: {detail}")]
pub struct BranchError {
    pub store: String,
    pub detail: String,
}

/// The branch's postgres name for `by`: the database, then who, in SQL's
/// plain identifier characters, then a hash of `by` (so `alice@mac` and
/// `alice.mac`, or two long names cut short, never meet), within 63 bytes.
pub fn postgres_name(database: &str, by: &str) -> String {
    use sha2::Digest;
    let who: String = by.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let hash = hex::encode(&sha2::Sha256::digest(by.as_bytes())[..4]);
    let base: String = format!("{database}__{who}").chars().take(54).collect();
    format!("{base}_{hash}")
}

/// Whether `name` is what [`choose`] gives for `spec`: checked where the
/// laptop reads it back.
pub fn valid_name(spec: &BranchSpec, name: &str) -> bool {
    match spec.database {
        Some(_) => !name.is_empty() && name.len() <= 63 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        None => name.parse::<u32>().is_ok_and(|n| (1..16).contains(&n)),
    }
}

/// The branch's name for `by`, which no live session's claim in `taken`
/// has: for postgres, [`postgres_name`]; for redis, the lowest numbered
/// database (1-15) that is empty, so the box's own data in another
/// numbered database is never touched.
pub fn choose(spec: &BranchSpec, by: &str, taken: &[String]) -> Result<String, BranchError> {
    let fail = |detail: String| BranchError { store: spec.store.clone(), detail };
    match &spec.database {
        Some(db) => {
            let name = postgres_name(db, by);
            if taken.contains(&name) {
                return Err(fail(format!("another intercept of yours uses its branch {name}; end that one first")));
            }
            Ok(name)
        }
        None => {
            for n in (1..16u32).filter(|n| !taken.contains(&n.to_string())) {
                let size = run("redis-cli", &["-p", &spec.port.to_string(), "-n", &n.to_string(), "DBSIZE"]).map_err(fail)?;
                if size.trim() == "0" {
                    return Ok(n.to_string());
                }
            }
            Err(fail("no numbered database 1-15 is empty and free".into()))
        }
    }
}

/// What marks a postgres database as a finished branch: one that exists
/// without it is what a killed session left half-made.
const FINISHED: &str = "workstation branch";

/// Makes the branch `name` of `spec` (from [`choose`]); a finished
/// postgres branch kept from an earlier `--keep` is used as it is.
pub fn make(spec: &BranchSpec, name: &str) -> Result<Branch, BranchError> {
    let start = Instant::now();
    let fail = |detail: String| BranchError { store: spec.store.clone(), detail };
    let how = match &spec.database {
        Some(db) => {
            let comment =
                psql(spec.port, "postgres", &format!("SELECT coalesce(shobj_description(oid, 'pg_database'), '-') FROM pg_database WHERE datname = '{name}'"))
                    .map_err(fail)?;
            match comment.trim() {
                FINISHED => "kept",
                found => {
                    if !found.is_empty() {
                        drop_postgres(spec.port, name).map_err(fail)?;
                    }
                    let how = copy_postgres(spec.port, db, name).map_err(fail)?;
                    psql(spec.port, "postgres", &format!("COMMENT ON DATABASE \"{name}\" IS '{FINISHED}'")).map_err(fail)?;
                    how
                }
            }
        }
        None => {
            run("redis-cli", &["-p", &spec.port.to_string(), "-n", "0", "EVAL", REDIS_COPY, "0", name]).map_err(fail)?;
            "copy"
        }
    };
    Ok(Branch { store: spec.store.clone(), name: name.into(), how: how.into(), ms: start.elapsed().as_millis() as u64 })
}

/// `CREATE DATABASE ... TEMPLATE`, or, with sessions on the source, a dump.
fn copy_postgres(port: u16, db: &str, name: &str) -> Result<&'static str, String> {
    match psql(port, "postgres", &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{db}\"")) {
        Ok(_) => Ok("template"),
        Err(e) if e.contains("is being accessed by other users") => {
            psql(port, "postgres", &format!("CREATE DATABASE \"{name}\""))?;
            let pipe = format!(
                "set -o pipefail; pg_dump -h 127.0.0.1 -p {port} -U postgres --no-owner {db} | PGOPTIONS='-c synchronous_commit=off -c maintenance_work_mem=256MB' psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {port} -U postgres -d {name} >/dev/null"
            );
            run("bash", &["-c", &pipe]).map(|_| "dump").inspect_err(|_| {
                let _ = drop_postgres(port, name);
            })
        }
        Err(e) => Err(e),
    }
}

/// Every key of the current database copied to database ARGV[1].
const REDIS_COPY: &str = r#"local cursor, n = "0", 0
repeat
  local page = redis.call("SCAN", cursor, "COUNT", 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do redis.call("COPY", key, key, "DB", ARGV[1], "REPLACE"); n = n + 1 end
until cursor == "0"
return n"#;

/// Drops the branch (its sessions are ended: the laptop's process is gone
/// or going).
pub fn drop_branch(spec: &BranchSpec, branch: &Branch) -> Result<(), BranchError> {
    let fail = |detail: String| BranchError { store: spec.store.clone(), detail };
    match &spec.database {
        Some(_) => drop_postgres(spec.port, &branch.name).map_err(fail),
        None => run("redis-cli", &["-p", &spec.port.to_string(), "-n", &branch.name, "FLUSHDB"]).map(drop).map_err(fail),
    }
}

fn drop_postgres(port: u16, name: &str) -> Result<(), String> {
    psql(port, "postgres", &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).map(drop)
}

/// Runs one SQL command as postgres over the box's loopback (as the seeds do).
fn psql(port: u16, database: &str, sql: &str) -> Result<String, String> {
    run("psql", &["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", database, "-c", sql])
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run {program}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // redis-cli answers errors on stdout with status 0.
    if !out.status.success() || stdout.starts_with("ERR") || stdout.starts_with("(error)") {
        return Err(format!("{program}: {}", if stderr.is_empty() { stdout.trim() } else { &stderr }));
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_names_are_plain() {
        for good in ["main=postgres:5432:app", "cache=redis:6379"] {
            assert_eq!(good.parse::<BranchSpec>().unwrap().to_string(), good);
        }
        for bad in ["main", "main=postgres:5432", "main=postgres:5432:a;b", "m;x=redis:1", "c=redis:0", "c=mysql:1"] {
            assert!(bad.parse::<BranchSpec>().is_err(), "{bad}");
        }
        let name = postgres_name("app", "alice@mac.local");
        assert!(name.starts_with("app__alice_mac_local_") && name.len() == "app__alice_mac_local_".len() + 8, "{name}");
        assert_ne!(postgres_name("app", "alice@mac"), postgres_name("app", "alice.mac"));
        assert_ne!(postgres_name("app", &"x".repeat(100)), postgres_name("app", &format!("{}y", "x".repeat(100))));
        assert_eq!(postgres_name("app", &"x".repeat(100)).len(), 63);
        let pg: BranchSpec = "main=postgres:5432:app".parse().unwrap();
        let redis: BranchSpec = "cache=redis:6379".parse().unwrap();
        assert!(valid_name(&pg, &name) && !valid_name(&pg, "a;b") && !valid_name(&pg, ""));
        assert!(valid_name(&redis, "3") && !valid_name(&redis, "0") && !valid_name(&redis, "16") && !valid_name(&redis, "x"));
    }
}
