//! Redis: the RESP stream checked on its way to `redis-cli --pipe` (or
//! JSON lines converted to it) into a staging database, swapped in with
//! `SWAPDB`; or an RDB file checked and installed.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::load::{wait_ready, Loader, PIPE_BUFFER, REDIS_STAGING_DB};
use super::snapshot::Location;
use super::SeedError;
use crate::manifest::{SeedFormat, StoreKind};
use crate::stack::layout::sh;
use crate::stack::stores;

impl Loader<'_> {
    /// RESP (checked while streaming) or JSON lines (converted to RESP while
    /// streaming) into `redis-cli --pipe`, aimed at the staging database.
    pub(super) async fn redis_pipe(&self) -> Result<(), SeedError> {
        let cli = format!("redis-cli -h 127.0.0.1 -p {}", self.store.port());
        self.run("clearing the staging database", &format!("{cli} -n {REDIS_STAGING_DB} FLUSHDB >/dev/null")).await?;
        let select = resp_command(&[b"SELECT", REDIS_STAGING_DB.to_string().as_bytes()]);
        let pipe = format!("{cli} --pipe");
        let (out, sent) = match &self.snap.location {
            Location::Local(path) => {
                let file = self.open(path).await?;
                let (reader, writer) = tokio::io::duplex(PIPE_BUFFER);
                let json = self.snap.format == SeedFormat::Jsonl;
                let producer = tokio::spawn(async move {
                    let mut writer = writer;
                    writer.write_all(&select).await.map_err(|e| e.to_string())?;
                    let n = if json { jsonl_to_resp(file, &mut writer).await? } else { check_resp(file, &mut writer).await? };
                    writer.shutdown().await.map_err(|e| e.to_string())?;
                    Ok::<u64, String>(n)
                });
                let out = self.run_input("loading the snapshot (redis-cli --pipe)", &pipe, reader).await;
                // A snapshot problem explains redis' complaints about the
                // partial command it was sent: report it first.
                let sent = producer.await.expect("producer does not panic").map_err(|d| self.malformed(d))?;
                (out?, Some(sent))
            }
            Location::S3 { url, .. } => {
                let command = format!("{{ printf %s {}; cat; }} | {pipe}", sh(std::str::from_utf8(&select).expect("ascii")));
                (self.download("loading the snapshot from S3 (redis-cli --pipe)", url, &command).await?, None)
            }
        };
        let (errors, replies) = pipe_summary(&out)
            .ok_or_else(|| SeedError::Rejected { store: self.name.into(), detail: format!("redis-cli --pipe gave no summary: {}", out.trim()) })?;
        if errors > 0 {
            return Err(SeedError::Rejected { store: self.name.into(), detail: format!("redis rejected {errors} of {replies} commands") });
        }
        if let Some(sent) = sent {
            if replies != sent + 1 {
                return Err(SeedError::Rejected { store: self.name.into(), detail: format!("redis answered {replies} commands, {} were sent", sent + 1) });
            }
        }
        self.identity()?; // a snapshot changed under the load stays out
        self.onbox
            .run(
                "swapping the loaded data in",
                &format!("{cli} SWAPDB 0 {REDIS_STAGING_DB} >/dev/null && {cli} -n {REDIS_STAGING_DB} FLUSHDB ASYNC >/dev/null"),
            )
            .await?;
        Ok(())
    }

    /// Stops redis, puts the checked dump in place, starts it again.
    pub(super) async fn redis_rdb(&self) -> Result<(), SeedError> {
        let staged = self.staged_path();
        self.stage(&staged).await?;
        let check = self.check(&format!("redis-check-rdb {} >/dev/null 2>&1", sh(&staged))).await?;
        if !check {
            let _ = self.run("removing the rejected snapshot", &format!("rm -f {}", sh(&staged))).await;
            return Err(self.malformed("redis-check-rdb rejects it".into()));
        }
        let dir = stores::redis_dir(self.name, &self.onbox.layout);
        let user = stores::runner_user(self.name, StoreKind::Redis, self.onbox.layout.stores);
        let ctl = |verb: &str| self.onbox.control(verb, self.name, Some(self.store));
        self.onbox
            .run(
                "replacing redis' dump",
                &format!(
                    "{stop} >/dev/null && install -o {user} -g {user} -m 0600 {staged} {dump} && rm -f {staged} && {start} >/dev/null",
                    stop = ctl("stop"),
                    start = ctl("start"),
                    staged = sh(&staged),
                    dump = sh(&format!("{dir}/dump.rdb")),
                ),
            )
            .await?;
        wait_ready(self.onbox, self.name, self.store).await
    }
}

/// `errors: E, replies: R` from redis-cli's pipe mode.
fn pipe_summary(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().rev().find(|l| l.starts_with("errors:"))?;
    let mut nums = line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse::<u64>());
    Some((nums.next()?.ok()?, nums.next()?.ok()?))
}

/// One command in the Redis protocol.
pub fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Checks that a stream is whole Redis protocol commands while copying it
/// through; returns the number of commands. Mass insertion accepts
/// anything, so a truncated file would otherwise load without complaint.
#[derive(Debug, Default)]
pub struct RespCheck {
    state: RespState,
    line: Vec<u8>,
    commands: u64,
    offset: u64,
}

#[derive(Debug, Default, Clone, Copy)]
enum RespState {
    #[default]
    Array,
    BulkHeader {
        args_left: u64,
    },
    Body {
        left: u64,
        args_left: u64,
    },
    Cr {
        args_left: u64,
    },
    Lf {
        args_left: u64,
    },
}

impl RespCheck {
    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                RespState::Array | RespState::BulkHeader { .. } => {
                    let Some(nl) = data[i..].iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(&data[i..]);
                        if self.line.len() > 32 {
                            return Err(self.error("a header line longer than 32 bytes"));
                        }
                        break;
                    };
                    self.line.extend_from_slice(&data[i..i + nl + 1]);
                    i += nl + 1;
                    self.header()?;
                    self.offset += self.line.len() as u64;
                    self.line.clear();
                }
                RespState::Body { left, args_left } => {
                    let take = left.min((data.len() - i) as u64);
                    i += take as usize;
                    self.offset += take;
                    self.state = if take == left { RespState::Cr { args_left } } else { RespState::Body { left: left - take, args_left } };
                }
                RespState::Cr { args_left } | RespState::Lf { args_left } => {
                    let want = if matches!(self.state, RespState::Cr { .. }) { b'\r' } else { b'\n' };
                    if data[i] != want {
                        return Err(self.error("a bulk string not followed by CRLF (its length is wrong)"));
                    }
                    i += 1;
                    self.offset += 1;
                    self.state = match self.state {
                        RespState::Cr { .. } => RespState::Lf { args_left },
                        _ => self.next_arg(args_left),
                    };
                }
            }
        }
        Ok(())
    }

    fn next_arg(&mut self, args_left: u64) -> RespState {
        if args_left == 0 {
            self.commands += 1;
            RespState::Array
        } else {
            RespState::BulkHeader { args_left }
        }
    }

    fn header(&mut self) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        let parsed =
            line.strip_suffix(b"\r\n").and_then(|l| l.split_first()).and_then(|(kind, n)| Some((*kind, std::str::from_utf8(n).ok()?.parse::<u64>().ok()?)));
        self.line = line;
        match (self.state, parsed) {
            (RespState::Array, Some((b'*', n))) if n > 0 => self.state = RespState::BulkHeader { args_left: n },
            (RespState::BulkHeader { args_left }, Some((b'$', len))) => {
                self.state = RespState::Body { left: len, args_left: args_left - 1 };
                if len == 0 {
                    self.state = RespState::Cr { args_left: args_left - 1 };
                }
            }
            (RespState::Array, _) => return Err(self.error("something other than a command (`*N` array header)")),
            _ => return Err(self.error("something other than a bulk string header (`$LEN`)")),
        }
        Ok(())
    }

    fn error(&self, what: &str) -> String {
        format!("byte {} (after {} whole commands): found {what}", self.offset, self.commands)
    }

    /// The number of commands, if the stream ended between commands.
    pub fn finish(&self) -> Result<u64, String> {
        match self.state {
            RespState::Array if self.line.is_empty() => Ok(self.commands),
            _ => Err(format!(
                "it ends in the middle of a command at byte {} (after {} whole commands): truncated",
                self.offset + self.line.len() as u64,
                self.commands
            )),
        }
    }
}

async fn check_resp(mut file: impl AsyncRead + Unpin, out: &mut (impl AsyncWrite + Unpin)) -> Result<u64, String> {
    let mut check = RespCheck::default();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return check.finish();
        }
        check.feed(&buf[..n])?;
        out.write_all(&buf[..n]).await.map_err(|e| format!("sending failed: {e}"))?;
    }
}

/// One line of a JSON-lines redis snapshot.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    key: String,
    #[serde(rename = "type", default = "string_type")]
    kind: String,
    value: serde_json::Value,
    /// Seconds to live.
    ttl: Option<u64>,
}

fn string_type() -> String {
    "string".into()
}

/// The Redis commands that recreate one JSON-lines entry.
pub fn json_entry_to_resp(line: &str) -> Result<(Vec<u8>, u64), String> {
    use serde_json::Value;
    let e: JsonEntry = serde_json::from_str(line).map_err(|err| err.to_string())?;
    let scalar = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("{other} is not a string or number")),
        }
    };
    let mut args: Vec<String> = Vec::new();
    match (e.kind.as_str(), &e.value) {
        ("string", v) => args.extend(["SET".into(), e.key.clone(), scalar(v)?]),
        ("hash", Value::Object(m)) if !m.is_empty() => {
            args.extend(["HSET".into(), e.key.clone()]);
            for (f, v) in m {
                args.extend([f.clone(), scalar(v)?]);
            }
        }
        (kind @ ("list" | "set"), Value::Array(items)) if !items.is_empty() => {
            args.extend([if kind == "list" { "RPUSH" } else { "SADD" }.into(), e.key.clone()]);
            for v in items {
                args.push(scalar(v)?);
            }
        }
        ("zset", Value::Object(m)) if !m.is_empty() => {
            args.extend(["ZADD".into(), e.key.clone()]);
            for (member, score) in m {
                args.extend([scalar(score)?, member.clone()]);
            }
        }
        (kind, _) => {
            return Err(format!(
            "type {kind:?} with this value is not supported; use string (value), hash (object), list or set (non-empty array), zset (object of member: score)"
        ))
        }
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut out = resp_command(&refs);
    let mut commands = 1;
    if let Some(ttl) = e.ttl {
        out.extend(resp_command(&[b"EXPIRE", e.key.as_bytes(), ttl.to_string().as_bytes()]));
        commands += 1;
    }
    Ok((out, commands))
}

async fn jsonl_to_resp(file: impl AsyncRead + Unpin, out: &mut (impl AsyncWrite + Unpin)) -> Result<u64, String> {
    let mut lines = BufReader::with_capacity(256 * 1024, file).lines();
    let (mut commands, mut n) = (0, 0u64);
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(line) = lines.next_line().await.map_err(|e| format!("line {}: {e}", n + 1))? {
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let (bytes, c) = json_entry_to_resp(&line).map_err(|e| format!("line {n}: {e}"))?;
        batch.extend_from_slice(&bytes);
        commands += c;
        if batch.len() >= 64 * 1024 {
            out.write_all(&batch).await.map_err(|e| format!("sending failed: {e}"))?;
            batch.clear();
        }
    }
    out.write_all(&batch).await.map_err(|e| format!("sending failed: {e}"))?;
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all(data: &[u8], chunk: usize) -> Result<u64, String> {
        let mut c = RespCheck::default();
        for part in data.chunks(chunk) {
            c.feed(part)?;
        }
        c.finish()
    }

    #[test]
    fn resp_check_counts_whole_commands_in_any_chunking() {
        let mut data = resp_command(&[b"SET", b"k", b"v\r\nwith crlf"]);
        data.extend(resp_command(&[b"SET", b"empty", b""]));
        data.extend(resp_command(&[b"PING"]));
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(check_all(&data, chunk), Ok(3), "chunk {chunk}");
        }
    }

    #[test]
    fn resp_check_reports_truncation_and_garbage() {
        let data = resp_command(&[b"SET", b"key", b"value"]);
        for cut in 1..data.len() {
            let err = check_all(&data[..cut], 4).unwrap_err();
            assert!(err.contains("truncated") || err.contains("found"), "cut {cut}: {err}");
        }
        let err = check_all(b"SET a b\r\n", 100).unwrap_err();
        assert!(err.contains("byte 0") && err.contains("`*N`"), "{err}");
        let err = check_all(b"*1\r\n$2\r\nabc\r\n", 100).unwrap_err();
        assert!(err.contains("CRLF"), "{err}");
    }

    #[test]
    fn json_lines_become_commands() {
        let (resp, n) = json_entry_to_resp(r#"{"key":"user:1","value":"ada","ttl":60}"#).unwrap();
        assert_eq!(n, 2);
        assert_eq!(resp, [resp_command(&[b"SET", b"user:1", b"ada"]), resp_command(&[b"EXPIRE", b"user:1", b"60"])].concat());
        let (resp, _) = json_entry_to_resp(r#"{"key":"z","type":"zset","value":{"a":1.5}}"#).unwrap();
        assert_eq!(resp, resp_command(&[b"ZADD", b"z", b"1.5", b"a"]));
        let (resp, _) = json_entry_to_resp(r#"{"key":"h","type":"hash","value":{"f":2}}"#).unwrap();
        assert_eq!(resp, resp_command(&[b"HSET", b"h", b"f", b"2"]));
        assert!(json_entry_to_resp(r#"{"key":"l","type":"list","value":[]}"#).unwrap_err().contains("non-empty"));
        assert!(json_entry_to_resp(r#"{"key":"x","value":"v","extra":1}"#).is_err());
        assert!(json_entry_to_resp(r#"{"key":"x","val"#).is_err());
    }

    #[test]
    fn pipe_summary_is_parsed() {
        let out = "All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 2, replies: 1001\n";
        assert_eq!(pipe_summary(out), Some((2, 1001)));
        assert_eq!(pipe_summary("nothing"), None);
    }
}
