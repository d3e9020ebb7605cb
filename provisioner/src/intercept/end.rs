//! The end of an intercept, as the laptop sees it: who the holder is, and
//! whether the service runs on the box again.

use std::time::Duration;

use super::session;
use crate::boxes::Context;
use crate::manifest::Manifest;
use crate::provider::BoxInfo;
use crate::stack::holds::valid_holder;
use crate::stack::shell::BoxShell;

/// The session that took the service may have idled through the whole
/// intercept; a lost connection may never answer its goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long to look for the service coming back: the box's own wait
/// ([`session::wait_restored`], 30 s) and a fresh connection to ask.
const RESTORE_LOOK: Duration = Duration::from_secs(45);

/// Whether the service runs on the box again.
#[derive(Debug)]
pub enum Restored {
    Up,
    NotYet,
    /// The box could not be asked.
    Unknown(String),
}

/// Closes the intercept's session (without waiting long for a lost one).
pub async fn close(onbox: BoxShell) {
    let _ = tokio::time::timeout(CLOSE_GRACE, onbox.close()).await;
}

/// Looks, on a new session, until `service` runs and passes its check.
pub async fn restored(ctx: &Context, info: &BoxInfo, manifest: &Manifest, service: &str) -> Restored {
    let look = ctx.on_box(info, async |shell| Ok::<_, anyhow::Error>(session::wait_restored(shell, manifest, service).await?));
    match tokio::time::timeout(RESTORE_LOOK, look).await {
        Ok(Ok(true)) => Restored::Up,
        Ok(Ok(false)) | Err(_) => Restored::NotYet,
        Ok(Err(e)) => Restored::Unknown(format!("{e:#}")),
    }
}

/// `owner@host`, reduced to what a holder name may hold.
pub fn holder(owner: &str) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or fails.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        String::from_utf8_lossy(&buf[..buf.iter().position(|b| *b == 0).unwrap_or(0)]).into_owned()
    } else {
        String::new()
    };
    let clean = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(48).collect::<String>();
    let by = format!("{}@{}", clean(owner), clean(&host));
    if valid_holder(&by) {
        by
    } else {
        clean(owner)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_holder_is_always_a_valid_name() {
        assert!(crate::stack::holds::valid_holder(&super::holder("alice")));
        assert!(crate::stack::holds::valid_holder(&super::holder("bob; rm -rf /")));
    }
}
