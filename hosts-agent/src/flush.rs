//! Best-effort flush of the OS resolver caches after the hosts file
//! changed, so the new address is used at once. Each cache that is present
//! is flushed and reported; one that fails does not fail the change.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use workstation_hosts_protocol::Flushed;

const TIMEOUT: Duration = Duration::from_secs(3);

/// (cache, present?, command) for this OS.
fn caches() -> Vec<(&'static str, bool, &'static [&'static str])> {
    if cfg!(target_os = "macos") {
        vec![("dscacheutil", true, &["dscacheutil", "-flushcache"]), ("mDNSResponder", true, &["killall", "-HUP", "mDNSResponder"])]
    } else {
        vec![
            ("systemd-resolved", Path::new("/run/systemd/resolve/io.systemd.Resolve").exists(), &["resolvectl", "flush-caches"]),
            ("nscd", Path::new("/run/nscd/socket").exists() || Path::new("/var/run/nscd/socket").exists(), &["nscd", "-i", "hosts"]),
        ]
    }
}

pub async fn flush() -> Vec<Flushed> {
    let mut out = Vec::new();
    for (cache, present, argv) in caches() {
        if !present {
            continue;
        }
        let run = Command::new(argv[0]).args(&argv[1..]).kill_on_drop(true).output();
        let outcome = match tokio::time::timeout(TIMEOUT, run).await {
            Ok(Ok(o)) if o.status.success() => "ok".to_owned(),
            Ok(Ok(o)) => format!("`{}` failed: {}", argv.join(" "), String::from_utf8_lossy(&o.stderr).trim()),
            Ok(Err(e)) => format!("`{}` could not run: {e}", argv.join(" ")),
            Err(_) => format!("`{}` did not finish within {TIMEOUT:?}", argv.join(" ")),
        };
        out.push(Flushed { cache: cache.to_owned(), outcome });
    }
    out
}
