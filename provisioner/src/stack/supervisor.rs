//! Renders supervisord's configuration from the manifest: a pure function,
//! called by `workstation up` and, at image build time, by the Nix module
//! (`workstation render supervisord`), so the two cannot drift.
//!
//! Manifest values never go into supervisord.conf itself: its ini parser
//! expands `%`, cuts values at ` ;` and ` #`, joins indented lines and has
//! no quoting that survives both quote kinds (environment values are split
//! with a non-POSIX shlex). Each program instead gets a launcher script,
//! `programs/<name>-<hash>.sh`, where everything is quoted for the shell, and the
//! ini file holds only validated names, numbers and the box's paths.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::manifest::{Manifest, Service, StoreKind};
use crate::stack::front;
use crate::stack::layout::{sh, Layout, StoreRunner};
use crate::stack::stores;

/// Stores start before every service.
const STORE_PRIORITY: u32 = 100;
const SERVICE_PRIORITY: u32 = 200;

/// Why [`Rendered::write_to`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot create {}", .path.display())]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", .path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The files of one configuration, by path relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub files: BTreeMap<String, String>,
    /// Stores' one-time initialisations (user, path of the script in
    /// `files`), which the bring-up starts before supervisord.
    pub inits: Vec<(&'static str, String)>,
}

impl Rendered {
    /// Names the configuration's directory on the box, so an upload is
    /// idempotent and switching to it is one atomic symlink swap.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for (path, text) in &self.files {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..8])
    }

    /// Writes every file under `dir` (created as needed), as the box would
    /// have them: for comparing with the image's baked configuration.
    pub fn write_to(&self, dir: &std::path::Path) -> Result<(), WriteError> {
        for (path, text) in &self.files {
            let file = dir.join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|source| WriteError::CreateDir { path: parent.to_owned(), source })?;
            }
            std::fs::write(&file, text).map_err(|source| WriteError::Write { path: file.clone(), source })?;
        }
        Ok(())
    }

    /// Every file, each under a `==> path <==` header (like `tail`), for
    /// printing.
    pub fn to_text(&self) -> String {
        self.files.iter().map(|(path, text)| format!("==> {path} <==\n{text}")).collect::<Vec<_>>().join("\n")
    }
}

/// The configuration for `manifest` on a box with `layout`; `queues` are
/// the box's queue URLs by variable (provider/queues.rs), none when
/// rendered away from a box (`workstation render`: an image's).
pub fn render(manifest: &Manifest, layout: &Layout, queues: &BTreeMap<String, String>) -> Rendered {
    let mut files = BTreeMap::new();
    let mut inits = Vec::new();
    let mut conf = header(layout);
    let supervised_stores = manifest.stores.iter().filter(|(_, s)| stores::runner(s, layout) == Some(StoreRunner::Supervisord));
    for (name, store) in supervised_stores {
        let mut script = stores::server_script(name, store, layout);
        if let Some(init) = stores::init_script(name, store, layout) {
            let text = launcher(&format!("first start of store {name} ({})", store.kind.as_str()), layout, &[], None, &init);
            let path = launcher_path(&format!("{name}-init"), &text);
            script = format!("/bin/sh {}/{path} || exit 1\n{script}", layout.current());
            inits.push((stores::user(store.kind), path.clone()));
            files.insert(path, text);
        }
        let text = launcher(&format!("store {name} ({})", store.kind.as_str()), layout, &[], None, &script);
        let path = launcher_path(name, &text);
        // An sqs store's launcher drops to its user itself (stores.rs).
        let user = (store.kind != StoreKind::Sqs).then(|| stores::user(store.kind));
        conf.push_str(&program(name, &path, layout, user, STORE_PRIORITY, true, &Default::default()));
        files.insert(path, text);
    }
    for (name, svc) in &manifest.services {
        let command = format!("/bin/sh -c {}", sh(&svc.command));
        // A program with secrets starts as root through `workstation box
        // launch`, which reads them (as root: the laptop's holder answers
        // only root), then drops to the service's user and execs it.
        let (script, user) = match svc.secrets.is_empty() {
            true => (format!("exec {command}"), svc.user.as_deref()),
            false => (format!("exec {} {command}", launch(svc, layout)), None),
        };
        // Every store's URL and the box's queues' (whose URLs depend on the
        // box), unless the service sets that variable itself.
        let mut environment: BTreeMap<String, String> =
            manifest.stores.iter().filter(|(_, s)| s.kind != StoreKind::Sqs).map(|(name, store)| (store.url_env(name), store.url(name))).collect();
        environment.extend(queues.clone());
        environment.extend(svc.environment.clone());
        let env: Vec<_> = environment.iter().collect();
        let text = launcher(&format!("service {name}"), layout, &env, svc.directory.as_deref(), &script);
        let path = launcher_path(name, &text);
        let priority = SERVICE_PRIORITY + 10 * depth(manifest, name);
        conf.push_str(&program(name, &path, layout, user, priority, svc.autorestart, &svc.logs));
        files.insert(path, text);
    }
    let fronts = front::fronts(manifest);
    if !fronts.is_empty() {
        // Started before the services (it needs none of them up), as root:
        // nginx's master binds the ports and drops its workers to nobody.
        let paths = front::FrontPaths::of(layout);
        let mut script = format!("exec {} box front --dir {} --control {}", sh(&layout.bin), sh(&paths.dir), sh(&paths.control));
        for f in &fronts {
            script += &format!(" --front {}", sh(&f.to_string()));
        }
        let text = launcher("the HTTP proxy in front of services", layout, &[], None, &script);
        let path = launcher_path(front::PROGRAM, &text);
        conf.push_str(&program(front::PROGRAM, &path, layout, None, SERVICE_PRIORITY - 1, true, &Default::default()));
        files.insert(path, text);
    }
    files.insert("supervisord.conf".into(), conf);
    Rendered { files, inits }
}

/// `workstation box launch ... --`: the references only, never a value.
fn launch(svc: &Service, layout: &Layout) -> String {
    let mut s = format!("{} box launch --from {}", sh(&layout.bin), layout.secrets.as_str());
    if layout.secrets == crate::stack::layout::SecretSource::Laptop {
        s += &format!(" --socket {}", sh(&layout.secrets_socket()));
    }
    if let Some(user) = &svc.user {
        s += &format!(" --user {}", sh(user));
    }
    for (var, reference) in &svc.secrets {
        s += &format!(" --secret {}", sh(&format!("{var}={reference}")));
    }
    s + " --"
}

/// The launcher's name carries a hash of its content: when only a launcher
/// changes (an environment value, say), the program's `command=` line
/// changes too, so `supervisorctl update` restarts exactly that program.
fn launcher_path(program: &str, text: &str) -> String {
    format!("programs/{program}-{}.sh", &hex::encode(Sha256::digest(text.as_bytes()))[..8])
}

fn header(layout: &Layout) -> String {
    let run = layout.run_dir();
    let logs = layout.logs();
    format!(
        "; Rendered from workstation.toml by `workstation render supervisord`; do not edit.\n\
         ; The command, directory and environment of each program are in programs/*.sh.\n\
         \n\
         [unix_http_server]\n\
         file={sock}\n\
         chmod=0700\n\
         \n\
         [supervisord]\n\
         logfile={logs}/supervisord.log\n\
         pidfile={run}/supervisord.pid\n\
         childlogdir={logs}\n\
         \n\
         [rpcinterface:supervisor]\n\
         supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
         \n\
         [supervisorctl]\n\
         serverurl=unix://{sock}\n",
        sock = layout.socket(),
    )
}

fn program(name: &str, launcher: &str, layout: &Layout, user: Option<&str>, priority: u32, autorestart: bool, logs: &crate::manifest::ServiceLogs) -> String {
    let mut s = format!(
        "\n[program:{name}]\n\
         command=/bin/sh {current}/{launcher}\n\
         priority={priority}\n\
         autostart=true\n\
         autorestart={autorestart}\n\
         startsecs=1\n\
         startretries=5\n\
         stopasgroup=true\n\
         killasgroup=true\n\
         redirect_stderr=true\n\
         stdout_logfile={log}\n\
         stdout_logfile_maxbytes={max}MB\n\
         stdout_logfile_backups={backups}\n",
        current = layout.current(),
        log = layout.log(name),
        max = logs.max_mb,
        backups = logs.backups,
    );
    if let Some(user) = user {
        s.push_str(&format!("user={user}\n"));
    }
    s
}

fn launcher(what: &str, layout: &Layout, env: &[(&String, &String)], directory: Option<&str>, script: &str) -> String {
    let mut s = format!("#!/bin/sh\n# {what}: rendered from workstation.toml; do not edit.\n");
    if let Some(path) = &layout.path {
        s.push_str(&format!("PATH={}\nexport PATH\n", sh(path)));
    }
    for (k, v) in env {
        s.push_str(&format!("export {k}={}\n", sh(v)));
    }
    if let Some(dir) = directory {
        s.push_str(&format!("cd {} || exit 1\n", sh(dir)));
    }
    s.push_str(script);
    s.push('\n');
    s
}

/// Length of the longest `depends_on` chain below a service: services start
/// in that order (supervisord's priority; validation rejects cycles).
fn depth(manifest: &Manifest, name: &str) -> u32 {
    let deps = manifest.services.get(name).map(|s: &Service| s.depends_on.as_slice()).unwrap_or_default();
    deps.iter().map(|d| 1 + depth(manifest, d)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/supervisord");

    fn golden_manifest() -> Manifest {
        Manifest::parse(include_str!("../../tests/golden/supervisord/workstation.toml")).unwrap()
    }

    /// Compares with the files under tests/golden/supervisord; run with
    /// UPDATE_GOLDEN=1 to rewrite them after a deliberate change.
    #[test]
    fn golden_output() {
        let layout = Layout::new("/var/lib/workstation", Some("/run/current-system/sw/bin".into())).unwrap();
        let rendered = render(&golden_manifest(), &layout, &BTreeMap::new());
        let expected_path = format!("{GOLDEN_DIR}/expected.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, rendered.to_text()).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap();
        assert_eq!(rendered.to_text(), expected, "rendered config changed; if on purpose, rerun with UPDATE_GOLDEN=1");
    }

    #[test]
    fn hostile_environment_survives_a_real_shell() {
        let rendered = render(&golden_manifest(), &Layout::new(crate::stack::layout::DEFAULT_ROOT, None).unwrap(), &BTreeMap::new());
        let launcher = rendered.files.iter().find(|(p, _)| p.starts_with("programs/api-")).unwrap().1;
        // Run the launcher's exports (not its exec) in a real sh and read the
        // values back byte for byte.
        let exports = launcher[launcher.find("export ").unwrap()..launcher.find("cd ").unwrap()].to_string();
        assert!(!exports.is_empty());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{exports}\nprintf '%s\\0' \"$PERCENT\" \"$QUOTES\" \"$MULTILINE\" \"$COMMENTS\""))
            .output()
            .unwrap();
        let values: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        let env = &golden_manifest().services["api"].environment;
        assert_eq!(values[0], env["PERCENT"].as_bytes());
        assert_eq!(values[1], env["QUOTES"].as_bytes());
        assert_eq!(values[2], env["MULTILINE"].as_bytes());
        assert_eq!(values[3], env["COMMENTS"].as_bytes());
    }

    #[test]
    fn stores_that_systemd_runs_are_left_out() {
        let layout = Layout::new(crate::stack::layout::DEFAULT_ROOT, None).unwrap().with_stores(StoreRunner::Systemd);
        let rendered = render(&golden_manifest(), &layout, &BTreeMap::new());
        let conf = &rendered.files["supervisord.conf"];
        assert!(!conf.contains("[program:cache]") && conf.contains("[program:api]"), "{conf}");
        assert!(rendered.files.keys().all(|p| !p.starts_with("programs/cache-")));
    }

    #[test]
    fn the_ini_file_holds_no_manifest_strings() {
        let rendered = render(&golden_manifest(), &Layout::new(crate::stack::layout::DEFAULT_ROOT, None).unwrap(), &BTreeMap::new());
        let conf = &rendered.files["supervisord.conf"];
        for needle in ["%", "\"", "'", " #", " ;"] {
            assert!(!conf.contains(needle), "{needle:?} in supervisord.conf:\n{conf}");
        }
    }

    #[test]
    fn dependencies_order_start_and_the_hash_follows_content() {
        let m = golden_manifest();
        let rendered = render(&m, &Layout::new(crate::stack::layout::DEFAULT_ROOT, None).unwrap(), &BTreeMap::new());
        let conf = &rendered.files["supervisord.conf"];
        let prio = |p: &str| {
            let at = conf.find(&format!("[program:{p}]")).unwrap();
            conf[at..].lines().find_map(|l| l.strip_prefix("priority=")).unwrap().parse::<u32>().unwrap()
        };
        assert!(prio("cache") < prio("worker") && prio("worker") < prio("api"));
        let other = render(&m, &Layout::new("/srv/other", None).unwrap(), &BTreeMap::new());
        assert_ne!(rendered.hash(), other.hash());
        assert_eq!(rendered.hash(), render(&m, &Layout::new(crate::stack::layout::DEFAULT_ROOT, None).unwrap(), &BTreeMap::new()).hash());
    }

    #[test]
    fn a_program_with_secrets_starts_through_the_launcher_with_references_only() {
        let mut m = golden_manifest();
        let api = m.services.get_mut("api").unwrap();
        api.user = Some("app".into());
        api.secrets.insert("STRIPE_KEY".into(), "ssm:/workstation/{owner}/stripe".parse().unwrap());
        let layout = Layout::new("/srv/ws", None).unwrap().with_bin("/opt/ws/workstation").with_secrets(crate::stack::layout::SecretSource::Laptop);
        let rendered = render(&m, &layout, &BTreeMap::new());
        let launcher = rendered.files.iter().find(|(p, _)| p.starts_with("programs/api-")).unwrap().1;
        let exec = launcher.lines().last().unwrap();
        assert!(
            exec.starts_with("exec /opt/ws/workstation box launch --from laptop --socket /srv/ws/run/secrets.sock --user app --secret 'STRIPE_KEY=ssm:/workstation/{owner}/stripe' -- /bin/sh -c "),
            "{exec}"
        );
        let conf = &rendered.files["supervisord.conf"];
        let api_section = &conf[conf.find("[program:api]").unwrap()..];
        let api_section = &api_section[..api_section[1..].find("\n[").map_or(api_section.len(), |i| i + 1)];
        assert!(!api_section.contains("user="), "the launcher drops to the user itself:\n{api_section}");
    }
}
