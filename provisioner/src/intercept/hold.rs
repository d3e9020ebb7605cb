//! The box's side of an intercept: one bash script, run as root as the
//! remote command of the intercept's SSH connection. It takes the service
//! (a lock per service: a second intercept is refused with the holder),
//! stops it under supervisord, records who holds it, says `held`, then
//! waits on its stdin: the laptop writes a line every
//! [`HEARTBEAT`]; end of input (the laptop ended the intercept, or died)
//! or [`LEASE`] without a line (the laptop slept or lost the network) ends
//! it. Ending closes the SSH connection the forwards live in (its sshd
//! process), waits for the service's ports to be free, and starts the
//! service again. Nothing on the box depends on the laptop coming back.

use std::time::Duration;

use crate::stack::holds::{dir, valid_holder, Holder};
use crate::stack::layout::{sh, Layout};

/// How often the laptop renews the lease.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long the box waits for a renewal before it takes the service back.
pub const LEASE: Duration = Duration::from_secs(10);
/// The exit status of a script that found the service held.
pub const HELD_BY_OTHER: u32 = 3;

/// What the script's first line says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Held; `ipv6`: the box has IPv6 loopback, so the forwards must hold
    /// the ports there too (else a process could take `[::1]:port`, where
    /// clients of `localhost` often connect first).
    Held { ipv6: bool },
    /// Someone else holds it (the record, if it could be read and names a
    /// valid holder: the box writes it, and it is shown on this terminal).
    HeldBy(Option<Holder>),
}

/// The script for `service`, stopped and started with `stop` and `start`
/// (supervisorctl commands), held by `by` (checked by
/// [`crate::stack::holds::valid_holder`]).
/// With `close_connection`, ending the hold closes the SSH connection it
/// runs under (its first sshd ancestor); without, a test can run it under
/// any shell.
pub fn script(layout: &Layout, service: &str, by: &str, ports: &[u16], stop: &str, start: &str, close_connection: bool) -> String {
    let lock = sh(&format!("{}/{service}.lock", dir(layout)));
    let record = sh(&format!("{}/{service}.json", dir(layout)));
    let dir = sh(&dir(layout));
    let find_connection = if close_connection {
        "conn=; p=$$\nwhile [ \"${p:-0}\" -gt 1 ]; do\n  case \"$(cat /proc/$p/comm 2>/dev/null)\" in sshd|sshd-session) conn=$p; break ;; esac\n  p=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status 2>/dev/null)\ndone\n\
         # Without it the forwards would outlive the hold and keep the ports.\n\
         [ -n \"$conn\" ] || { echo 'error: cannot find the sshd process of this connection'; exit 4; }"
    } else {
        "conn="
    };
    let ports_json = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    let ports_words = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    let lease = LEASE.as_secs();
    let (service_json, by_json) = (serde_json::to_string(service).expect("a string"), serde_json::to_string(by).expect("a string"));
    format!(
        r#"set -u
# The lock and the records are root's alone: a user who could open the
# lock could flock it forever and make every intercept wait and fail.
umask 077
mkdir -p {dir}
if [ -L {dir} ] || [ "$(stat -c %u {dir})" != "$(id -u)" ]; then
  printf 'error: %s belongs to another user; remove it (as root) and try again\n' {dir}; exit 4
fi
chmod 0700 {dir}
exec 9>{lock}
# Held: refused, naming the holder. Locked without a record: the last
# holder is giving the service back (starting it); wait for that.
if ! flock -n 9 && {{ [ -e {record} ] || ! flock -w 15 9; }}; then
  printf 'held-by %s\n' "$(cat {record} 2>/dev/null | head -c 4096 | tr -d '\n')"; exit {HELD_BY_OTHER}
fi
# The sshd process of this connection (the forwards live in it): the
# first ancestor named sshd or sshd-session.
{find_connection}
trap '' HUP TERM PIPE
if ! out=$({stop} 2>&1); then printf 'error stopping %s: %s\n' {service_word} "$out"; exit 4; fi
printf '{{"service":%s,"by":%s,"since":"%s","ports":[{ports_json}]}}\n' '{service_sq}' '{by_sq}' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > {record}.new && mv {record}.new {record}
if grep -qs '^00000000000000000000000000000001 ' /proc/net/if_inet6; then echo 'held ipv6'; else echo held; fi
while IFS= read -r -t {lease} line; do :; done
exec >/dev/null 2>&1 </dev/null
rm -f {record}
[ -n "$conn" ] && kill "$conn"
for i in $(seq 100); do
  busy=
  for port in {ports_words}; do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && busy=1; done
  [ -z "$busy" ] && break
  sleep 0.1
done
{start}
"#,
        service_word = sh(service),
        service_sq = service_json.replace('\'', ""),
        by_sq = by_json.replace('\'', ""),
    )
}

/// The script's first line.
pub fn parse_answer(line: &str) -> Option<Answer> {
    match line.trim_end() {
        "held" => return Some(Answer::Held { ipv6: false }),
        "held ipv6" => return Some(Answer::Held { ipv6: true }),
        _ => {}
    }
    let record = line.trim_end().strip_prefix("held-by")?;
    let holder = serde_json::from_str::<Holder>(record.trim()).ok().filter(|h| valid_holder(&h.by));
    Some(Answer::HeldBy(holder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::holds::{list_command, parse_list};

    #[test]
    fn answers_and_records_are_parsed_and_checked() {
        assert_eq!(parse_answer("held\n"), Some(Answer::Held { ipv6: false }));
        assert_eq!(parse_answer("held ipv6\n"), Some(Answer::Held { ipv6: true }));
        let rec = r#"{"service":"api","by":"alice@mac","since":"2026-12-03T10:02:00Z","ports":[8080]}"#;
        let Some(Answer::HeldBy(Some(h))) = parse_answer(&format!("held-by {rec}")) else { panic!() };
        assert_eq!((h.by.as_str(), h.ports.as_slice()), ("alice@mac", &[8080u16][..]));
        assert_eq!(parse_answer("held-by "), Some(Answer::HeldBy(None)));
        assert_eq!(parse_answer("Permission denied"), None);
        // A holder name from the box that would write escape sequences to
        // the terminal is not shown.
        let forged = r#"held-by {"service":"api","by":"\u001b]0;pwned\u0007","since":"2026-12-03T10:02:00Z","ports":[]}"#;
        assert_eq!(parse_answer(forged), Some(Answer::HeldBy(None)));
    }

    /// The script under a real bash: the lock refuses a second holder,
    /// the record is written, and end of input starts the service again.
    #[test]
    fn the_script_holds_refuses_and_restores() {
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Command, Stdio};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap();
        let layout = Layout::new(root, None).unwrap();
        let log = tmp.path().join("ctl.log");
        let ctl = |verb: &str| format!("echo {verb} >> {}", sh(log.to_str().unwrap()));
        let script = script(&layout, "api", "alice@mac", &[1], &ctl("stop"), &ctl("start"), false);
        let spawn = || Command::new("bash").args(["-c", &script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut first = spawn();
        let mut out = BufReader::new(first.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(matches!(parse_answer(&line), Some(Answer::Held { .. })), "{line}");
        first.stdin.as_mut().unwrap().write_all(b"\n").unwrap();

        let second = spawn().wait_with_output().unwrap();
        assert_eq!(second.status.code(), Some(HELD_BY_OTHER as i32));
        // Root's alone: the directory 0700, the lock and the record 0600.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(tmp.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("run/intercepts"), mode("run/intercepts/api.lock"), mode("run/intercepts/api.json")), (0o700, 0o600, 0o600));
        let Some(Answer::HeldBy(Some(holder))) = parse_answer(&String::from_utf8_lossy(&second.stdout)) else { panic!("{second:?}") };
        assert_eq!((holder.service.as_str(), holder.by.as_str(), holder.ports.as_slice()), ("api", "alice@mac", &[1u16][..]));
        let listed = Command::new("bash").args(["-c", &list_command(&layout)]).output().unwrap();
        assert_eq!(parse_list(&String::from_utf8_lossy(&listed.stdout)), vec![holder]);

        drop(first.stdin.take());
        assert!(first.wait().unwrap().success());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "stop\nstart\n");
        let listed = Command::new("bash").args(["-c", &list_command(&layout)]).output().unwrap();
        assert!(listed.stdout.is_empty(), "released: no holder listed");
    }

    /// A directory for the locks that another user made first (to hold a
    /// lock, or read records) is refused, not used.
    #[test]
    fn the_script_refuses_a_lock_directory_of_another_user() {
        use std::process::Command;
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path().to_str().unwrap(), None).unwrap();
        let dir = tmp.path().join("run/intercepts");
        std::fs::create_dir_all(&dir).unwrap();
        // Owned by someone else: root can give it away; others test a symlink.
        // SAFETY: geteuid only reads the process's credentials.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        } else {
            std::fs::remove_dir(&dir).unwrap();
            std::os::unix::fs::symlink(tmp.path(), &dir).unwrap();
        }
        let script = script(&layout, "api", "alice@mac", &[1], "true", "true", false);
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("belongs to another user"), "{out:?}");
        assert!(!tmp.path().join("run/intercepts/api.lock").exists());
    }
}
