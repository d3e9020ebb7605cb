//! CSV snapshots (postgres, mysql): a directory with an optional
//! `schema.sql` and one or more `[NN-]TABLE.csv` per table, each with a
//! header row.

use std::path::{Path, PathBuf};

/// A CSV snapshot's files by role: the schema, then each table's files
/// in load order, tables in the order their first file comes.
#[derive(Debug)]
pub(super) struct CsvSnapshot {
    pub(super) schema: Option<PathBuf>,
    pub(super) tables: Vec<(String, Vec<PathBuf>)>,
}

impl CsvSnapshot {
    /// Reads the directory; a CSV file whose name is not a table's is an
    /// error naming the file and the fix.
    pub(super) fn read(dir: &Path) -> std::io::Result<Result<CsvSnapshot, String>> {
        let files = csv_files(dir)?;
        let mut tables: Vec<(String, Vec<PathBuf>)> = Vec::new();
        for file in files.iter().filter(|f| !is_schema(f)) {
            let Some(table) = csv_table(file) else {
                return Ok(Err(format!("{}: name the file [NN-]TABLE.csv with a lowercase table name", file_name(file))));
            };
            match tables.iter_mut().find(|(t, _)| *t == table) {
                Some((_, same)) => same.push(file.clone()),
                None => tables.push((table, vec![file.clone()])),
            }
        }
        Ok(Ok(CsvSnapshot { schema: files.into_iter().find(|f| is_schema(f)), tables }))
    }

    /// The files of `table` (to name in an error about it).
    pub(super) fn files_of(&self, table: &str) -> Vec<PathBuf> {
        self.tables.iter().find(|(t, _)| t == table).map(|(_, f)| f.clone()).unwrap_or_default()
    }
}

/// Sorts a CSV snapshot's files as [`csv_files`] lists them.
pub(super) fn load_order(file: &Path) -> (bool, PathBuf) {
    (!is_schema(file), file.to_owned())
}

/// A CSV snapshot's files in load order: `schema.sql` first, then the CSV
/// files by name (prefix them `01-`, `02-` to load referenced tables first).
pub(super) fn csv_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut csv: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "csv")).collect();
    csv.sort_by_key(|f| load_order(f));
    let schema = dir.join("schema.sql");
    Ok(schema.is_file().then_some(schema).into_iter().chain(csv).collect())
}

/// The table a CSV file loads into: its name without `NN-` and `.csv`.
fn csv_table(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    let table = match stem.split_once('-') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => stem,
    };
    let ok = table.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') && table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| table.to_string())
}

fn is_schema(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n == "schema.sql")
}

/// A file's name, for messages.
pub(super) fn file_name(file: &Path) -> String {
    file.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_tables_come_from_file_names() {
        assert_eq!(csv_table(Path::new("/s/01-users.csv")).as_deref(), Some("users"));
        assert_eq!(csv_table(Path::new("/s/order_items.csv")).as_deref(), Some("order_items"));
        assert_eq!(csv_table(Path::new("/s/Bad Name.csv")), None);
    }

    #[test]
    fn a_directory_is_its_schema_then_each_tables_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["schema.sql", "02-orders.csv", "01-users.csv", "03-users.csv"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let snap = CsvSnapshot::read(dir.path()).unwrap().unwrap();
        assert_eq!(snap.schema, Some(dir.path().join("schema.sql")));
        let tables: Vec<(&str, Vec<String>)> = snap.tables.iter().map(|(t, f)| (t.as_str(), f.iter().map(|f| file_name(f)).collect())).collect();
        assert_eq!(tables, [("users", vec!["01-users.csv".into(), "03-users.csv".into()]), ("orders", vec!["02-orders.csv".into()])]);
        std::fs::write(dir.path().join("Bad.csv"), "").unwrap();
        assert!(CsvSnapshot::read(dir.path()).unwrap().unwrap_err().starts_with("Bad.csv: name the file"));
    }
}
