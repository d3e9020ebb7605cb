//! MySQL (MariaDB): a `mysqldump` file or CSV files (`LOAD DATA LOCAL
//! INFILE`, tables at once), loaded on several sessions by `workstation
//! box mysql-load` on the box into a staging database, then swapped in
//! table by table in one `RENAME TABLE`.
//!
//! MySQL cannot rename a database, and `RENAME TABLE` moves base tables
//! only (a view, trigger, routine or event cannot change database), so a
//! snapshot that makes any of those is refused before the swap.
//!
//! The load runs as an account that may touch only the staging database:
//! a dump made with `--databases` (its own `USE` and `CREATE DATABASE`)
//! fails there instead of writing to the live database.

use std::path::PathBuf;
use std::time::Duration;

use super::csv::file_name;
use super::load::Loader;
use super::SeedError;
use crate::stack::layout::sh;
use crate::stack::shell::ShellError;
use crate::stack::stores::mysql_client;

/// The account loads run as, allowed only the staging database.
const LOAD_USER: &str = "workstation_load";

impl Loader<'_> {
    fn mysql_databases(&self) -> (String, String, String) {
        let db = self.store.database(self.name);
        (format!("{db}__ws_load"), format!("{db}__ws_old"), db)
    }

    fn mysql_root(&self) -> String {
        mysql_client(self.store, "root")
    }

    /// The loading account's client, in the staging database, refusing
    /// client commands (`\!` runs a shell).
    fn mysql_loader(&self) -> String {
        let (load, _, _) = self.mysql_databases();
        format!("{} --database={load} --max-allowed-packet=1G --sandbox", mysql_client(self.store, LOAD_USER))
    }

    /// A fresh staging database, and the account that loads into it.
    async fn mysql_fresh_staging(&self) -> Result<(), SeedError> {
        let (load, _, _) = self.mysql_databases();
        // '_' is a wildcard in a GRANT's database name.
        let grant_db = load.replace('_', "\\_");
        let sql = format!(
            "DROP DATABASE IF EXISTS `{load}`;\n\
             CREATE DATABASE `{load}` CHARACTER SET utf8mb4;\n\
             CREATE USER IF NOT EXISTS '{LOAD_USER}'@'127.0.0.1';\n\
             GRANT ALL ON `{grant_db}`.* TO '{LOAD_USER}'@'127.0.0.1';\n"
        );
        self.run_input("creating the staging database", &self.mysql_root(), sql.as_bytes()).await?;
        Ok(())
    }

    /// `workstation box mysql-load` into the staging database, as the
    /// loading account: the seed on stdin, on several sessions at once
    /// (or `sessions`).
    fn mysql_box_loader(&self, sessions: Option<u8>, format: &str) -> String {
        let (load, _, _) = self.mysql_databases();
        let sessions = sessions.map(|n| format!(" --sessions {n}")).unwrap_or_default();
        format!("{} box mysql-load --port {} --user {LOAD_USER} --database {}{sessions} {format}", sh(&self.onbox.layout.bin), self.store.port(), sh(&load))
    }

    /// `mysqldump` output, streamed into `box mysql-load`: its rows on
    /// several sessions, everything else in order.
    pub(super) async fn mysql_dump(&self) -> Result<(), SeedError> {
        let mut sessions = None;
        loop {
            self.mysql_fresh_staging().await?;
            match self.stream(&self.mysql_box_loader(sessions, "dump")).await {
                Err(SeedError::Shell(ShellError::Failed { stderr, .. })) if sessions.is_none() && lock_conflict(&stderr) => sessions = Some(1),
                Err(SeedError::Shell(ShellError::Failed { stderr, .. })) => {
                    let detail = if stderr.contains("Access denied") && stderr.contains("to database") {
                        format!(
                            "the dump names a database of its own (made with mysqldump --databases or --all-databases); dump one database without them: {}",
                            stderr.trim()
                        )
                    } else {
                        stderr.trim().to_string()
                    };
                    return Err(self.malformed(detail));
                }
                other => break drop(other?),
            }
        }
        self.mysql_swap().await
    }

    /// `schema.sql`, then the tables' CSV files, four tables at once (a
    /// file may take up to eight sessions of its own: 32 stays well under
    /// the server's default 151 connections).
    pub(super) async fn mysql_csv(&self) -> Result<(), SeedError> {
        use futures::StreamExt;
        let csv = self.csv_snapshot()?;
        let mut sessions = None;
        loop {
            self.mysql_fresh_staging().await?;
            if let Some(schema) = &csv.schema {
                let loaded = self.run_input("loading schema.sql", &self.mysql_loader(), self.open(schema).await?).await;
                self.named(loaded, &[])?;
            }
            let loads = futures::stream::iter(csv.tables.iter().map(|(table, files)| self.load_table(table, files, sessions))).buffer_unordered(4);
            let loaded: Result<Vec<()>, SeedError> = loads.collect::<Vec<_>>().await.into_iter().collect();
            match loaded {
                // Pieces that went in before the conflict are in the
                // staging tables: all of it is loaded again, from fresh.
                Err(SeedError::Shell(ShellError::Failed { stderr, .. })) if sessions.is_none() && lock_conflict(&stderr) => sessions = Some(1),
                other => break drop(other?),
            }
        }
        self.mysql_swap().await
    }

    /// A table's CSV files, one after the other, each cut into pieces that
    /// load at once (`box mysql-load csv`). A duplicate key or a value
    /// that does not fit fails the load, naming the file: `LOCAL` makes
    /// the server take such rows as warnings (it cannot stop the client
    /// mid-file), and `box mysql-load` fails on any warning.
    async fn load_table(&self, table: &str, files: &[PathBuf], sessions: Option<u8>) -> Result<(), SeedError> {
        for file in files {
            let command = self.mysql_box_loader(sessions, &format!("csv --header --table {}", sh(table)));
            match self.run_input(&format!("loading {}", file_name(file)), &command, self.open(file).await?).await {
                // Left as it is: mysql_csv loads all again on one session.
                Err(e @ ShellError::Failed { .. }) if sessions.is_none() && matches!(&e, ShellError::Failed { stderr, .. } if lock_conflict(stderr)) => {
                    return Err(SeedError::Shell(e))
                }
                loaded => drop(self.named(loaded, std::slice::from_ref(file))?),
            }
        }
        Ok(())
    }

    /// Moves the live database's tables aside and the loaded ones in, in
    /// one `RENAME TABLE` (atomic: services see the old tables or the new).
    /// Sessions using the database are ended first, as they would hold the
    /// tables' locks; the replaced tables are dropped in the background
    /// (a drop left unfinished is redone by the next swap, first thing).
    async fn mysql_swap(&self) -> Result<(), SeedError> {
        self.identity()?; // a snapshot changed under the load stays out
        let (load, old, db) = self.mysql_databases();
        let extras = self.run_input("checking the loaded database", &format!("{} -N", self.mysql_root()), not_tables(&load).as_bytes()).await?;
        let extras: Vec<&str> = extras.lines().filter(|l| !l.trim().is_empty()).collect();
        if !extras.is_empty() {
            return Err(self.malformed(format!(
                "the snapshot makes {}; a mysql store swaps in base tables only (RENAME TABLE cannot move anything else between databases): remove them from the snapshot",
                extras.join(", ")
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.end_sessions(&[&db, &old]).await?;
            match self.run_input("swapping the loaded tables in", &format!("{} -N", self.mysql_root()), swap_tables(&load, &old, &db).as_bytes()).await {
                Err(ShellError::Failed { stderr, .. }) if attempt < 3 && stderr.contains("Lock wait timeout") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => break drop(other?),
            }
        }
        // Only the replaced tables go in the background: the staging database,
        // empty now, was dropped by the swap itself, so a late drop cannot
        // take the next seed's staging database with it.
        let drop = format!("{} -e {}", self.mysql_root(), sh(&format!("DROP DATABASE IF EXISTS `{old}`")));
        self.run("dropping the replaced tables (in the background)", &format!("(setsid {drop} </dev/null >/dev/null 2>&1 &)")).await?;
        Ok(())
    }
}

impl Loader<'_> {
    /// Ends the sessions whose current database is one of `databases`
    /// (services reconnect), as an open transaction's locks would hold
    /// the swap up. One that ended meanwhile is no error (`--force`).
    async fn end_sessions(&self, databases: &[&str]) -> Result<(), SeedError> {
        let names: Vec<String> = databases.iter().map(|d| format!("'{d}'")).collect();
        let query = format!("SELECT ID FROM information_schema.PROCESSLIST WHERE DB IN ({}) AND ID <> CONNECTION_ID()", names.join(", "));
        let ids = self.run("finding sessions on the database", &format!("{} -N -e {}", self.mysql_root(), sh(&query))).await?;
        let kills: String = ids.split_whitespace().filter(|id| id.chars().all(|c| c.is_ascii_digit())).map(|id| format!("KILL CONNECTION {id};")).collect();
        if !kills.is_empty() {
            self.run("ending sessions on the database", &format!("{} --force -e {} 2>/dev/null || true", self.mysql_root(), sh(&kills))).await?;
        }
        Ok(())
    }
}

/// Sessions loading one table at once can deadlock, but only where a
/// row is refused anyway (a duplicate key takes a shared lock): loaded
/// again on one session, the load fails with the row's own error.
fn lock_conflict(stderr: &str) -> bool {
    stderr.contains("Deadlock found") || stderr.contains("Lock wait timeout")
}

/// Lists what the staging database holds besides plain base tables:
/// views, triggers, routines, events, and MariaDB's system-versioned
/// tables and sequences (their own TABLE_TYPE, which the swap would not
/// move).
fn not_tables(load: &str) -> String {
    format!(
        "SELECT CONCAT(LOWER(TABLE_TYPE), ' ', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{load}' AND TABLE_TYPE NOT IN ('BASE TABLE', 'VIEW')\n\
         UNION ALL SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{load}'\n\
         UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{load}'\n\
         UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{load}'\n\
         UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{load}';\n"
    )
}

/// The swap: one RENAME TABLE of its base tables to `old` and the staging ones to `db` (left to
/// right, so a name is free when it is taken). Names are quoted as
/// identifiers (a backtick doubled).
fn swap_tables(load: &str, old: &str, db: &str) -> String {
    let moves = |from: &str, to: &str| {
        format!(
            "SELECT CONCAT('`{from}`.`', REPLACE(TABLE_NAME, '`', '``'), '` TO `{to}`.`', REPLACE(TABLE_NAME, '`', '``'), '`') AS m \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{from}' AND TABLE_TYPE = 'BASE TABLE'"
        )
    };
    format!(
        "SET SESSION lock_wait_timeout = 10;\n\
         CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;\n\
         DROP DATABASE IF EXISTS `{old}`;\n\
         CREATE DATABASE `{old}`;\n\
         SET @moves = (SELECT GROUP_CONCAT(m ORDER BY n SEPARATOR ', ') FROM ({} UNION ALL {}) t);\n\
         SET @s = IF(@moves IS NULL, 'DO 0', CONCAT('RENAME TABLE ', @moves));\n\
         PREPARE swap FROM @s;\n\
         EXECUTE swap;\n\
         DROP DATABASE `{load}`;\n",
        moves(db, old).replace(" AS m ", " AS m, 0 AS n "),
        moves(load, db).replace(" AS m ", " AS m, 1 AS n "),
    )
}
