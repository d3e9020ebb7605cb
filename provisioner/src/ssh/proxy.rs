//! `workstation proxy`, OpenSSH's ProxyCommand for boxes (with
//! `ProxyUseFdpass yes`): connect to the box's SSH port and hand the
//! connected socket to ssh, which then speaks to sshd directly. A stopped
//! box is woken by the caller before [`connect_when_up`].

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::poll::{self, Backoff};

/// How long a connect to the last known address may take before the box
/// is looked up: a running box answers in milliseconds, and a stopped
/// instance's address drops packets (so only a timeout says so).
const FAST_CONNECT: Duration = Duration::from_millis(1500);
/// How long a box just found running (woken by another connection a moment
/// ago) may take to answer SSH: as long as a boot may take.
const BOOT_WAIT: Duration = Duration::from_secs(180);
/// One connect attempt while it boots.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Between attempts: soon at first, at most every 2 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// What to say when ssh did not run us as a ProxyCommand with fd passing.
pub const FDPASS_HINT: &str = "cannot hand the connection to ssh: `workstation proxy` is a ProxyCommand for OpenSSH with ProxyUseFdpass yes";

/// A connection to the box's last known address, if it answers at once:
/// no DescribeInstances per ssh connection. Only a private IPv4 address: a
/// stopped instance keeps it, while its public address may be someone
/// else's by now (ssh would refuse that host's key, but the box would never
/// be woken).
pub fn fast_connect(host: IpAddr, port: u16) -> Option<TcpStream> {
    let private = matches!(host, IpAddr::V4(v4) if v4.is_private());
    private.then(|| TcpStream::connect_timeout(&SocketAddr::new(host, port), FAST_CONNECT).ok()).flatten()
}

/// Connects once the box answers, retrying for [`BOOT_WAIT`]; past it, the
/// last failure.
pub async fn connect_when_up(address: SocketAddr) -> io::Result<TcpStream> {
    let mut last = None;
    let stream = poll::until(BOOT_WAIT, RETRY, async || match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
        Ok(stream) => Ok::<_, io::Error>(Some(stream)),
        Err(e) => {
            last = Some(e);
            Ok(None)
        }
    })
    .await?;
    stream.ok_or_else(|| last.take().expect("a wait that timed out failed at least once"))
}

/// Sends the connected socket to ssh over stdout, a Unix socket when ssh
/// runs us with ProxyUseFdpass: one byte carrying it as SCM_RIGHTS (what
/// OpenSSH's mm_receive_fd reads).
pub fn pass_to_ssh(stream: &TcpStream) -> io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let fds = [stream.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(io::stdout().as_fd(), &[io::IoSlice::new(&[0])], &mut control, SendFlags::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_private_address_is_tried_and_a_listener_is_reached() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Loopback is not a private address: it is looked up instead.
        assert!(fast_connect("127.0.0.1".parse().unwrap(), port).is_none());
        assert!(connect_when_up(SocketAddr::new("127.0.0.1".parse().unwrap(), port)).await.is_ok());
    }
}
