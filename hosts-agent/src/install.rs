//! `install` / `uninstall`: the binary, config, service unit (systemd on
//! Linux, launchd on macOS) and their permissions. Everything is written
//! under `root` (normally `/`) so the result can be inspected in a test.
//!
//! The daemon runs a root-owned copy of the binary: a root service that
//! executes a file in someone's ~/.cargo/bin would let that user run code
//! as root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG};
use crate::hostsfile::{HostsError, HostsFile};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error("writing the config")]
    Serialize(#[from] toml::ser::Error),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, InstallError>;

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let context = context.into();
    move |source| InstallError::Io { context, source }
}

const BINARY: &str = "/usr/local/libexec/workstation-hosts";
const SYSTEMD_UNIT: &str = "/etc/systemd/system/workstation-hosts.service";
const LAUNCHD_PLIST: &str = "/Library/LaunchDaemons/dev.workstation.hosts-agent.plist";
const LAUNCHD_LABEL: &str = "dev.workstation.hosts-agent";

/// What to add to the allowlists.
#[derive(Debug, Default)]
pub struct Allow {
    pub users: Vec<String>,
    pub names: Vec<String>,
    pub suffixes: Vec<String>,
}

fn under(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

fn unit_path() -> &'static str {
    if cfg!(target_os = "macos") {
        LAUNCHD_PLIST
    } else {
        SYSTEMD_UNIT
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    workstation_hosts_protocol::atomic::write(path, contents, mode).map_err(io_err(format!("writing {}", path.display())))
}

/// Installs (or updates: lists are merged, files rewritten) the agent.
/// Returns what it did, one line each.
pub fn install(root: &Path, allow: Allow, start: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let config_path = under(root, DEFAULT_CONFIG);
    let mut config = if config_path.exists() { Config::load(&config_path)? } else { Config::default() };
    merge(&mut config.allowed_users, allow.users);
    merge(&mut config.allowed_names, allow.names);
    merge(&mut config.allowed_suffixes, allow.suffixes);
    let text = toml::to_string_pretty(&config)?;
    Config::parse(&text, &config_path.display().to_string())?;
    write_file(
        &config_path,
        format!("# workstation-hosts: who may point which hostnames. Root-owned; see `workstation-hosts --help`.\n{text}").as_bytes(),
        0o644,
    )?;
    done.push(format!(
        "wrote {} (users: {}; names: {}; suffixes: {})",
        config_path.display(),
        list(&config.allowed_users),
        list(&config.allowed_names),
        list(&config.allowed_suffixes)
    ));

    let exe = std::env::current_exe().map_err(io_err("finding this binary"))?;
    let binary = under(root, BINARY);
    if exe != binary {
        let bytes = fs::read(&exe).map_err(io_err(format!("reading {}", exe.display())))?;
        write_file(&binary, &bytes, 0o755)?;
        done.push(format!("installed {}", binary.display()));
    }
    let unit = under(root, unit_path());
    write_file(&unit, unit_text().as_bytes(), 0o644)?;
    done.push(format!("wrote {}", unit.display()));

    if start && root == Path::new("/") {
        done.push(service(true));
    } else {
        done.push(format!("not started; start it with `{}`", start_hint()));
    }
    Ok(done)
}

/// Removes the block from the hosts file, the unit, the binary and the
/// state; the config too with `purge`.
pub fn uninstall(root: &Path, purge: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let config_path = under(root, DEFAULT_CONFIG);
    let config = if config_path.exists() { Config::load(&config_path)? } else { Config::default() };
    if root == Path::new("/") {
        done.push(service(false));
    }
    let hosts = HostsFile::new(under(root, &config.hosts_file.to_string_lossy()));
    if hosts.path().exists() {
        hosts.write(&[])?;
        done.push(format!("removed the workstation block from {}", hosts.path().display()));
    }
    for path in [under(root, unit_path()), under(root, BINARY), under(root, &config.socket.to_string_lossy())] {
        if path.exists() {
            fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
            done.push(format!("removed {}", path.display()));
        }
    }
    let state = under(root, &config.state_dir.to_string_lossy());
    if state.exists() {
        fs::remove_dir_all(&state).map_err(io_err(format!("removing {}", state.display())))?;
        done.push(format!("removed {}", state.display()));
    }
    if purge && config_path.exists() {
        fs::remove_file(&config_path).map_err(io_err(format!("removing {}", config_path.display())))?;
        done.push(format!("removed {}", config_path.display()));
    } else if config_path.exists() {
        done.push(format!("kept {} (--purge removes it)", config_path.display()));
    }
    Ok(done)
}

fn merge(into: &mut Vec<String>, add: Vec<String>) {
    for item in add {
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn unit_text() -> String {
    if cfg!(target_os = "macos") {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>{LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array><string>{BINARY}</string><string>run</string><string>--config</string><string>{DEFAULT_CONFIG}</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
  <key>StandardErrorPath</key><string>/var/log/workstation-hosts.log</string>
</dict>
</plist>
"#
        )
    } else {
        format!(
            "[Unit]\n\
             Description=workstation hosts agent (points this machine's dev hostnames at workstation boxes)\n\
             After=network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             ExecStart={BINARY} run --config {DEFAULT_CONFIG}\n\
             Restart=on-failure\n\
             RestartSec=1\n\
             RuntimeDirectory=workstation-hosts\n\
             RuntimeDirectoryMode=0755\n\
             StateDirectory=workstation-hosts\n\
             StateDirectoryMode=0700\n\
             # It writes /etc/hosts through a temp file and rename in /etc.\n\
             ProtectSystem=strict\n\
             ReadWritePaths=/etc\n\
             ProtectHome=yes\n\
             PrivateTmp=yes\n\
             NoNewPrivileges=yes\n\
             ProtectKernelTunables=yes\n\
             ProtectControlGroups=yes\n\
             RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n"
        )
    }
}

fn start_hint() -> String {
    if cfg!(target_os = "macos") {
        format!("sudo launchctl bootstrap system {LAUNCHD_PLIST}")
    } else {
        "sudo systemctl daemon-reload && sudo systemctl enable --now workstation-hosts".into()
    }
}

/// Starts or stops the service; best effort, reported (a machine without
/// systemd, like a container, gets the command to run instead).
fn service(start: bool) -> String {
    let steps: Vec<Vec<&str>> = match (cfg!(target_os = "macos"), start) {
        (true, true) => vec![vec!["launchctl", "bootstrap", "system", LAUNCHD_PLIST]],
        (true, false) => vec![vec!["launchctl", "bootout", "system/dev.workstation.hosts-agent"]],
        (false, _) if !Path::new("/run/systemd/system").exists() => {
            return if start {
                format!("systemd is not running here; start the agent yourself: `{BINARY} run`")
            } else {
                "systemd is not running here; nothing to stop".into()
            };
        }
        (false, true) => vec![vec!["systemctl", "daemon-reload"], vec!["systemctl", "enable", "--now", "workstation-hosts.service"]],
        (false, false) => vec![vec!["systemctl", "disable", "--now", "workstation-hosts.service"]],
    };
    for argv in &steps {
        match Command::new(argv[0]).args(&argv[1..]).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return format!("`{}` failed: {}", argv.join(" "), String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => return format!("`{}` could not run: {e}", argv.join(" ")),
        }
    }
    if start {
        "service started".into()
    } else {
        "service stopped".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn install_writes_root_owned_files_and_merges_allowlists() {
        let root = tempfile::tempdir().unwrap();
        let allow = Allow { users: vec!["alice".into()], names: vec!["api.dev".into()], suffixes: vec![] };
        install(root.path(), allow, true).unwrap();
        let again = Allow { users: vec!["bob".into(), "alice".into()], names: vec![], suffixes: vec![".box.example.com".into()] };
        install(root.path(), again, true).unwrap();
        let config_path = under(root.path(), DEFAULT_CONFIG);
        let config = Config::load(&config_path).unwrap();
        assert_eq!(config.allowed_users, vec!["alice", "bob"]);
        assert_eq!(config.allowed_names, vec!["api.dev"]);
        assert_eq!(config.allowed_suffixes, vec![".box.example.com"]);
        assert_eq!(fs::metadata(&config_path).unwrap().mode() & 0o777, 0o644);
        let binary = under(root.path(), BINARY);
        assert_eq!(fs::metadata(&binary).unwrap().mode() & 0o777, 0o755);
        let unit = fs::read_to_string(under(root.path(), unit_path())).unwrap();
        assert!(unit.contains(&format!("{BINARY} run --config {DEFAULT_CONFIG}")), "{unit}");

        fs::create_dir_all(under(root.path(), "/etc")).unwrap();
        let hosts = under(root.path(), "/etc/hosts");
        fs::write(&hosts, "127.0.0.1 localhost\n# BEGIN workstation-hosts\n10.0.0.1 api.dev\n# END workstation-hosts\n").unwrap();
        uninstall(root.path(), false).unwrap();
        assert_eq!(fs::read_to_string(&hosts).unwrap(), "127.0.0.1 localhost\n");
        assert!(!binary.exists() && !under(root.path(), unit_path()).exists());
        assert!(config_path.exists(), "config kept without --purge");
        uninstall(root.path(), true).unwrap();
        assert!(!config_path.exists());
    }
}
