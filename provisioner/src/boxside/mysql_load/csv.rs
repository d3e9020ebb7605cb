//! A CSV file cut into pieces at record ends, each piece loaded by its
//! own `LOAD DATA LOCAL INFILE` session, several at once.
//!
//! Unique checks stay on when a file is cut: with them off, InnoDB's bulk
//! insert into an empty table locks the whole table, and the pieces would
//! wait on each other. A file that is one piece keeps the bulk insert.

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use super::client::{Client, LoadError, Loaded};

/// About how much of a file one session loads at a time.
const PIECE: usize = 4 << 20;

/// Loads the CSV read from `input` into `table`, its first line a header
/// when `header`.
pub async fn load(client: &Client, sessions: usize, table: &str, header: bool, mut input: impl AsyncRead + Unpin) -> Result<Loaded, LoadError> {
    let mut loading = JoinSet::new();
    let mut buf = Vec::with_capacity(PIECE + PIECE / 2);
    let (mut pieces, mut offset) = (0u64, 0u64);
    let mut eof = false;
    while !eof {
        let cut = loop {
            eof = fill(&mut input, &mut buf, PIECE).await?;
            match (eof, last_record_end(&buf)) {
                (true, _) => break buf.len(),
                (false, Some(cut)) => break cut,
                // A record longer than a piece: read on.
                (false, None) => {}
            }
        };
        if cut == 0 {
            break;
        }
        let rest = buf.split_off(cut);
        let piece = std::mem::replace(&mut buf, rest);
        let first = pieces == 0;
        let load = Piece { client: client.clone(), table: table.into(), header: first && header, bulk: first && eof, offset };
        offset += piece.len() as u64;
        pieces += 1;
        while loading.len() >= sessions {
            joined(loading.join_next().await)?;
        }
        loading.spawn(load.run(piece));
    }
    while let Some(done) = loading.join_next().await {
        joined(Some(done))?;
    }
    Ok(Loaded { statements: pieces, spread: if pieces > 1 { pieces } else { 0 }, sessions, unit: "pieces" })
}

fn joined(done: Option<Result<Result<(), LoadError>, tokio::task::JoinError>>) -> Result<(), LoadError> {
    match done {
        Some(Ok(loaded)) => loaded,
        Some(Err(e)) => Err(LoadError::Client(format!("a load's task failed: {e}"))),
        None => Ok(()),
    }
}

/// Reads until `buf` holds `at_least` bytes; true at the end of input.
async fn fill(input: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>, at_least: usize) -> Result<bool, LoadError> {
    let target = buf.len().max(at_least);
    while buf.len() < target + 1 {
        let start = buf.len();
        buf.resize(start + 256 * 1024, 0);
        let n = input.read(&mut buf[start..]).await.map_err(|e| LoadError::Read(e.to_string()))?;
        buf.truncate(start + n);
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Just past the last `\n` that ends a record, as the server reads
/// `FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' ESCAPED BY ''`: a
/// quote opens a field only at its start, and inside one a quote ends it
/// only before `,` or `\n` (two quotes are one, any other is itself).
fn last_record_end(csv: &[u8]) -> Option<usize> {
    #[derive(Clone, Copy)]
    enum At {
        FieldStart,
        Plain,
        Quoted,
        QuoteInQuoted,
    }
    let mut at = At::FieldStart;
    let mut end = None;
    for (i, &b) in csv.iter().enumerate() {
        at = match (at, b) {
            (At::FieldStart, b'"') => At::Quoted,
            (At::FieldStart | At::Plain | At::QuoteInQuoted, b',') => At::FieldStart,
            (At::FieldStart | At::Plain | At::QuoteInQuoted, b'\n') => {
                end = Some(i + 1);
                At::FieldStart
            }
            (At::FieldStart | At::Plain, _) => At::Plain,
            (At::Quoted, b'"') => At::QuoteInQuoted,
            (At::Quoted, _) | (At::QuoteInQuoted, _) => At::Quoted,
        };
    }
    end
}

/// One piece of a file and how to load it.
struct Piece {
    client: Client,
    table: String,
    header: bool,
    /// The whole file: bulk insert if the table is empty.
    bulk: bool,
    /// Where in the file the piece starts: a warning's row numbers count
    /// from there.
    offset: u64,
}

impl Piece {
    async fn run(self, csv: Vec<u8>) -> Result<(), LoadError> {
        let table = format!("`{}`", self.table.replace('`', "``"));
        let unique =
            if self.bulk { format!("SET @empty = NOT EXISTS (SELECT 1 FROM {table}); SET SESSION unique_checks = IF(@empty, 0, 1); ") } else { String::new() };
        let sql = format!(
            "SET SESSION foreign_key_checks = 0; {unique}\
             LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE {table} CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n'{}; \
             SHOW WARNINGS LIMIT 5",
            if self.header { " IGNORE 1 LINES" } else { "" }
        );
        let mut command = self.client.command();
        command.args(["--local-infile=1", "--batch", "--skip-column-names", "-e", &sql]);
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().map_err(LoadError::spawn)?;
        let mut stdin = child.stdin.take().expect("piped");
        // The client reads all of stdin before it prints.
        let written = stdin.write_all(&csv).await;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(LoadError::spawn)?;
        if !out.status.success() || written.is_err() {
            return Err(LoadError::Client(super::sessions::client_error(&String::from_utf8_lossy(&out.stderr))));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("Warning") || l.starts_with("Error")).collect();
        if warnings.is_empty() {
            return Ok(());
        }
        let from = if self.offset > 0 { format!(" (rows counted from byte {} of the file)", self.offset) } else { String::new() };
        Err(LoadError::Dump(format!("{}{from}", warnings.join("; ").replace('\t', " "))))
    }
}

#[cfg(test)]
mod tests {
    use super::last_record_end;

    #[test]
    fn a_piece_ends_after_a_record_never_inside_a_quoted_field() {
        assert_eq!(last_record_end(b"id,name\n1,a\n2,b"), Some(12));
        assert_eq!(last_record_end(b"1,\"two\nlines\"\n2,\"open\n"), Some(14));
        // Two quotes are one; a quote inside a plain field is itself.
        assert_eq!(last_record_end(b"1,\"say \"\"hi\"\"\n\"\n2,5\" tall\n3"), Some(26));
        // A quote not before , or \n does not end the field.
        assert_eq!(last_record_end(b"1,\"a\"b\nc\"\n"), Some(10));
        assert_eq!(last_record_end(b"1,\"never closed\n"), None);
    }
}
