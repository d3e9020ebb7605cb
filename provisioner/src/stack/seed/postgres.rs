//! PostgreSQL: a dump (`pg_restore`) or CSV files (`COPY`) loaded into a
//! staging database, then swapped in by renaming.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::csv::{file_name, CsvSnapshot};
use super::load::Loader;
use super::SeedError;
use crate::stack::layout::sh;
use crate::stack::shell::ShellError;

impl Loader<'_> {
    fn psql(&self, database: &str) -> String {
        format!("psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {} -U postgres -d {database}", self.store.port())
    }

    fn databases(&self) -> (String, String, String) {
        let db = self.store.database(self.name);
        (format!("{db}__ws_load"), format!("{db}__ws_old"), db)
    }

    pub(super) async fn postgres_fresh_staging(&self) -> Result<(), SeedError> {
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
    pub(super) async fn postgres_dump(&self) -> Result<(), SeedError> {
        let staged = self.staged_path();
        self.stage(&staged).await?;
        if !self.check(&format!("pg_restore --list {} >/dev/null 2>&1", sh(&staged))).await? {
            let _ = self.run("removing the rejected snapshot", &format!("rm -f {}", sh(&staged))).await;
            return Err(self.malformed("pg_restore cannot read its table of contents (not a pg_dump -Fc file, or truncated)".into()));
        }
        self.postgres_fresh_staging().await?;
        let (load, _, _) = self.databases();
        let restore = format!(
            "pg_restore -h 127.0.0.1 -p {} -U postgres -d {load} --jobs=\"$(nproc)\" --no-owner --no-privileges --exit-on-error {}",
            self.store.port(),
            sh(&staged)
        );
        let restored = self.run("restoring the dump (pg_restore)", &restore).await;
        let _ = self.run("removing the staged dump", &format!("rm -f {}", sh(&staged))).await;
        if let Err(ShellError::Failed { stderr, .. }) = &restored {
            return Err(self.malformed(format!("pg_restore failed: {}", stderr.trim())));
        }
        restored?;
        self.postgres_swap().await
    }

    /// PostgreSQL's bulk-load path: `schema.sql`; its keys and indexes
    /// set aside; every table's CSV at once (`\copy ... FREEZE` into a
    /// table emptied in the same transaction, `synchronous_commit` off);
    /// then the keys and indexes built once over all rows, tables at once,
    /// and the foreign keys, which check every row.
    pub(super) async fn postgres_csv(&self) -> Result<(), SeedError> {
        let csv = self.csv_snapshot()?;
        self.postgres_fresh_staging().await?;
        let (load, _, _) = self.databases();
        if let Some(schema) = &csv.schema {
            let loaded = self.run_input("loading schema.sql", &format!("{} --single-transaction -f -", self.psql(&load)), self.open(schema).await?).await;
            self.named(loaded, &[])?;
        }
        let deferred = self.set_keys_aside(&load).await?;
        let copies = csv.tables.iter().map(|(table, files)| self.copy_table(&load, table, files, deferred.empty.contains(table)));
        futures::future::join_all(copies).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        for phase in [KeyPhase::Indexes, KeyPhase::ForeignKeys] {
            self.build_keys(&load, &deferred, phase, &csv).await?;
        }
        self.postgres_swap().await
    }

    /// Drops the staging database's keys (primary, unique, exclusion,
    /// foreign) and other indexes after `schema.sql`, returning how to
    /// build them again, and which tables are empty.
    async fn set_keys_aside(&self, load: &str) -> Result<SetAside, SeedError> {
        let out = self
            .run_input("setting keys and indexes aside", &format!("{} -A -t --single-transaction -f -", self.psql(load)), SET_KEYS_ASIDE.as_bytes())
            .await?;
        let mut lines = out.lines().filter(|l| !l.trim().is_empty());
        let (Some(Ok(keys)), Some(Ok(empty))) = (lines.next().map(serde_json::from_str), lines.next().map(serde_json::from_str)) else {
            return Err(SeedError::Rejected {
                store: self.name.into(),
                detail: format!("setting keys aside: expected two JSON lists from psql, got {:?}", out.trim()),
            });
        };
        Ok(SetAside { keys, empty })
    }

    /// A table's CSV files, in order, in one session. The first goes in
    /// with FREEZE (rows written already visible to all, no later pass to
    /// set hint bits) when `schema.sql` left the table empty: FREEZE needs
    /// the table emptied in the same transaction.
    async fn copy_table(&self, load: &str, table: &str, files: &[PathBuf], empty: bool) -> Result<(), SeedError> {
        for (i, file) in files.iter().enumerate() {
            let freeze = i == 0 && empty;
            let copy = format!("\\copy {table} FROM STDIN WITH (FORMAT csv, HEADER true{})", if freeze { ", FREEZE true" } else { "" });
            let commands = if freeze { vec!["BEGIN".to_string(), format!("TRUNCATE {table}"), copy, "COMMIT".into()] } else { vec![copy] };
            let args: String = commands.iter().map(|c| format!(" -c {}", sh(c))).collect();
            let loaded = self.run_input(&format!("loading {}", file_name(file)), &format!("{}{args}", self.bulk_psql(load)), self.open(file).await?).await;
            self.named(loaded, std::slice::from_ref(file))?;
        }
        Ok(())
    }

    /// Builds the keys and indexes set aside: of each table in a session
    /// of its own, tables at once (indexes), or one table after the other
    /// (foreign keys lock both tables they join). A failure names the
    /// table's CSV files: a duplicate key or an orphan row is in them.
    async fn build_keys(&self, load: &str, deferred: &SetAside, phase: KeyPhase, csv: &CsvSnapshot) -> Result<(), SeedError> {
        let mut by_table: Vec<(&str, Vec<&str>)> = Vec::new();
        for key in deferred.keys.iter().filter(|k| k.phase == phase) {
            match by_table.iter_mut().find(|(t, _)| *t == key.table) {
                Some((_, sql)) => sql.push(&key.sql),
                None => by_table.push((&key.table, vec![&key.sql])),
            }
        }
        let build = async |table: &str, sql: Vec<&str>| {
            let script: String = sql.iter().map(|s| format!("{s};\n")).collect();
            let files = csv.files_of(table);
            let built =
                self.run_input(&format!("building {} of {table}", phase.describe()), &format!("{} -f -", self.bulk_psql(load)), script.as_bytes()).await;
            self.named(built, &files).map(drop)
        };
        match phase {
            KeyPhase::Indexes => {
                let all = by_table.into_iter().map(|(table, sql)| build(table, sql));
                futures::future::join_all(all).await.into_iter().collect::<Result<Vec<()>, _>>()?;
            }
            KeyPhase::ForeignKeys => {
                for (table, sql) in by_table {
                    build(table, sql).await?;
                }
            }
        }
        Ok(())
    }

    /// psql for the load: commits need not wait for the disk (a crash
    /// mid-load loses only the staging database, loaded again), and index
    /// builds get memory to sort in.
    fn bulk_psql(&self, database: &str) -> String {
        format!("PGOPTIONS='-c synchronous_commit=off -c maintenance_work_mem=256MB' {}", self.psql(database))
    }

    /// Renames the loaded database into place. Sessions on the old one are
    /// ended first (services reconnect); retried if one sneaks back in.
    /// The replaced database is dropped in the background: the new data is
    /// in place, and nobody should wait for the old one's files to go (a
    /// drop left unfinished is redone by the next swap, first thing).
    pub(super) async fn postgres_swap(&self) -> Result<(), SeedError> {
        self.identity()?; // a snapshot changed under the load stays out
        let (load, old, db) = self.databases();
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ('{db}', '{old}') AND pid <> pg_backend_pid();\n\
             DROP DATABASE IF EXISTS {old};\n\
             DO $$ BEGIN\n  \
               IF EXISTS (SELECT FROM pg_database WHERE datname = '{db}') THEN ALTER DATABASE {db} RENAME TO {old}; END IF;\n  \
               ALTER DATABASE {load} RENAME TO {db};\n\
             END $$;\n"
        );
        self.swap_databases(&sql).await?;
        let drop = format!("{} -c {}", self.psql("postgres"), sh(&format!("DROP DATABASE IF EXISTS {old}")));
        self.run("dropping the replaced database (in the background)", &format!("(setsid {drop} </dev/null >/dev/null 2>&1 &)")).await?;
        Ok(())
    }

    async fn swap_databases(&self, sql: &str) -> Result<(), SeedError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.run_input("swapping the loaded database in", &format!("{} -f - >/dev/null", self.psql("postgres")), sql.as_bytes()).await {
                Err(ShellError::Failed { stderr, .. }) if attempt < 3 && stderr.contains("being accessed by other users") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map(drop).map_err(Into::into),
            }
        }
    }
}

/// The keys and indexes of a staging database set aside for the load.
struct SetAside {
    keys: Vec<DeferredKey>,
    /// Ordinary tables `schema.sql` left empty (FREEZE is possible).
    empty: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DeferredKey {
    table: String,
    phase: KeyPhase,
    sql: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KeyPhase {
    /// Indexes, and primary, unique and exclusion keys (their indexes).
    Indexes,
    /// Foreign keys: after the keys they reference.
    ForeignKeys,
}

impl KeyPhase {
    fn describe(self) -> &'static str {
        match self {
            KeyPhase::Indexes => "the keys and indexes",
            KeyPhase::ForeignKeys => "the foreign keys",
        }
    }
}

/// Prints (as two JSON lines) how to build again, then drops, every key
/// and index of the user's tables; and lists the empty ordinary tables.
/// Foreign keys go first, as they need the keys they reference. A
/// partition's inherited keys and indexes go with their parent's.
const SET_KEYS_ASIDE: &str = r#"
CREATE TEMP VIEW ws_keys AS
  SELECT c.conrelid::regclass::text AS tbl,
         CASE c.contype WHEN 'f' THEN 'foreign-keys' ELSE 'indexes' END AS phase,
         format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) AS add,
         format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop,
         CASE c.contype WHEN 'f' THEN 0 ELSE 1 END AS drop_order
  FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
  WHERE c.contype IN ('p', 'u', 'f', 'x') AND c.conparentid = 0 AND r.relkind IN ('r', 'p')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
  UNION ALL
  SELECT i.indrelid::regclass::text, 'indexes', pg_get_indexdef(i.indexrelid), format('DROP INDEX %s', i.indexrelid::regclass), 2
  FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid JOIN pg_namespace n ON n.oid = r.relnamespace
  WHERE r.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
    AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))
    AND NOT EXISTS (SELECT FROM pg_inherits h WHERE h.inhrelid = i.indexrelid);
SELECT coalesce(json_agg(json_build_object('table', tbl, 'phase', phase, 'sql', add) ORDER BY phase DESC, tbl), '[]') FROM ws_keys;
SELECT drop FROM ws_keys ORDER BY drop_order \gexec
SELECT coalesce(json_agg(r.oid::regclass::text), '[]')
  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
  WHERE r.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
    AND (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM (SELECT FROM %s LIMIT 1) s', r.oid::regclass), false, true, '')))[1]::text = '0';
"#;
