//! SSH to boxes with russh, trusting only the pinned host key.
//!
//! There is no trust-on-first-use path: a key must have been pinned (from
//! the box's own published tag) before [`connect`] will talk to the box.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{load_secret_key, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ssh::known_hosts::{fingerprint, KnownHosts, PinError};
use crate::ssh::relay::Relay;

/// Bounds one TCP connect + key exchange; the caller decides about retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("no host key pinned for box {name}; run `workstation create {name}` (it pins the key the box publishes) or `workstation pin {name}`")]
    NotPinned { name: String },
    #[error(
        "box {name} at {address} presented host key {presented}, but {pinned} is pinned.\n\
         Someone may be intercepting the connection, or the box was rebuilt. \
         If it was rebuilt on purpose, run `workstation pin {name} --replace` to pin the key it published"
    )]
    HostKeyMismatch { name: String, address: SocketAddr, pinned: String, presented: String },
    #[error("cannot load SSH key {path}; set ssh_key in ~/.config/workstation/config.toml or create one with `ssh-keygen -t ed25519`")]
    Identity {
        path: PathBuf,
        #[source]
        source: russh::keys::Error,
    },
    #[error("box {name} refused key {path} for user {user}; check ssh_user in ~/.config/workstation/config.toml")]
    AuthFailed { name: String, user: String, path: PathBuf },
    #[error("cannot reach box {name} at {address}")]
    Connect {
        name: String,
        address: SocketAddr,
        #[source]
        source: russh::Error,
    },
    #[error("cannot run {command} to reach box {name} through Session Manager: install the AWS CLI v2 and the Session Manager plugin (docs/engineer.md)")]
    RelayStart {
        name: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach box {name} through Session Manager; the session said: {said}")]
    Relayed {
        name: String,
        said: String,
        #[source]
        source: russh::Error,
    },
    #[error("timed out connecting to box {name} at {address} after {CONNECT_TIMEOUT:?}")]
    Timeout { name: String, address: SocketAddr },
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("SSH session to box {name} failed")]
    Session {
        name: String,
        #[source]
        source: russh::Error,
    },
    #[error("reading the input sent to box {name}")]
    Input {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing output of box {name}")]
    Output {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl RemoteError {
    /// Worth retrying while a box is still booting.
    pub fn is_transient(&self) -> bool {
        // Through Session Manager, a box that just booted is not connected
        // to it yet (TargetNotConnected) for a while: worth a retry too.
        matches!(self, RemoteError::Connect { .. } | RemoteError::Relayed { .. } | RemoteError::Timeout { .. })
    }
}

/// Where and as whom to connect, and under which alias the key is pinned.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: SocketAddr,
    pub user: String,
    pub alias: String,
    pub identity: PathBuf,
    /// A command whose stdin and stdout are the connection (Session
    /// Manager's `aws ssm start-session`), instead of TCP to `address`.
    pub via: Option<Vec<String>>,
}

struct PinnedKey {
    pinned: PublicKey,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for PinnedKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        *self.presented.lock().expect("not poisoned") = Some(key.clone());
        Ok(key.key_data() == self.pinned.key_data())
    }
}

pub struct Session {
    name: String,
    handle: Handle<PinnedKey>,
    /// The relay the connection runs through, if any: it lives as long as
    /// the session.
    _relay: Option<Relay>,
}

/// A command kept running on the box; see [`Session::hold`].
pub struct Held {
    channel: russh::Channel<client::Msg>,
}

impl Held {
    pub async fn release(self) {
        // Best effort: if the channel is gone, so is the command.
        let _ = self.channel.eof().await;
        let _ = self.channel.close().await;
    }
}

pub struct Output {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub async fn connect(target: &Target, known_hosts: &KnownHosts) -> Result<Session, RemoteError> {
    let name = target.name.clone();
    let pinned = known_hosts.get(&target.alias)?.ok_or_else(|| RemoteError::NotPinned { name: name.clone() })?;
    let key = load_secret_key(&target.identity, None).map_err(|source| RemoteError::Identity { path: target.identity.clone(), source })?;

    let presented = Arc::new(Mutex::new(None));
    let handler = PinnedKey { pinned: pinned.clone(), presented: presented.clone() };
    let config = Arc::new(client::Config { nodelay: true, ..Default::default() });
    let (relay, stream) = match &target.via {
        None => (None, None),
        Some(argv) => {
            let (relay, stream) = Relay::spawn(argv).map_err(|source| RemoteError::RelayStart { name: name.clone(), command: argv[0].clone(), source })?;
            (Some(relay), Some(stream))
        }
    };
    let connecting = async {
        match stream {
            None => client::connect(config, target.address, handler).await,
            Some(stream) => client::connect_stream(config, stream, handler).await,
        }
    };
    let mut handle = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => return Err(RemoteError::Timeout { name, address: target.address }),
        Ok(Ok(h)) => h,
        Ok(Err(russh::Error::UnknownKey)) => {
            let presented = presented.lock().expect("not poisoned").clone();
            return Err(RemoteError::HostKeyMismatch {
                name,
                address: target.address,
                pinned: fingerprint(&pinned),
                presented: presented.as_ref().map(fingerprint).unwrap_or_else(|| "a certificate".into()),
            });
        }
        Ok(Err(source)) => {
            return Err(match &relay {
                Some(relay) => RemoteError::Relayed { name, said: relay.said(), source },
                None => RemoteError::Connect { name, address: target.address, source },
            })
        }
    };

    let session_err = |source| RemoteError::Session { name: target.name.clone(), source };
    let hash = handle.best_supported_rsa_hash().await.map_err(session_err)?.flatten();
    let auth = handle.authenticate_publickey(&target.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await.map_err(session_err)?;
    if !auth.success() {
        return Err(RemoteError::AuthFailed { name, user: target.user.clone(), path: target.identity.clone() });
    }
    Ok(Session { name, handle, _relay: relay })
}

impl Session {
    /// Runs `command` (a shell command line) and streams its output.
    /// Returns the exit status (255 if the box gave none, like OpenSSH).
    pub async fn exec<O, E>(&self, command: &str, stdout: &mut O, stderr: &mut E) -> Result<u32, RemoteError>
    where
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        self.exec_input(command, tokio::io::empty(), stdout, stderr).await
    }

    /// Runs `command` with `input` streamed to its stdin (64 KiB at a time,
    /// never all in memory) while its output streams back. EOF is sent only
    /// after all of `input` was read; if reading fails the channel is closed
    /// without EOF and the error returned.
    pub async fn exec_input<I, O, E>(&self, command: &str, mut input: I, stdout: &mut O, stderr: &mut E) -> Result<u32, RemoteError>
    where
        I: AsyncRead + Unpin,
        O: AsyncWrite + Unpin,
        E: AsyncWrite + Unpin,
    {
        const CHUNK: usize = 64 * 1024;
        let session_err = |source| RemoteError::Session { name: self.name.clone(), source };
        let out_err = |source| RemoteError::Output { name: self.name.clone(), source };
        let channel = self.handle.channel_open_session().await.map_err(session_err)?;
        channel.exec(true, command).await.map_err(session_err)?;
        let (mut reader, writer) = channel.split();

        let send = async {
            loop {
                let mut buf = Vec::with_capacity(CHUNK);
                let n = (&mut input).take(CHUNK as u64).read_to_end(&mut buf).await;
                match n {
                    Err(source) => {
                        let _ = writer.close().await;
                        return Err(RemoteError::Input { name: self.name.clone(), source });
                    }
                    Ok(0) => return writer.eof().await.map_err(session_err),
                    Ok(_) => writer.data_bytes(buf).await.map_err(session_err)?,
                }
            }
        };
        let receive = async {
            let mut status = None;
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => stdout.write_all(&data).await.map_err(out_err)?,
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.write_all(&data).await.map_err(out_err)?,
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    _ => {}
                }
            }
            stdout.flush().await.map_err(out_err)?;
            stderr.flush().await.map_err(out_err)?;
            Ok::<_, RemoteError>(status.unwrap_or(255))
        };
        tokio::pin!(send, receive);
        // The command may exit before reading all its input (it failed):
        // its status is the answer, not the write that found the channel
        // closed.
        let mut sending = true;
        loop {
            tokio::select! {
                sent = &mut send, if sending => {
                    sending = false;
                    if let Err(e @ RemoteError::Input { .. }) = sent {
                        return Err(e);
                    }
                }
                status = &mut receive => return status,
            }
        }
    }

    /// Starts `command` and keeps it running while the returned [`Held`]
    /// lives; returns once it printed its first output (e.g. "a lock is
    /// taken"). `None` if it ended without printing. Its stdin closes when
    /// the hold is released or the connection drops, so a lock held this way
    /// can never outlive this session.
    pub async fn hold(&self, command: &str) -> Result<Option<Held>, RemoteError> {
        let session_err = |source| RemoteError::Session { name: self.name.clone(), source };
        let mut channel = self.handle.channel_open_session().await.map_err(session_err)?;
        channel.exec(true, command).await.map_err(session_err)?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Data { .. }) => return Ok(Some(Held { channel })),
                Some(ChannelMsg::ExitStatus { .. } | ChannelMsg::Close | ChannelMsg::Eof) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    /// Opens a TCP connection to `127.0.0.1:port` on the box, through SSH:
    /// services listen on the box's loopback, unreachable otherwise.
    pub async fn tcp(&self, port: u16) -> Result<russh::ChannelStream<client::Msg>, RemoteError> {
        let channel = self
            .handle
            .channel_open_direct_tcpip("127.0.0.1", port.into(), "127.0.0.1", 0)
            .await
            .map_err(|source| RemoteError::Session { name: self.name.clone(), source })?;
        Ok(channel.into_stream())
    }

    pub async fn output(&self, command: &str) -> Result<Output, RemoteError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = self.exec(command, &mut stdout, &mut stderr).await?;
        Ok(Output { status, stdout, stderr })
    }

    pub async fn close(self) {
        // Best effort: the box may already have gone away.
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}
