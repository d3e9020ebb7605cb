//! The daemon: reconcile the hosts file with the saved state, then serve
//! requests on the Unix socket and follow DNS targets as their answers
//! change. Every request is checked twice: who is calling (peer
//! credentials against `allowed_users`) and which names (the allowlist).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::agent::{Agent, AgentError};
use crate::config::Config;
use crate::hostsfile::{HostsFile, Written};
use crate::names;
use crate::resolve::Resolver;
use workstation_hosts_protocol::{self as protocol, Request, Response, Target, WriteMode, MAX_REQUEST, VERSION};

/// How long a caller has to send its request line.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often due DNS targets are looked for (the TTL is honoured to this).
const DNS_TICK: Duration = Duration::from_millis(200);
const MAX_DNS_RETRY: Duration = Duration::from_secs(60);
/// Names one request may point, and names pointed at once: an allowed
/// suffix would otherwise let a caller grow the hosts file without bound.
const MAX_NAMES_PER_REQUEST: usize = 64;
const MAX_NAMES: usize = 512;
/// Connections served at once; more are told the agent is busy.
const MAX_CONNECTIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("the DNS resolver: {0}")]
    Resolver(String),
    #[error("another agent is already listening on {0}; stop it first (`systemctl stop workstation-hosts`)")]
    AlreadyRunning(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

struct Shared {
    agent: Mutex<Agent>,
    config: Config,
    config_path: String,
    resolver: Resolver,
}

impl Shared {
    /// Runs a (blocking, file-writing) agent operation off the async threads.
    async fn agent<T: Send + 'static>(self: &Arc<Self>, f: impl FnOnce(&mut Agent) -> T + Send + 'static) -> T {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&mut this.agent.lock().unwrap_or_else(|p| p.into_inner()))).await.expect("agent operations do not panic")
    }
}

/// Serves on `listener` (see [`bind`]; tests bind their own) until SIGTERM
/// or Ctrl-C, after making the hosts file agree with the saved state.
pub async fn serve(config: Config, config_path: &Path, listener: UnixListener) -> Result<(), ServeError> {
    let allow = config.allowlist();
    let mut agent = Agent::open(HostsFile::new(&config.hosts_file), Some(config.state_file()))?;
    let dropped = agent.retain(|n| allow.allows(n))?;
    if !dropped.is_empty() {
        tracing::warn!("dropped names no longer on the allowlist: {}", dropped.join(", "));
    }
    let written = agent.reconcile()?;
    tracing::info!("{} reconciled with the saved state ({:?})", config.hosts_file.display(), written.mode);
    let resolver = Resolver::new(&config.nameservers).map_err(ServeError::Resolver)?;
    tracing::info!("listening on {}", config.socket.display());
    let shared = Arc::new(Shared { agent: Mutex::new(agent), config_path: config_path.display().to_string(), config, resolver });

    tokio::spawn(follow_dns(shared.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(io_err("handling SIGTERM"))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            handle(shared, stream).await;
                            drop(slot);
                        });
                    }
                    Err(_) => { tokio::spawn(reply(stream, Response::error(format!("busy: {MAX_CONNECTIONS} requests in progress; try again")))); }
                },
                Err(e) => tracing::warn!("accept: {e}"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = std::fs::remove_file(&shared.config.socket);
    Ok(())
}

/// Binds the socket: mode 0666, because who may talk is decided by peer
/// credentials, not file permissions (a group would need managing).
/// Must run inside the tokio runtime that serves it.
pub fn bind(socket: &Path) -> Result<UnixListener, ServeError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io_err(format!("setting the mode of {}", dir.display())))?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(ServeError::AlreadyRunning(socket.display().to_string()));
        }
        std::fs::remove_file(socket).map_err(io_err(format!("removing the stale socket {}", socket.display())))?;
    }
    let listener = UnixListener::bind(socket).map_err(io_err(format!("listening on {}", socket.display())))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).map_err(io_err(format!("setting the mode of {}", socket.display())))?;
    Ok(listener)
}

async fn handle(shared: Arc<Shared>, mut stream: UnixStream) {
    let response = respond(&shared, &mut stream).await.unwrap_or_else(Response::error);
    reply(stream, response).await;
}

async fn reply(mut stream: UnixStream, response: Response) {
    let mut line = serde_json::to_string(&response).expect("responses serialize");
    line.push('\n');
    let _ = stream.write_all(line.as_bytes()).await;
}

async fn respond(shared: &Arc<Shared>, stream: &mut UnixStream) -> Result<Response, String> {
    let uid = stream.peer_cred().map_err(|e| format!("cannot identify the caller: {e}"))?.uid();
    // The request is read (bounded, with a timeout) before a refused caller
    // is answered: answering and closing first would break the pipe under
    // the caller's write, and it would see "Broken pipe" instead of why.
    let mut line = String::new();
    let mut reader = BufReader::new(&mut *stream).take(MAX_REQUEST);
    let read = tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await;
    check_caller(shared, uid)?;
    match read {
        Ok(Ok(_)) if line.ends_with('\n') => {}
        Ok(Ok(_)) => return Err(format!("request must be one line of at most {MAX_REQUEST} bytes, ending in a newline")),
        Ok(Err(e)) => return Err(format!("reading the request: {e}")),
        Err(_) => return Err(format!("no request within {READ_TIMEOUT:?}")),
    }
    let request = protocol::parse_request(&line)?;
    let allow = shared.config.allowlist();
    let written = match request {
        Request::Status => None,
        Request::Point { names, to, label } => {
            if names.is_empty() {
                return Err("point: names is empty; list the hostnames to point".into());
            }
            if names.len() > MAX_NAMES_PER_REQUEST {
                return Err(format!("point: {} names in one request; at most {MAX_NAMES_PER_REQUEST}", names.len()));
            }
            let names = names.iter().map(|n| allow.check(n, &shared.config_path)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
            let pointed = shared.agent(|a| a.pointed()).await;
            if pointed.len() + names.iter().filter(|n| !pointed.contains(*n)).count() > MAX_NAMES {
                return Err(format!("point: the agent already points {} names, and holds at most {MAX_NAMES}; clear some first", pointed.len()));
            }
            if let Some(label) = &label {
                names::label(label)?;
            }
            let resolved = match &to {
                Target::Dns(dns) => {
                    names::hostname(dns).map_err(|e| format!("to.dns: {e}"))?;
                    Some(shared.resolver.resolve(dns).await?)
                }
                Target::Address(a) if a.is_unspecified() || a.is_multicast() => {
                    return Err(format!("to.address: {a} is not a host address"));
                }
                Target::Address(_) => None,
            };
            let to = match to {
                Target::Dns(d) => Target::Dns(d.to_ascii_lowercase()),
                other => other,
            };
            Some(shared.agent(move |a| a.point(&names, to, label, resolved)).await.map_err(|e| e.to_string())?)
        }
        Request::Clear { names } => {
            let names = names.map(|ns| ns.iter().map(|n| names::hostname(n)).collect::<Result<Vec<_>, _>>()).transpose().map_err(|e| e.to_string())?;
            Some(shared.agent(move |a| a.clear(names.as_deref())).await.map_err(|e| e.to_string())?)
        }
    };
    Ok(finish(shared, written).await)
}

fn check_caller(shared: &Shared, uid: u32) -> Result<(), String> {
    if uid == 0 {
        return Ok(());
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name);
    match user {
        Some(name) if shared.config.allowed_users.contains(&name) => Ok(()),
        Some(name) => Err(format!(
            "user {name} (uid {uid}) may not change this machine's hostnames: not in allowed_users of {}; an admin can allow it with `sudo workstation-hosts install --user {name}`",
            shared.config_path
        )),
        None => Err(format!("uid {uid} has no user name and may not change this machine's hostnames")),
    }
}

/// The response for a done request: status, and the caches flushed if the
/// file changed.
async fn finish(shared: &Arc<Shared>, written: Option<Written>) -> Response {
    let changed = written.as_ref().is_some_and(|w| w.mode != WriteMode::Unchanged);
    if let Some(copy) = written.as_ref().and_then(|w| w.conflict_copy.as_ref()) {
        tracing::warn!("a concurrent edit was saved as {}", copy.display());
    }
    let flushed = if changed { crate::flush::flush().await } else { Vec::new() };
    let status = shared.agent(|a| a.status()).await;
    Response { v: VERSION, ok: true, error: None, changed, write: written.map(|w| w.mode), flushed, status: Some(status) }
}

/// Re-resolves DNS targets when their TTL runs out and rewrites the block
/// when an address moved. A failing lookup keeps the last address and is
/// retried with backoff.
async fn follow_dns(shared: Arc<Shared>) {
    let mut failures: HashMap<String, u32> = HashMap::new();
    loop {
        tokio::time::sleep(DNS_TICK).await;
        let due = shared.agent(|a| a.due(Instant::now())).await;
        for dns in due {
            match shared.resolver.resolve(&dns).await {
                Ok((address, valid_until)) => {
                    failures.remove(&dns);
                    let name = dns.clone();
                    match shared.agent(move |a| a.resolved(&name, address, valid_until)).await {
                        Ok(Some(w)) if w.mode != WriteMode::Unchanged => {
                            tracing::info!("{dns} moved to {address}; hosts file updated");
                            for f in crate::flush::flush().await {
                                tracing::info!("flushed {}: {}", f.cache, f.outcome);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("updating the hosts file for {dns}: {e}"),
                    }
                }
                Err(e) => {
                    let n = failures.entry(dns.clone()).or_insert(0);
                    *n += 1;
                    let retry = Duration::from_secs(1 << (*n).min(6)).min(MAX_DNS_RETRY);
                    tracing::warn!("{e}; keeping the last address, retrying in {retry:?}");
                    let name = dns.clone();
                    shared.agent(move |a| a.resolve_failed(&name, retry)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use workstation_hosts_protocol::BlockLine;

    use super::*;

    /// The daemon on a listener the test bound itself, with a hosts file
    /// of its own: point, status (with what the file's block says), and a
    /// name off the allowlist refused.
    #[tokio::test]
    async fn serves_a_listener_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
        let me = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().map(|u| u.name).unwrap_or_default();
        let config = Config {
            allowed_users: vec![me],
            allowed_names: vec!["api.dev.test".into()],
            allowed_suffixes: vec![".many.test".into()],
            hosts_file: hosts.clone(),
            socket: dir.path().join("agent.sock"),
            state_dir: dir.path().join("state"),
            // Never asked: no DNS target here.
            nameservers: vec!["127.0.0.1:53".parse().unwrap()],
        };
        let socket = config.socket.clone();
        let listener = UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move { serve(config, Path::new("agent.toml"), listener).await });

        let address: IpAddr = "10.78.9.9".parse().unwrap();
        let point = |name: &str| Request::Point { names: vec![name.into()], to: Target::Address(address), label: Some("me/dev".into()) };
        assert!(protocol::call(&socket, &point("api.dev.test")).await.unwrap().changed);
        let status = protocol::call(&socket, &Request::Status).await.unwrap().status.unwrap();
        assert_eq!(status.block, vec![BlockLine { address, names: vec!["api.dev.test".into()] }]);
        assert!(std::fs::read_to_string(&hosts).unwrap().starts_with("127.0.0.1 localhost\n"), "bytes outside the block are kept");
        let refused = protocol::call(&socket, &point("other.test")).await.unwrap_err();
        assert!(refused.to_string().contains("other.test"), "{refused}");
        // An allowed suffix does not let one caller grow the file without bound.
        let many = Request::Point { names: (0..65).map(|i| format!("n{i}.many.test")).collect(), to: Target::Address(address), label: None };
        let refused = protocol::call(&socket, &many).await.unwrap_err();
        assert!(refused.to_string().contains("at most 64"), "{refused}");
        server.abort();
    }
}
