//! A connection through a command's stdin and stdout: Session Manager's
//! `aws ssm start-session` (ssh/ssm.rs). The command runs in a process
//! group of its own, which is ended with the connection (the AWS CLI runs
//! the Session Manager plugin as its child, and the plugin ends the session
//! on SIGTERM); what it says on stderr is kept for the error a failed
//! connection reports.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite};
use tokio::process::Child;

/// Lines of stderr kept: the reason (AccessDenied, TargetNotConnected) is
/// in the last few.
const KEPT: usize = 5;

pub struct Relay {
    child: Child,
    said: Arc<Mutex<VecDeque<String>>>,
}

impl Relay {
    /// Starts `argv`; the stream is its stdout and stdin.
    pub fn spawn(argv: &[String]) -> std::io::Result<(Relay, impl AsyncRead + AsyncWrite + Unpin + Send + 'static)> {
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let (stdin, stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
        let said = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let said = said.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!("session relay: {line}");
                    let mut said = said.lock().expect("not poisoned");
                    if said.len() == KEPT {
                        said.pop_front();
                    }
                    said.push_back(line);
                }
            });
        }
        Ok((Relay { child, said }, tokio::io::join(stdout, stdin)))
    }

    /// What the relay said on stderr lately, one line.
    pub fn said(&self) -> String {
        let said = self.said.lock().expect("not poisoned");
        said.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: a signal to the process group we created (`-pid`);
            // the child itself is killed by kill_on_drop as well.
            unsafe { libc::kill(-pid, libc::SIGTERM) };
        }
    }
}
