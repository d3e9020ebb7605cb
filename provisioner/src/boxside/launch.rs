//! `workstation box launch`: how a program with secrets starts. supervisord
//! runs the program's launcher script, which execs this with the program's
//! references (never values); this reads every value, drops to the
//! program's user and execs the program with them in its environment. So a
//! value lives only in that program's memory and environment: not in
//! supervisord's configuration, a file, an argument or a log, and a
//! `restart` reads it again (a rotated value takes effect).

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::manifest::SecretRef;
use crate::stack::layout::SecretSource;

/// Why a program could not start. Names the variable and the reference,
/// never a value.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("cannot start: secret {var} ({reference}): {why}")]
    Secret { var: String, reference: String, why: String },
    #[error("cannot start: this box's owner, which {{owner}} in a secret stands for: {0}")]
    Owner(String),
    #[error("cannot start: {0}")]
    Held(#[from] super::held::HeldError),
    #[error("cannot start: user {0:?} does not exist on this box")]
    NoUser(String),
    #[error("cannot start {program}: {source}")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct Launch {
    pub from: SecretSource,
    /// The laptop's holder (`from` laptop).
    pub socket: Option<String>,
    pub user: Option<String>,
    pub secrets: Vec<(String, SecretRef)>,
    pub program: Vec<String>,
}

impl Launch {
    /// Reads the values and execs the program; returns only on failure.
    pub async fn run(self) -> Unreadable {
        // exec makes the program dumpable again (unless setuid).
        super::held::no_core_dumps();
        let values = match self.read().await {
            Ok(values) => values,
            Err(e) => return e,
        };
        let (program, args) = self.program.split_first().expect("clap requires the program");
        let mut cmd = Command::new(program);
        cmd.args(args).envs(values);
        if let Some(name) = &self.user {
            match user_ids(name) {
                Some((uid, gid)) => drop_to(&mut cmd, name, uid, gid),
                None => return Unreadable::NoUser(name.clone()),
            }
        }
        Unreadable::Exec { program: program.clone(), source: cmd.exec() }
    }

    async fn read(&self) -> Result<Vec<(String, String)>, Unreadable> {
        let unreadable = |var: &str, reference: &SecretRef, why: String| Unreadable::Secret { var: var.into(), reference: reference.to_string(), why };
        let mut values = Vec::new();
        match self.from {
            SecretSource::Laptop => {
                let socket = self.socket.as_deref().unwrap_or_default();
                let references: Vec<String> = self.secrets.iter().map(|(_, r)| r.to_string()).collect();
                let mut held = super::held::get(socket, &references)?;
                for (var, reference) in &self.secrets {
                    match held.values.remove(&reference.to_string()) {
                        Some(v) => values.push((var.clone(), v)),
                        None => return Err(unreadable(var, reference, held.missing.remove(&reference.to_string()).unwrap_or_default())),
                    }
                }
            }
            SecretSource::Aws => {
                let owner = match self.secrets.iter().any(|(_, r)| r.names_owner()) {
                    true => Some(super::secret_read::owner_from_metadata().await.map_err(Unreadable::Owner)?),
                    false => None,
                };
                let aws = super::secret_read::AwsSecrets::new().await;
                for (var, reference) in &self.secrets {
                    let concrete = owner.as_ref().map_or_else(|| reference.clone(), |o| reference.for_owner(o.as_str()));
                    let value = aws.read(&concrete).await.map_err(|why| unreadable(var, &concrete, why))?;
                    values.push((var.clone(), value));
                }
            }
        }
        Ok(values)
    }
}

/// The uid and gid of `name`, from the system's user database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is to memory owned here and sized as passed.
    let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    (rc == 0 && !found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

/// As supervisord's `user=` does: the user's groups, its gid, its uid.
fn drop_to(cmd: &mut Command, name: &str, uid: u32, gid: u32) {
    let name = CString::new(name).expect("user_ids took it");
    // SAFETY: between fork and exec only async-signal-safe calls, on
    // memory that was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
            check(libc::initgroups(name.as_ptr(), gid))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_secret_is_named_by_its_reference_never_by_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            from: SecretSource::Laptop,
            socket: Some(dir.path().join("none.sock").display().to_string()),
            user: None,
            secrets: vec![("STRIPE_KEY".into(), "ssm:/workstation/shared/stripe".parse().unwrap())],
            program: vec!["/bin/true".into()],
        };
        let e = launch.run().await.to_string();
        assert!(e.contains("no secrets were handed to this box") && e.contains("workstation up"), "{e}");
        assert!(user_ids("root") == Some((0, 0)) && user_ids("no-such-user-here").is_none());
    }
}
