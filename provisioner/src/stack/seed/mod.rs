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

mod csv;
mod documents;
mod error;
pub mod hash_cache;
mod load;
mod mysql;
mod postgres;
mod redis;
mod report;
mod snapshot;

pub use documents::{bulk_command, mongorestore_command};
pub use error::SeedError;
pub use load::{seed, seed_all, wait_ready};
pub use redis::{json_entry_to_resp, resp_command, RespCheck};
pub use report::{Phase, SeedOutcome, SeedReport};
pub use snapshot::Snapshot;
