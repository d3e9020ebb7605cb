//! Who reached this box, and with which key. `box authorized-keys` is
//! sshd's AuthorizedKeysCommand: it answers with the keys engineers pushed
//! for this login in the last 60 s (EC2 Instance Connect puts them in the
//! instance metadata, `managed-ssh-keys/active-keys/<user>/`; a local box
//! has a root-only directory the local provider writes), and records the
//! key sshd asked about in the box's access log. `box route` records each
//! personal intercept there too; `env status` shows the log.
//!
//! Who pushed a key is the `#Caller=` principal EC2 Instance Connect puts
//! before it in the metadata (a local box has none, and records the key's
//! comment, `owner@workstation`, which the laptop writes).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::provider::{pushed_keys, tags};
use crate::ssh::known_hosts;

/// Past this size the log starts again, keeping one older file.
const LOG_LIMIT: u64 = 1 << 20;

/// sshd asks twice per login (the key, then its signature): one entry.
const SAME_LOGIN: chrono::Duration = chrono::Duration::seconds(10);

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// The pushed key's comment, or the intercept's holder.
    pub who: String,
    /// "ssh as root", "intercept api for x-dev: alice", "intercept api ended".
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// Where pushed keys are read from.
pub enum Source<'a> {
    /// The instance metadata service (EC2 Instance Connect).
    Metadata,
    /// A local box: `<dir>/<user>`, lines of `EXPIRES_UNIX KEY`.
    Dir(&'a Path),
}

/// The keys that may log in as `user` now, one OpenSSH line each, and the
/// login recorded if one of them is the key sshd offers (`fingerprint`).
/// Every failure admits nobody: sshd then refuses the key.
pub async fn authorized_keys(source: Source<'_>, user: &str, fingerprint: &str, log: &Path) -> String {
    let pushed = match source {
        Source::Metadata => from_metadata(user).await,
        Source::Dir(dir) => pushed_keys::read(dir, user, Utc::now()),
    };
    let keys = plain_keys(&pushed);
    if let Some((_, who)) = keys.iter().find(|(key, _)| key_fingerprint(key).as_deref() == Some(fingerprint)) {
        let entry = Entry { at: Utc::now(), who: who.clone(), what: format!("ssh as {user}"), fingerprint: Some(fingerprint.to_owned()) };
        if let Err(e) = record(log, &entry) {
            eprintln!("cannot record the login in {}: {e}", log.display());
        }
    }
    keys.iter().map(|(k, _)| format!("{k}\n")).collect()
}

/// Each pushed line that is a plain public key (`TYPE BASE64 [COMMENT]`),
/// with who pushed it: the `#Caller=ARN` line EC2 Instance Connect writes
/// before each key, else the key's comment. A line with options
/// (`command=...`, `permitopen=...`) or anything else is dropped, so a
/// pushed key can only ever be a key.
pub fn plain_keys(pushed: &str) -> Vec<(String, String)> {
    let printable = |s: &str| -> Option<String> { (!s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())).then(|| s.chars().take(200).collect()) };
    let mut caller = None;
    let mut out = Vec::new();
    for line in pushed.lines() {
        if let Some(arn) = line.strip_prefix("#Caller=") {
            caller = printable(arn.trim());
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(kind), Some(data)) = (words.next(), words.next()) else { continue };
        let key = format!("{kind} {data}");
        if kind.starts_with('#') || known_hosts::parse_key(&key).is_err() {
            continue;
        }
        let comment = printable(&words.collect::<Vec<_>>().join(" "));
        out.push((key, caller.take().or(comment).unwrap_or_else(|| "unnamed key".to_owned())));
    }
    out
}

fn key_fingerprint(key: &str) -> Option<String> {
    known_hosts::parse_key(key).ok().map(|k| known_hosts::fingerprint(&k))
}

/// The keys pushed for `user`, if this box takes pushed keys for that
/// account: only a team box (its `workstation:team` tag), and only for its
/// owner's account (the one the image makes). An engineer's own box or a
/// preview admits no pushed key, whoever may call SendSSHPublicKey.
async fn from_metadata(user: &str) -> String {
    let client = aws_config::imds::Client::builder().build();
    let tag = async |key: &str| client.get(&format!("/latest/meta-data/tags/instance/{key}")).await.ok().map(|v| v.as_ref().trim().to_owned());
    let (team, owner) = (tag(tags::TEAM).await, tag(tags::OWNER).await);
    if team.is_none() || owner.as_deref() != Some(user) {
        return String::new();
    }
    // 404 when nobody pushed a key for this user: no keys.
    match client.get(&format!("/latest/meta-data/managed-ssh-keys/active-keys/{user}/")).await {
        Ok(keys) => keys.as_ref().to_owned(),
        Err(_) => String::new(),
    }
}

/// Appends `entry` (one write, so concurrent writers do not interleave).
pub fn record(log: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(last) = read(log, 1).pop() {
        if last.fingerprint.is_some() && last.fingerprint == entry.fingerprint && entry.at - last.at < SAME_LOGIN {
            return Ok(());
        }
    }
    if std::fs::metadata(log).is_ok_and(|m| m.len() > LOG_LIMIT) {
        std::fs::rename(log, log.with_extension("jsonl.1"))?;
    }
    let mut line = serde_json::to_string(entry).expect("an entry serializes");
    line.push('\n');
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(log)?;
    f.write_all(line.as_bytes())
}

/// The last `n` entries, oldest first.
pub fn read(log: &Path, n: usize) -> Vec<Entry> {
    let all = parse(&std::fs::read_to_string(log).unwrap_or_default());
    all[all.len().saturating_sub(n)..].to_vec()
}

/// The entries of a log's text. A box writes its log, so the laptop reads
/// it as a claim: lines that do not parse are skipped, and names and
/// descriptions keep only printable characters (no terminal escapes).
pub fn parse(text: &str) -> Vec<Entry> {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).take(200).collect::<String>();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .map(|e| Entry { who: clean(&e.who), what: clean(&e.what), fingerprint: e.fingerprint.map(|f| clean(&f)), ..e })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAuwP5WA8pJXfo6aWPiahpWb/ld1QyoNLyQ1z50Qo6OX";

    #[test]
    fn only_plain_keys_are_admitted() {
        let pushed = format!("{KEY} alice@workstation\ncommand=\"sh\" {KEY} mallory\nnot a key\n{KEY}\n");
        let keys = plain_keys(&pushed);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0], (KEY.to_owned(), "alice@workstation".to_owned()));
        assert_eq!(keys[1].1, "unnamed key");
        let pushed = format!("#Timestamp=1\n#Caller=arn:aws:sts::111122223333:assumed-role/engineers/alice\n{KEY} mallory@workstation\n{KEY}\n");
        let keys = plain_keys(&pushed);
        assert_eq!(keys[0].1, "arn:aws:sts::111122223333:assumed-role/engineers/alice", "the caller, not the comment");
        assert_eq!(keys[1].1, "unnamed key", "a caller names only the key after it");
    }

    #[tokio::test]
    async fn a_login_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.jsonl");
        pushed_keys::push(dir.path(), "root", &format!("{KEY} alice@workstation"), Utc::now()).unwrap();
        let fp = key_fingerprint(KEY).unwrap();
        for _ in 0..2 {
            let keys = authorized_keys(Source::Dir(dir.path()), "root", &fp, &log).await;
            assert_eq!(keys, format!("{KEY}\n"));
        }
        assert!(authorized_keys(Source::Dir(dir.path()), "root", "SHA256:other", &log).await.contains("ssh-ed25519"));
        let entries = read(&log, 10);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!((entries[0].who.as_str(), entries[0].what.as_str()), ("alice@workstation", "ssh as root"));
    }
}
