//! `workstation box mysql-load`: a mysql store's seed, read on stdin (from
//! the laptop's SSH channel or curl) and loaded on several sessions at
//! once: a dump's rows (dump.rs) or a CSV file's records (csv.rs). One
//! session, as `mariadb < dump` uses, leaves the server's other cores idle
//! while it parses and inserts.

mod client;
mod csv;
mod dump;
mod kinds;
mod sessions;
mod statements;

pub use client::{Client, LoadError, Loaded};
pub use csv::load as csv;
pub use dump::load as dump;
