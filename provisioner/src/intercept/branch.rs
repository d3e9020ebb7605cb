//! `--branch-db STORE`, as the laptop sees it: which stores can be
//! branched, and the command's environment pointed at the branches (the
//! box makes them: boxside/branch.rs).

use std::collections::BTreeMap;

use super::plan::Plan;
use crate::boxside::branch::{Branch, BranchSpec};
use crate::manifest::{Manifest, StoreKind};

#[derive(Debug, thiserror::Error)]
pub enum BranchDbError {
    #[error(transparent)]
    Unknown(#[from] crate::manifest::UnknownName),
    #[error("--branch-db {store}: a {kind} store cannot be branched; postgres and redis stores can")]
    Kind { store: String, kind: &'static str },
    #[error(
        "--keep with --branch-db {store}: a redis branch is always dropped (kept, its numbered database would be taken for good); keep only postgres branches"
    )]
    KeepRedis { store: String },
}

/// What the box branches for `stores` (`keep`: the branches outlive the
/// intercept).
pub fn specs(manifest: &Manifest, stores: &[String], keep: bool) -> Result<Vec<BranchSpec>, BranchDbError> {
    stores
        .iter()
        .map(|name| {
            manifest.check_store(name)?;
            let store = &manifest.stores[name];
            let database = match store.kind {
                StoreKind::Postgres => Some(store.database(name)),
                StoreKind::Redis if keep => return Err(BranchDbError::KeepRedis { store: name.clone() }),
                StoreKind::Redis => None,
                other => return Err(BranchDbError::Kind { store: name.clone(), kind: other.as_str() }),
            };
            Ok(BranchSpec { store: name.clone(), port: store.port(), database })
        })
        .collect()
}

/// `environment` with each branched store's address naming the branch:
/// `...:PORT/app` becomes `...:PORT/app__alice_mac` (postgres),
/// `redis://...:PORT/0` or `redis://...:PORT` becomes `.../3` (redis; the
/// copy is of database 0, so `/2` stays), at
/// the store's port on this laptop.
pub fn point_at(environment: &mut BTreeMap<String, String>, plan: &Plan, specs: &[BranchSpec], branches: &[Branch]) {
    for b in branches {
        let (Some(spec), Some(out)) = (specs.iter().find(|s| s.store == b.store), plan.outgoing.iter().find(|o| o.program == b.store)) else { continue };
        let at = format!(":{}", out.local_port);
        for value in environment.values_mut() {
            *value = match &spec.database {
                Some(db) => replace_path(value, &at, |path| (path == db).then(|| b.name.clone())),
                // The copy is of database 0: another database's address stays.
                None => replace_path(value, &at, |path| (path == "0" || path.is_empty()).then(|| b.name.clone())),
            };
        }
    }
}

/// `value` with the path segment after each `at` (`:PORT`) replaced where
/// `new(segment)` says; a redis address without one gets it appended.
fn replace_path(value: &str, at: &str, new: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find(at) {
        out.push_str(&rest[..i + at.len()]);
        rest = &rest[i + at.len()..];
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue; // another port (`:54320`)
        }
        if let Some(path) = rest.strip_prefix('/') {
            let end = path.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(path.len());
            if let Some(name) = new(&path[..end]) {
                out.push('/');
                out.push_str(&name);
                rest = &path[end..];
            }
        } else if rest.is_empty() && value.starts_with("redis") {
            if let Some(name) = new("") {
                out.push('/');
                out.push_str(&name);
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intercept::plan::Outgoing;

    #[test]
    fn addresses_point_at_the_branches() {
        let plan = Plan {
            service: "api".into(),
            incoming: vec![],
            outgoing: vec![
                Outgoing { program: "main".into(), box_port: 5432, local_port: 5432 },
                Outgoing { program: "cache".into(), box_port: 6379, local_port: 40001 },
            ],
            environment: BTreeMap::new(),
        };
        let specs = ["main=postgres:5432:app".parse().unwrap(), "cache=redis:6379".parse().unwrap()];
        let branches = [
            Branch { store: "main".into(), name: "app__alice".into(), how: "template".into(), ms: 1 },
            Branch { store: "cache".into(), name: "3".into(), how: "copy".into(), ms: 1 },
        ];
        let mut env: BTreeMap<String, String> = [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/app?sslmode=disable"),
            ("OTHER_DB", "postgres://127.0.0.1:5432/application"),
            ("REDIS_URL", "redis://127.0.0.1:40001/0"),
            ("REDIS_BARE", "redis://127.0.0.1:40001"),
            ("REDIS_JOBS", "redis://127.0.0.1:40001/2"),
            ("ELSE", "http://127.0.0.1:54321/app"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        point_at(&mut env, &plan, &specs, &branches);
        assert_eq!(env["DATABASE_URL"], "postgres://postgres@127.0.0.1:5432/app__alice?sslmode=disable");
        assert_eq!(env["OTHER_DB"], "postgres://127.0.0.1:5432/application", "another database");
        assert_eq!((env["REDIS_URL"].as_str(), env["REDIS_BARE"].as_str()), ("redis://127.0.0.1:40001/3", "redis://127.0.0.1:40001/3"));
        assert_eq!(env["REDIS_JOBS"], "redis://127.0.0.1:40001/2", "not the database copied");
        assert_eq!(env["ELSE"], "http://127.0.0.1:54321/app", "another port");
    }
}
