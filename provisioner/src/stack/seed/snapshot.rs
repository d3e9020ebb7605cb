//! Snapshots as the laptop resolves them: a local file (hashed) or an S3
//! object (looked up and presigned), and its format.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use super::csv::{csv_files, load_order};
use super::hash_cache::{self, HashCache};
use super::SeedError;
use crate::manifest::{SeedFormat, SeedSource, Store};

/// Presigned S3 URLs only need to outlive one download.
const PRESIGN_FOR: Duration = Duration::from_secs(60 * 60);

/// A snapshot, resolved on the laptop: where it is, what it is, and the
/// identity the marker records.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub format: SeedFormat,
    pub size: u64,
    pub(super) identity: Identity,
    pub(super) location: Location,
}

/// What the box's marker records of a snapshot.
#[derive(Debug, Clone)]
pub(super) enum Identity {
    /// The S3 object's ETag, or a local snapshot's remembered sha256.
    Known(String),
    /// A local snapshot not hashed since it changed: hashed as it streams
    /// to the box (one pass over its bytes), then remembered under the
    /// `stat` signature its files had when resolved.
    Unhashed { files: Vec<PathBuf>, signature: String, cache: Arc<Mutex<HashCache>> },
}

#[derive(Debug, Clone)]
pub(super) enum Location {
    Local(PathBuf),
    /// A presigned GET URL the box downloads from, and the object URI.
    S3 {
        url: String,
        uri: String,
    },
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
        hashes: &Arc<Mutex<HashCache>>,
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
                let remembered = hashes.lock().unwrap_or_else(|p| p.into_inner()).get(&path, &signature);
                let (identity, size) = match remembered {
                    Some((identity, size)) => (Identity::Known(identity), size),
                    None => {
                        let size = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len())).sum::<std::io::Result<u64>>().map_err(read)?;
                        (Identity::Unhashed { files, signature, cache: hashes.clone() }, size)
                    }
                };
                sniff(format, &path).map_err(|detail| SeedError::NotFormat { store: name.into(), path: path.clone(), format: format.as_str(), detail })?;
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
                    identity: Identity::Known(format!("s3:{bucket}/{key}@{etag}")),
                    size,
                    location: Location::S3 { url: presigned.uri().to_string(), uri: seed.clone() },
                }))
            }
            Err(_) => Ok(None), // validation reports it
        }
    }

    /// The identity, if known before loading (not a changed local file).
    pub fn identity(&self) -> Option<&str> {
        match &self.identity {
            Identity::Known(id) => Some(id),
            Identity::Unhashed { .. } => None,
        }
    }

    /// Hashes a local snapshot in a pass of its own: only when the box's
    /// marker must be compared with it before anything is sent.
    pub(super) async fn hash(&self) -> Result<String, SeedError> {
        let (Identity::Unhashed { .. }, Location::Local(path)) = (&self.identity, &self.location) else {
            return Ok(self.identity().unwrap_or_default().to_string());
        };
        let p = path.clone();
        let (identity, _) = tokio::task::spawn_blocking(move || fingerprint(&p))
            .await
            .expect("hashing does not panic")
            .map_err(|source| SeedError::Read { path: path.clone(), source })?;
        self.remember(&identity);
        Ok(identity)
    }

    /// Remembers the sha256 of a local snapshot, unless its files changed
    /// since it was resolved (then the bytes hashed may be newer than the
    /// signature: the next run hashes again).
    pub(super) fn remember(&self, identity: &str) {
        let (Identity::Unhashed { files, signature, cache }, Location::Local(path)) = (&self.identity, &self.location) else { return };
        if hash_cache::signature(files).is_ok_and(|now| &now == signature) {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.put(path, files, signature.clone(), identity.to_string(), self.size);
            cache.save();
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
        // Text, not a pg_dump -Fc or gzipped file by mistake.
        SeedFormat::MysqlDump => (!head.contains(&0) && !head.starts_with(b"PGDMP"), "a mysqldump file is SQL text (not compressed)"),
        SeedFormat::Resp => (head.starts_with(b"*"), "redis protocol starts with *"),
        SeedFormat::Jsonl | SeedFormat::Bulk => (first_line.starts_with(b"{"), "each line is a JSON object"),
        // mongodump's archive has a binary header, gzipped or not.
        SeedFormat::MongoArchive => (n > 0, "a mongodump archive is not empty"),
        SeedFormat::Csv => unreachable!("handled above"),
    };
    // An empty text snapshot is an empty store, not a mistake.
    if ok || (n == 0 && matches!(format, SeedFormat::Resp | SeedFormat::Jsonl | SeedFormat::Bulk | SeedFormat::MysqlDump)) {
        return Ok(());
    }
    Err(expected.into())
}

/// A snapshot's identity taken as its files are read for loading, in any
/// order and at once: each file is hashed on its own and the files are
/// combined as [`fingerprint`] does.
#[derive(Debug, Default)]
pub(super) struct StreamHash(Mutex<Vec<(PathBuf, FileHash)>>);

type FileHash = Arc<Mutex<(Sha256, u64)>>;

impl StreamHash {
    /// `inner` (the content of `file`), read through the returned reader,
    /// counts toward the hash, in place of an earlier read of `file` (a
    /// load tried again reads it again).
    pub(super) fn reader<R>(&self, file: &Path, inner: R) -> HashingReader<R> {
        let hash = FileHash::default();
        let mut files = self.0.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|(read, _)| read != file);
        files.push((file.to_owned(), hash.clone()));
        HashingReader { inner, hash: Some(hash) }
    }

    /// The identity of what was read (as `snapshot`, a file or a
    /// directory), and how many bytes that was.
    pub(super) fn finish(&self, snapshot: &Path) -> (String, u64) {
        let mut files = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        files.sort_by_key(|(path, _)| load_order(path));
        let digests = files.iter().map(|(path, h)| {
            let h = h.lock().unwrap_or_else(|p| p.into_inner());
            (path.clone(), h.0.clone().finalize().into(), h.1)
        });
        combine(snapshot, digests.collect())
    }
}

/// A reader whose bytes also go to a file's hash, if it has one.
pub(super) struct HashingReader<R> {
    pub(super) inner: R,
    pub(super) hash: Option<FileHash>,
}

impl<R: AsyncRead + Unpin> AsyncRead for HashingReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Some(hash) = &self.hash {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let mut h = hash.lock().unwrap_or_else(|p| p.into_inner());
                h.0.update(new);
                h.1 += new.len() as u64;
            }
        }
        polled
    }
}

/// The identity of a snapshot from its files' sha256 (in load order): a
/// file's own sha256, or, for a directory, the sha256 of one line per file
/// (name, NUL, hex digest), so that files loaded at once hash at once.
fn combine(snapshot: &Path, files: Vec<(PathBuf, [u8; 32], u64)>) -> (String, u64) {
    let size = files.iter().map(|f| f.2).sum();
    let digest = match files.as_slice() {
        [(path, digest, _)] if path == snapshot => hex::encode(digest),
        _ => {
            let mut h = Sha256::new();
            for (path, digest, _) in &files {
                h.update(path.file_name().unwrap_or_default().as_encoded_bytes());
                h.update([0]);
                h.update(hex::encode(digest));
                h.update(b"\n");
            }
            hex::encode(h.finalize())
        }
    };
    (format!("sha256:{digest}"), size)
}

/// sha256 of a file, or of a directory's snapshot files (see [`combine`]),
/// and the total size: in a pass of its own.
fn fingerprint(path: &Path) -> std::io::Result<(String, u64)> {
    fn hash_file(path: &Path) -> std::io::Result<(PathBuf, [u8; 32], u64)> {
        let mut f = std::fs::File::open(path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0; 1 << 20];
        let mut total = 0;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok((path.to_owned(), h.finalize().into(), total));
            }
            h.update(&buf[..n]);
            total += n as u64;
        }
    }
    let files = if path.is_dir() { csv_files(path)? } else { vec![path.to_owned()] };
    Ok(combine(path, files.iter().map(|f| hash_file(f)).collect::<std::io::Result<_>>()?))
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

    #[tokio::test]
    async fn hashing_while_streaming_gives_the_identity_of_a_separate_pass() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        std::fs::write(db.join("schema.sql"), "CREATE TABLE t (a int);").unwrap();
        std::fs::write(db.join("01-t.csv"), "a\n1\n2\n".repeat(50_000)).unwrap();
        let single = dir.path().join("cache.resp");
        std::fs::write(&single, b"*1\r\n$4\r\nPING\r\n".repeat(100_000)).unwrap();
        for (snapshot, files) in [(db.clone(), csv_files(&db).unwrap()), (single.clone(), vec![single.clone()])] {
            let hash = StreamHash::default();
            // Read backwards: files loaded at once finish in any order.
            for file in files.iter().rev() {
                let mut reader = hash.reader(file, tokio::fs::File::open(file).await.unwrap());
                let mut sink = Vec::new();
                reader.read_to_end(&mut sink).await.unwrap();
            }
            assert_eq!(hash.finish(&snapshot), fingerprint(&snapshot).unwrap(), "{}", snapshot.display());
        }
    }
}
