//! What can go wrong loading a store.

use std::path::PathBuf;
use std::time::Duration;

use crate::stack::shell::ShellError;

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
    #[error("stores.{store}.seed: {path} does not look like {format} ({detail}); check the file, or set stores.{store}.format")]
    NotFormat { store: String, path: PathBuf, format: &'static str, detail: String },
    #[error(
        "stores.{store}.seed: {path} is outside the manifest's directory {dir}; move the snapshot under it, \
         or pass --allow-outside if you trust this manifest (seeding copies the file to the box)"
    )]
    Outside { store: String, path: PathBuf, dir: PathBuf },
    #[error("store {store} is seeded from S3 ({uri}): {detail}")]
    S3 { store: String, uri: String, detail: String },
    #[error(transparent)]
    Shell(#[from] ShellError),
}
