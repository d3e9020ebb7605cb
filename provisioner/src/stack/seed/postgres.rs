//! PostgreSQL: a dump (`pg_restore`) or CSV files (`COPY`) loaded into a
//! staging database, then swapped in by renaming.

use super::snapshot::{csv_files, csv_table, Location};
use std::time::Duration;

use super::{Loader, SeedError};
use crate::stack::shell::ShellError;
use crate::stack::layout::sh;

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

    /// `schema.sql`, then each table's CSV through `\copy ... FROM STDIN`.
    pub(super) async fn postgres_csv(&self) -> Result<(), SeedError> {
        let Location::Local(dir) = &self.snap.location else {
            return Err(self.malformed("CSV snapshots are directories on the laptop".into()));
        };
        let files = csv_files(dir).map_err(|source| SeedError::Read { path: dir.clone(), source })?;
        self.postgres_fresh_staging().await?;
        let (load, _, _) = self.databases();
        for file in files {
            let file_name = file.file_name().unwrap_or_default().to_string_lossy().to_string();
            let command = if file_name == "schema.sql" {
                format!("{} --single-transaction -f -", self.psql(&load))
            } else {
                let table = csv_table(&file)
                    .ok_or_else(|| self.malformed(format!("{file_name}: name the file [NN-]TABLE.csv with a lowercase table name")))?;
                format!("{} -c {}", self.psql(&load), sh(&format!("\\copy {table} FROM STDIN WITH (FORMAT csv, HEADER true)")))
            };
            let loaded = self.run_input(&format!("loading {file_name}"), &command, self.open(&file).await?).await;
            if let Err(ShellError::Failed { stderr, .. }) = &loaded {
                return Err(self.malformed(format!("{file_name}: {}", stderr.trim())));
            }
            loaded?;
        }
        self.postgres_swap().await
    }

    /// Renames the loaded database into place. Sessions on the old one are
    /// ended first (services reconnect); retried if one sneaks back in.
    /// The replaced database is dropped in the background: the new data is
    /// in place, and nobody should wait for the old one's files to go (a
    /// drop left unfinished is redone by the next swap, first thing).
    pub(super) async fn postgres_swap(&self) -> Result<(), SeedError> {
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
