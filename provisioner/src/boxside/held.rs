//! Secrets a laptop handed to a local box, held in one process's memory.
//!
//! A local box has no instance role and no Systems Manager, so the laptop
//! resolves the manifest's references (its 0600 file or a command such as
//! `pass show`) and sends the values over the SSH session's stdin to
//! `workstation box hold-secrets`. That process keeps them in memory and
//! answers `workstation box launch` on a unix socket that only root may
//! use: no value is ever in a file, an argument or an environment other
//! than the program's own. The box's halt ends it with the box; `up` and
//! `restart` hand the values over again (a rotated value replaces the old).
//!
//! Protocol: one JSON request per connection, one JSON answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::laptop::secrets::Handover;

/// A slow or stuck client must not hold up the next program's start.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Get(Vec<String>),
    Load(Handover),
}

#[derive(Debug, thiserror::Error)]
pub enum HeldError {
    #[error("no secrets were handed to this box (nothing answers on {socket}); run `workstation up` on the laptop, which hands them over")]
    NotHeld { socket: String },
    #[error("the holder of this box's secrets ({socket}): {message}")]
    Io { socket: String, message: String },
}

/// The references' answers from the holder at `socket`.
pub fn get(socket: &str, references: &[String]) -> Result<Handover, HeldError> {
    ask(socket, &Request::Get(references.to_vec()))
}

/// Hands `handover` to the box's holder, starting one (detached from this
/// SSH session) when none runs. Returns whether one was started.
pub fn hand_over(socket: &str, handover: Handover) -> Result<bool, HeldError> {
    match ask(socket, &Request::Load(handover.clone())) {
        Ok(_) => Ok(false),
        Err(HeldError::NotHeld { .. }) => start(socket, &handover).map(|_| true),
        Err(e) => Err(e),
    }
}

fn ask(socket: &str, request: &Request) -> Result<Handover, HeldError> {
    let io = |e: std::io::Error| HeldError::Io { socket: socket.into(), message: e.to_string() };
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(HeldError::NotHeld { socket: socket.into() })
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    serde_json::to_writer(&mut stream, request).map_err(|e| io(e.into()))?;
    stream.write_all(b"\n").map_err(io)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).map_err(io)?;
    serde_json::from_str(&line).map_err(|_| HeldError::Io { socket: socket.into(), message: "it did not answer (is it root that asks?)".into() })
}

/// Starts `workstation box hold-secrets --serve` in a session of its own
/// (so it outlives this SSH session) and gives it the values on its stdin;
/// returns once it listens.
fn start(socket: &str, handover: &Handover) -> Result<(), HeldError> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let io = |e: std::io::Error| HeldError::Io { socket: socket.into(), message: format!("cannot start it: {e}") };
    let exe = std::env::current_exe().map_err(io)?;
    let mut cmd = Command::new(exe);
    cmd.args(["box", "hold-secrets", "--serve", "--socket", socket]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(std::io::Error::from));
    }
    let mut child = cmd.spawn().map_err(io)?;
    let mut stdin = child.stdin.take().expect("piped");
    serde_json::to_writer(&mut stdin, handover).map_err(|e| io(e.into()))?;
    drop(stdin);
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut ready).map_err(io)?;
    match ready.trim() {
        "ready" => Ok(()),
        _ => Err(HeldError::Io { socket: socket.into(), message: format!("it exited ({})", child.wait().map_err(io)?) }),
    }
}

/// The holder: reads the values from stdin, listens on `socket` (mode
/// 0600, replacing a stale one atomically), says `ready` on stdout and
/// answers until the box halts.
pub fn serve(socket: &str) -> std::io::Result<()> {
    no_core_dumps();
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let mut held: Handover = serde_json::from_str(&text).map_err(std::io::Error::other)?;
    drop(text);
    // Another hand-over started a holder meanwhile: it takes the values,
    // and this one never replaces its socket (which would orphan it).
    if ask(socket, &Request::Load(held.clone())).is_ok() {
        println!("ready");
        return Ok(());
    }
    let path = Path::new(socket);
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let staging = format!("{socket}.{}", std::process::id());
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&staging, path)?;
    println!("ready");
    std::io::stdout().flush()?;
    for stream in listener.incoming().flatten() {
        let _ = answer(stream, &mut held);
    }
    Ok(())
}

/// A crash must not write the values into a core file.
pub fn no_core_dumps() {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

fn answer(mut stream: UnixStream, held: &mut Handover) -> std::io::Result<()> {
    // Root only: the socket's mode says so, and the peer's credentials
    // say so again should the mode ever be loosened.
    if !rustix::net::sockopt::socket_peercred(&stream)?.uid.is_root() {
        return Ok(());
    }
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line).map_err(std::io::Error::other)? {
        Request::Get(references) => {
            let mut out = Handover::default();
            for r in references {
                match held.values.get(&r) {
                    Some(v) => drop(out.values.insert(r, v.clone())),
                    None => {
                        let why = held.missing.get(&r).cloned().unwrap_or_else(|| "the laptop did not hand it over; run `workstation up`".into());
                        out.missing.insert(r, why);
                    }
                }
            }
            out
        }
        Request::Load(handover) => {
            *held = handover;
            Handover::default()
        }
    };
    serde_json::to_writer(&mut stream, &reply)?;
    stream.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_answers_what_it_holds_and_why_the_rest_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("secrets.sock").display().to_string();
        let mut held = Handover::default();
        held.values.insert("ssm:/a".into(), "value-a".into());
        held.missing.insert("ssm:/b".into(), "not in secrets.toml".into());
        let listener = UnixListener::bind(&socket).unwrap();
        let serving = std::thread::spawn(move || {
            for stream in listener.incoming().take(3) {
                answer(stream.unwrap(), &mut held).unwrap();
            }
        });
        let got = get(&socket, &["ssm:/a".into(), "ssm:/b".into(), "ssm:/c".into()]).unwrap();
        assert_eq!(got.values["ssm:/a"], "value-a");
        assert_eq!(got.missing["ssm:/b"], "not in secrets.toml");
        assert!(got.missing["ssm:/c"].contains("workstation up"));
        let rotated = Handover { values: [("ssm:/a".to_string(), "rotated".to_string())].into(), missing: Default::default() };
        assert!(!hand_over(&socket, rotated).unwrap(), "the running holder took the new values");
        assert_eq!(get(&socket, &["ssm:/a".into()]).unwrap().values["ssm:/a"], "rotated");
        serving.join().unwrap();
        let gone = dir.path().join("none.sock").display().to_string();
        assert!(matches!(get(&gone, &[]), Err(HeldError::NotHeld { .. })));
    }
}
