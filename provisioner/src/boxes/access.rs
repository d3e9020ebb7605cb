//! Reaching a box from the laptop: its SSH target, the session with the
//! pinned key, the box's shell, pinning the key it published, and the
//! OpenSSH configuration that lets plain `ssh` use the same pins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use super::power::POLL;
use super::{Context, LifecycleError};
use crate::manifest::name::{BoxName, Owner};
use crate::poll;
use crate::provider::{BoxInfo, BoxState};
use crate::ssh::known_hosts::{self, Pinned};
use crate::ssh::remote::{self, Target};
use crate::ssh::ssh_config::{self, HostEntry};
use crate::stack::shell::BoxShell;

/// sshd may start a little after the box published its key.
const SSH_READY_TIMEOUT: Duration = Duration::from_secs(3 * 60);

impl Context {
    /// Connects over the pinned host key and asks the box for its layout.
    pub async fn shell(&self, info: &BoxInfo) -> Result<BoxShell, LifecycleError> {
        self.probe(self.connect(info).await?, &info.name).await
    }

    /// The box's layout, with where its programs' secrets come from (a box
    /// in AWS reads them itself; a local box gets them from this laptop)
    /// and its queues are (SQS; a local box's own server).
    pub(super) async fn probe(&self, session: remote::Session, name: &str) -> Result<BoxShell, LifecycleError> {
        let mut shell = BoxShell::probe(session, name).await?;
        if self.provider.kind() == crate::provider::ProviderKind::Local {
            shell.layout.secrets = crate::stack::layout::SecretSource::Laptop;
            shell.layout.queues = crate::stack::layout::QueueHost::Beside;
        }
        Ok(shell)
    }

    /// Connect, probe, run `work` on the box's shell, close the session
    /// whatever the outcome: the one way the laptop works on a box.
    pub async fn on_box<T, E: From<LifecycleError>>(&self, info: &BoxInfo, work: impl AsyncFnOnce(&BoxShell) -> Result<T, E>) -> Result<T, E> {
        let shell = self.shell(info).await?;
        let result = work(&shell).await;
        shell.close().await;
        result
    }

    /// Pins the key the box published. With `replace`, a different pinned
    /// key is overwritten (after a deliberate rebuild).
    pub async fn pin(&self, name: &BoxName, replace: bool) -> Result<(BoxInfo, Pinned, String), LifecycleError> {
        let info = self.find(name).await?;
        let published = info.host_key.as_deref().ok_or_else(|| LifecycleError::NoHostKey { name: info.name.clone(), id: info.id.clone() })?;
        let key = known_hosts::parse_key(published)?;
        let outcome = self.known_hosts.pin(&known_hosts::alias(&info.id), &info.name, &key, replace)?;
        Ok((info, outcome, known_hosts::fingerprint(&key)))
    }

    /// Where to reach a running box; a box in any other state is an error
    /// that says how to start it (instead of a connection timing out).
    pub fn target(&self, info: &BoxInfo) -> Result<Target, LifecycleError> {
        if info.state != BoxState::Running {
            return Err(LifecycleError::Stopped { name: info.name.clone(), state: info.state.as_str() });
        }
        // Through Session Manager the address is only what errors show.
        let via = self.ssh.ssm.as_ref().map(|s| s.argv(&info.id, "22"));
        let ip = match (info.address, &via) {
            (Some(ip), _) => ip,
            (None, Some(_)) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            (None, None) => return Err(LifecycleError::NoAddress { name: info.name.clone(), id: info.id.clone() }),
        };
        Ok(Target {
            name: info.name.clone(),
            address: SocketAddr::new(ip, 22),
            via,
            user: self.login_user(info),
            alias: known_hosts::alias(&info.id),
            identity: self.ssh.identity.clone(),
        })
    }

    pub async fn connect(&self, info: &BoxInfo) -> Result<remote::Session, LifecycleError> {
        let target = self.target(info)?;
        if self.pushes_key(info) {
            self.push_key(info).await?;
        }
        match remote::connect(&target, &self.known_hosts).await {
            // sshd's reason beats our guess (a wrong user name).
            Err(e @ remote::RemoteError::AuthFailed { .. }) => match self.provider.sshd_refusal(&info.id) {
                Some(why) => Err(LifecycleError::KeyRefused { refused: Box::new(e), why }),
                None => Err(e.into()),
            },
            result => Ok(result?),
        }
    }

    /// Whether logging in to `info` takes a key pushed for the login: a
    /// team box someone else made (CI) admits its team's engineers only so.
    pub fn pushes_key(&self, info: &BoxInfo) -> bool {
        info.team.is_some() && info.owner != self.owner.as_str()
    }

    /// The account a login to `info` uses: the configured one, but on a
    /// team box in AWS made by someone else its owner's (the image makes
    /// only that account; a local box is logged in to as root).
    fn login_user(&self, info: &BoxInfo) -> String {
        match self.pushes_key(info) && self.provider.kind() == crate::provider::ProviderKind::Aws {
            true => info.owner.clone(),
            false => self.ssh.user.clone(),
        }
    }

    /// Lets this laptop's key log in to team box `info` for a minute (EC2
    /// Instance Connect), its comment naming you for the box's access log.
    /// Pins the key the box published first, as for your own boxes: it is
    /// a tag only the box's role writes.
    pub async fn push_key(&self, info: &BoxInfo) -> Result<(), LifecycleError> {
        if self.known_hosts.get(&known_hosts::alias(&info.id))?.is_none() {
            let published = info.host_key.as_deref().ok_or_else(|| LifecycleError::NoHostKey { name: info.name.clone(), id: info.id.clone() })?;
            self.known_hosts.pin(&known_hosts::alias(&info.id), &info.name, &known_hosts::parse_key(published)?, false)?;
        }
        let key = read_public_key(&public_key_path(&self.ssh.identity))?;
        let mut words = key.split_whitespace();
        let line = format!("{} {} {}@workstation", words.next().unwrap_or_default(), words.next().unwrap_or_default(), self.owner);
        Ok(self.provider.push_key(info, &self.login_user(info), &line).await?)
    }

    /// The `Host` alias of `info` in the generated OpenSSH config: its name
    /// for your boxes, `TEAM.ENV` for a team box you log in to by a pushed key.
    pub fn ssh_alias(&self, info: &BoxInfo) -> String {
        match info.team.as_ref().filter(|_| self.pushes_key(info)) {
            Some(t) => ssh_config::team_alias(&t.label()),
            None => ssh_config::host_alias(&info.name),
        }
    }

    /// Options for an OpenSSH client run on a box just woken, with the
    /// config just written: over TCP, no ProxyCommand lookup (the config has
    /// the address); through Session Manager, the config's ProxyCommand.
    pub fn openssh_options(&self) -> Vec<String> {
        match self.ssh.ssm {
            None => vec!["-o".into(), "ProxyCommand=none".into()],
            Some(_) => Vec::new(),
        }
    }

    pub fn via_ssm(&self) -> bool {
        self.ssh.ssm.is_some()
    }

    /// The Session Manager command for `port` of `info`, when sessions go
    /// that way (`workstation proxy` runs it in ssh's place).
    pub fn ssm_session(&self, info: &BoxInfo, port: u16) -> Option<Vec<String>> {
        self.ssh.ssm.as_ref().map(|s| s.argv(&info.id, &port.to_string()))
    }

    /// Regenerates the OpenSSH config for this owner's boxes; with
    /// `include`, also makes sure `~/.ssh/config` includes it.
    pub async fn write_ssh_config(&self, include: bool) -> Result<PathBuf, LifecycleError> {
        // Your boxes, and the team boxes others made (which admit you if
        // you are of their team).
        let mut boxes = self.provider.list(Some(&self.owner)).await?;
        boxes.extend(self.provider.team_boxes().await?.into_iter().filter(|b| self.pushes_key(b)));
        let entries: Vec<HostEntry> = boxes
            .iter()
            .filter_map(|b| {
                // The name is a tag anyone who may tag the instance can
                // write: only a valid box name goes into an OpenSSH config.
                if let Err(e) = b.name.parse::<BoxName>() {
                    tracing::warn!("box {} left out of the SSH config: its name tag is not a box name ({e})", b.id);
                    return None;
                }
                // A team box's account is its owner's: a tag too.
                if let Err(e) = self.login_user(b).parse::<Owner>() {
                    tracing::warn!("box {} left out of the SSH config: its owner tag is not an owner name ({e})", b.id);
                    return None;
                }
                let env = b.team.as_ref().filter(|_| self.pushes_key(b)).map(|t| t.label());
                Some(HostEntry { name: b.name.clone(), id: b.id.clone(), address: b.address?.to_string(), user: self.login_user(b), env })
            })
            .collect();
        let generated = self.paths.ssh_config();
        ssh_config::write_generated(
            &generated,
            &ssh_config::render(&entries, &self.ssh.identity, self.known_hosts.path(), &self.ssh.proxy, self.ssh.ssm.is_none()),
        )?;
        if include {
            ssh_config::ensure_include(&self.paths.home.join(".ssh/config"), &generated)?;
        }
        Ok(generated)
    }

    /// Connects once SSH answers with the pinned key; the session is the
    /// caller's to use (one connection for a whole `create`). Past the
    /// deadline, the last transient failure is the error.
    pub(super) async fn wait_ssh(&self, info: &BoxInfo) -> Result<remote::Session, LifecycleError> {
        let mut last = None;
        let session = poll::until(SSH_READY_TIMEOUT, POLL, async || match self.connect(info).await {
            Ok(session) => Ok(Some(session)),
            Err(LifecycleError::Remote(e)) if e.is_transient() => {
                last = Some(LifecycleError::Remote(e));
                Ok(None)
            }
            Err(e) => Err(e),
        })
        .await?;
        session.ok_or_else(|| last.take().expect("a wait that timed out failed at least once"))
    }
}

/// The public half of the SSH key `identity` (OpenSSH's naming).
pub fn public_key_path(identity: &Path) -> PathBuf {
    let mut p = identity.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

/// Reads the user's SSH public key for import and authorized_keys.
pub fn read_public_key(path: &Path) -> Result<String, LifecycleError> {
    std::fs::read_to_string(path).map(|k| k.trim().to_string()).map_err(|source| LifecycleError::PublicKey { path: path.to_owned(), source })
}
