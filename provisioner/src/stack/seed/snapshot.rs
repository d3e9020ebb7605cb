//! Snapshots as the laptop resolves them: a local file (hashed) or an S3
//! object (looked up and presigned), and its format.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use aws_sdk_s3::presigning::PresigningConfig;
use sha2::{Digest, Sha256};

use super::hash_cache::{self, HashCache};
use super::{SeedError, PRESIGN_FOR};
use crate::manifest::{SeedFormat, SeedSource, Store};

/// A snapshot, resolved on the laptop: where it is, what it is, and the
/// identity the marker records.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub format: SeedFormat,
    pub identity: String,
    pub size: u64,
    pub(super) location: Location,
}

#[derive(Debug, Clone)]
pub(super) enum Location {
    Local(PathBuf),
    /// A presigned GET URL the box downloads from, and the object URI.
    S3 { url: String, uri: String },
}

impl Snapshot {
    /// `None` when the store has no seed. Local paths are relative to the
    /// manifest's directory and stay in it unless `outside` is allowed.
    pub async fn resolve(
        name: &str,
        store: &Store,
        manifest_dir: &Path,
        outside: bool,
        s3: Option<&aws_sdk_s3::Client>,
        hashes: &mut HashCache,
    ) -> Result<Option<Snapshot>, SeedError> {
        let (Some(seed), Ok(Some(format))) = (&store.seed, store.seed_format()) else { return Ok(None) };
        match SeedSource::from_str(seed) {
            Ok(SeedSource::File(path)) => {
                if !outside {
                    inside(name, &path, manifest_dir)?;
                }
                let path = manifest_dir.join(path);
                let read = |source| SeedError::Read { path: path.clone(), source };
                let files = if path.is_dir() { csv_files(&path).map_err(read)? } else { vec![path.clone()] };
                if !outside {
                    // A CSV directory's files too: a link in it could point out.
                    for file in &files {
                        let relative = file.strip_prefix(manifest_dir).unwrap_or(file);
                        inside(name, relative, manifest_dir)?;
                    }
                }
                let signature = hash_cache::signature(&files).map_err(read)?;
                let (identity, size) = match hashes.get(&path, &signature) {
                    Some(known) => known,
                    None => {
                        let p = path.clone();
                        let (identity, size) =
                            tokio::task::spawn_blocking(move || fingerprint(&p)).await.expect("hashing does not panic").map_err(read)?;
                        hashes.put(&path, &files, signature, identity.clone(), size);
                        (identity, size)
                    }
                };
                sniff(format, &path).map_err(|detail| SeedError::NotFormat {
                    store: name.into(),
                    path: path.clone(),
                    format: format.as_str(),
                    detail,
                })?;
                Ok(Some(Snapshot { format, identity, size, location: Location::Local(path) }))
            }
            Ok(SeedSource::S3 { bucket, key }) => {
                let s3_err = |detail: String| SeedError::S3 { store: name.into(), uri: seed.clone(), detail };
                let client = s3.ok_or_else(|| s3_err("no AWS configuration to reach S3 with".into()))?;
                let head = client
                    .head_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| s3_err(format!("cannot read the object: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
                let etag = head.e_tag().unwrap_or_default().trim_matches('"').to_string();
                let size = head.content_length().unwrap_or_default().max(0) as u64;
                let config = PresigningConfig::expires_in(PRESIGN_FOR).map_err(|e| s3_err(e.to_string()))?;
                let presigned = client
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .presigned(config)
                    .await
                    .map_err(|e| s3_err(format!("cannot presign a download: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
                Ok(Some(Snapshot {
                    format,
                    identity: format!("s3:{bucket}/{key}@{etag}"),
                    size,
                    location: Location::S3 { url: presigned.uri().to_string(), uri: seed.clone() },
                }))
            }
            Err(_) => Ok(None), // validation reports it
        }
    }

    pub(super) fn describe(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { uri, .. } => uri.clone(),
        }
    }
}

/// Refuses a seed path (`seed`, as the manifest writes it) that leaves
/// `dir`: absolute, through `..`, or, once symlinks are followed, somewhere
/// else. A missing file is left to the read that follows, which names it.
fn inside(store: &str, seed: &Path, dir: &Path) -> Result<(), SeedError> {
    use std::path::Component;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let plain = seed.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    let stays = plain
        && match (std::fs::canonicalize(dir.join(seed)), std::fs::canonicalize(dir)) {
            (Ok(real), Ok(real_dir)) => real.starts_with(real_dir),
            _ => true,
        };
    if stays {
        return Ok(());
    }
    Err(SeedError::Outside { store: store.into(), path: seed.to_owned(), dir: dir.to_owned() })
}

/// Whether the first bytes of a local snapshot look like `format`: a
/// wrong file fails before a box is launched, not halfway through a load.
fn sniff(format: SeedFormat, path: &Path) -> Result<(), String> {
    if format == SeedFormat::Csv {
        let files = csv_files(path).map_err(|e| format!("cannot list the directory: {e}"))?;
        return if files.is_empty() { Err("the directory has neither schema.sql nor .csv files".into()) } else { Ok(()) };
    }
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| e.to_string())?;
    let head = &head[..n];
    let first_line = head.split(|b| *b == b'\n').map(|l| l.trim_ascii()).find(|l| !l.is_empty()).unwrap_or_default();
    let (ok, expected) = match format {
        SeedFormat::Rdb => (head.starts_with(b"REDIS"), "a redis dump starts with REDIS"),
        SeedFormat::PgDump => (head.starts_with(b"PGDMP"), "a pg_dump -Fc file starts with PGDMP"),
        SeedFormat::Resp => (head.starts_with(b"*"), "redis protocol starts with *"),
        SeedFormat::Jsonl | SeedFormat::Bulk => (first_line.starts_with(b"{"), "each line is a JSON object"),
        // mongodump's archive has a binary header, gzipped or not.
        SeedFormat::MongoArchive => (n > 0, "a mongodump archive is not empty"),
        SeedFormat::Csv => unreachable!("handled above"),
    };
    // An empty text snapshot is an empty store, not a mistake.
    if ok || (n == 0 && matches!(format, SeedFormat::Resp | SeedFormat::Jsonl | SeedFormat::Bulk)) {
        return Ok(());
    }
    Err(expected.into())
}

/// sha256 of a file, or of a directory's snapshot files (name and content,
/// in name order), and the total size.
fn fingerprint(path: &Path) -> std::io::Result<(String, u64)> {
    fn hash_file(path: &Path, h: &mut Sha256) -> std::io::Result<u64> {
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0; 1 << 20];
        let mut total = 0;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            h.update(&buf[..n]);
            total += n as u64;
        }
    }
    let mut h = Sha256::new();
    let size = if path.is_dir() {
        let mut total = 0;
        for file in csv_files(path)? {
            h.update(file.file_name().unwrap_or_default().as_encoded_bytes());
            h.update([0]);
            total += hash_file(&file, &mut h)?;
        }
        total
    } else {
        hash_file(path, &mut h)?
    };
    Ok((format!("sha256:{}", hex::encode(h.finalize())), size))
}

/// A CSV snapshot's files in load order: `schema.sql` first, then the CSV
/// files by name (prefix them `01-`, `02-` to load referenced tables first).
pub(super) fn csv_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut csv: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    csv.sort();
    let schema = dir.join("schema.sql");
    Ok(schema.is_file().then_some(schema).into_iter().chain(csv).collect())
}

/// The table a CSV file loads into: its name without `NN-` and `.csv`.
pub(super) fn csv_table(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    let table = match stem.split_once('-') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => stem,
    };
    let ok = table.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && table.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then(|| table.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_snapshot_that_is_not_its_format_is_caught_by_its_first_bytes() {
        use crate::manifest::SeedFormat;
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert!(super::sniff(SeedFormat::Rdb, &file("a.rdb", b"REDIS0011\xfa")).is_ok());
        assert!(super::sniff(SeedFormat::Rdb, &file("b.rdb", b"<html>")).unwrap_err().contains("REDIS"));
        assert!(super::sniff(SeedFormat::PgDump, &file("a.dump", b"PGDMP\x01")).is_ok());
        assert!(super::sniff(SeedFormat::PgDump, &file("b.dump", b"-- plain SQL")).is_err());
        assert!(super::sniff(SeedFormat::Resp, &file("a.resp", b"*3\r\n$3\r\nSET")).is_ok());
        assert!(super::sniff(SeedFormat::Jsonl, &file("a.jsonl", b"\n{\"key\":\"k\"}\n")).is_ok());
        assert!(super::sniff(SeedFormat::Jsonl, &file("b.jsonl", b"key,value\n")).is_err());
        assert!(super::sniff(SeedFormat::Jsonl, &file("empty.jsonl", b"")).is_ok());
        assert!(super::sniff(SeedFormat::Csv, dir.path()).is_err(), "no schema.sql or csv there");
    }

    #[test]
    fn seeds_stay_in_the_manifest_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("seeds")).unwrap();
        std::fs::write(d.join("seeds/app.sql"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("seeds/out.sql")).unwrap();
        std::os::unix::fs::symlink("app.sql", d.join("seeds/alias.sql")).unwrap();
        std::fs::create_dir(d.join("seeds/db")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("seeds/db/schema.sql")).unwrap();
        for ok in ["seeds/app.sql", "./seeds/app.sql", "seeds/alias.sql", "seeds/missing.sql"] {
            assert!(super::inside("db", std::path::Path::new(ok), d).is_ok(), "{ok}");
        }
        for bad in ["/etc/passwd", "../x.sql", "seeds/../../x.sql", "seeds/out.sql", "seeds/db/schema.sql"] {
            let err = super::inside("db", std::path::Path::new(bad), d).unwrap_err().to_string();
            assert!(err.contains("stores.db.seed") && err.contains("--allow-outside"), "{bad}: {err}");
        }
    }

    use super::*;

    #[test]
    fn csv_tables_come_from_file_names() {
        assert_eq!(csv_table(Path::new("/s/01-users.csv")).as_deref(), Some("users"));
        assert_eq!(csv_table(Path::new("/s/order_items.csv")).as_deref(), Some("order_items"));
        assert_eq!(csv_table(Path::new("/s/Bad Name.csv")), None);
    }
}
