//! The box's side of the front ([`crate::stack::front`]): `workstation box
//! front` prepares nginx's files and becomes nginx (under supervisord), and
//! [`apply`] re-renders the configuration from the recorded routes and
//! reloads the running nginx, which finishes requests in flight in its old
//! workers. One lock orders every change, so routes added and removed at
//! once by several intercepts never lose one another.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::stack::front::{self, FrontPaths, FrontSpec, Route};

/// How long a reload may take to answer with the new generation.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nginx refused the configuration it was given ({path}): {said}")]
    Refused { path: String, said: String },
    #[error("nginx did not take the new configuration within {RELOAD_TIMEOUT:?} (see `workstation logs {}`)", front::PROGRAM)]
    NotReloaded,
    #[error("no front is configured on this box (run `workstation up` after adding `front` to a service)")]
    NoFronts,
}

fn io(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> FrontError {
    let path = path.as_ref().display().to_string();
    move |source| FrontError::Io { what, path, source }
}

/// Prepares nginx's files for `fronts` (keeping the routes recorded) and
/// execs nginx; returns only if it could not.
pub fn serve(paths: &FrontPaths, fronts: &[FrontSpec]) -> FrontError {
    match prepare(paths, fronts) {
        Ok(()) => {
            let err = Command::new(nginx()).arg("-c").arg(paths.conf()).exec();
            io("cannot run nginx (install it: Debian's nginx-light, nixpkgs' nginx)", nginx())(err)
        }
        Err(e) => e,
    }
}

fn prepare(paths: &FrontPaths, fronts: &[FrontSpec]) -> Result<(), FrontError> {
    let private = |dir: &str| std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("cannot create", dir));
    // Traversable (not readable) by nginx's workers, which write request
    // bodies larger than 16 KB to tmp/; its files are root's alone (0600),
    // the routes in a 0700 directory.
    private(&paths.dir)?;
    std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o711)).map_err(io("cannot set the mode of", &paths.dir))?;
    private(&paths.routes())?;
    if let Some(parent) = Path::new(&paths.control).parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(io("cannot create", parent))?;
    }
    // nginx's workers run as nobody and write large request bodies here.
    private(&paths.temp())?;
    // SAFETY: getpwnam returns a pointer into static storage or null; the
    // fields are read at once.
    let nobody = unsafe { libc::getpwnam(c"nobody".as_ptr()).as_ref().map(|p| (p.pw_uid, p.pw_gid)) };
    if let Some((uid, gid)) = nobody {
        std::os::unix::fs::chown(paths.temp(), Some(uid), Some(gid)).map_err(io("cannot give nginx's workers", paths.temp()))?;
    }
    let _ = std::fs::remove_file(&paths.control);
    let _lock = lock(paths)?;
    write_atomic(&fronts_file(paths), &serde_json::to_vec(fronts).expect("serializable"))?;
    let (conf, _) = front::render(paths, fronts, &routed(paths)?);
    write_atomic(&PathBuf::from(paths.conf()), conf.as_bytes())
}

/// nginx on PATH, else Debian's place for it (root's PATH has /usr/sbin;
/// supervisord's may not).
fn nginx() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join("nginx")).find(|p| p.is_file()))
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

fn fronts_file(paths: &FrontPaths) -> PathBuf {
    Path::new(&paths.dir).join("fronts.json")
}

/// The fronts the running nginx serves.
pub fn fronts(paths: &FrontPaths) -> Result<Vec<FrontSpec>, FrontError> {
    let file = fronts_file(paths);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io("cannot read", &file)(std::io::Error::other(e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FrontError::NoFronts),
        Err(e) => Err(io("cannot read", &file)(e)),
    }
}

/// The exclusive lock over the routes and nginx's configuration.
pub fn lock(paths: &FrontPaths) -> Result<File, FrontError> {
    let path = Path::new(&paths.dir).join("lock");
    let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(io("cannot open", &path))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io("cannot lock", &path)(std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// The recorded routes whose sessions are alive; a record whose session
/// is gone (killed outright) is removed.
pub fn live_routes(paths: &FrontPaths) -> Result<Vec<Route>, FrontError> {
    let dir = paths.routes();
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io("cannot read", &dir))? {
        let path = entry.map_err(io("cannot read", &dir))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let route = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Route>(&b).ok());
        match route {
            Some(r) if alive(&r) && r.is_valid() => routes.push(r),
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    routes.sort_by(|a, b| (a.since, &a.by).cmp(&(b.since, &b.by)));
    Ok(routes)
}

/// The live routes that have their port (a claim without one is not
/// routed: nginx refuses port 0).
fn routed(paths: &FrontPaths) -> Result<Vec<Route>, FrontError> {
    Ok(live_routes(paths)?.into_iter().filter(|r| r.port > 0).collect())
}

/// Whether the session that wrote `route` still runs: its process, with
/// the identity it recorded (this boot, its start time), so neither a
/// reboot (records are on the data volume) nor a reused pid keeps a dead
/// session's route.
fn alive(route: &Route) -> bool {
    route.pid > 0 && process_identity(route.pid).is_some_and(|id| id == route.process)
}

/// `<boot id>:<start time>` of process `pid`, if it runs.
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the name (which is in parentheses and may
    // hold spaces): the 20th after it.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.to_string();
    Some(format!("{}:{start}", boot.trim()))
}

/// Whether process `pid` exists.
fn exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && (unsafe { libc::kill(pid as i32, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Where the session `pid`'s route is recorded.
pub fn record_path(paths: &FrontPaths, pid: u32) -> PathBuf {
    Path::new(&paths.routes()).join(format!("{pid}.json"))
}

/// Records `route` (under the lock the caller holds).
pub fn record(paths: &FrontPaths, route: &Route) -> Result<(), FrontError> {
    write_atomic(&record_path(paths, route.pid), &serde_json::to_vec(route).expect("serializable"))
}

/// Renders the configuration from the live routes and, when it changed and
/// nginx runs, checks it and reloads nginx, returning once nginx answers
/// with the new generation. The caller holds the lock.
pub fn apply(paths: &FrontPaths) -> Result<(), FrontError> {
    let fronts = fronts(paths)?;
    let (conf, generation) = front::render(paths, &fronts, &routed(paths)?);
    if std::fs::read_to_string(paths.conf()).is_ok_and(|old| old == conf) {
        return Ok(());
    }
    let next = PathBuf::from(format!("{}.next", paths.conf()));
    write_atomic(&next, conf.as_bytes())?;
    let Some(pid) = running(paths) else {
        return std::fs::rename(&next, paths.conf()).map_err(io("cannot replace", paths.conf()));
    };
    let test = Command::new(nginx()).arg("-t").arg("-q").arg("-c").arg(&next).output().map_err(io("cannot run", nginx()))?;
    if !test.status.success() {
        let said = String::from_utf8_lossy(&test.stderr).trim().to_string();
        return Err(FrontError::Refused { path: next.display().to_string(), said });
    }
    std::fs::rename(&next, paths.conf()).map_err(io("cannot replace", paths.conf()))?;
    let old = workers(pid);
    // SAFETY: kill has no memory preconditions; the pid is nginx's master.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    // Done when a new worker answers and no old one accepts connections any
    // more: the old ones share the listening sockets until they take the
    // master's signal, and would route by the old configuration (to a
    // forward that just closed). They finish their requests in flight.
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    while Instant::now() < deadline {
        if generation_running(paths).is_some_and(|g| g == generation) && !old.iter().any(|w| accepting(*w)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(FrontError::NotReloaded)
}

/// The master's worker processes.
fn workers(master: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // The parent is the second field after the name, which is in
            // parentheses and may itself hold spaces.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok()) == Some(master)
        })
        .collect()
}

/// Whether worker `pid` still accepts connections: nginx retitles a worker
/// "worker process is shutting down" as it closes its listening sockets.
fn accepting(pid: i32) -> bool {
    let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let title = String::from_utf8_lossy(&title);
    title.contains("worker process") && !title.contains("shutting down")
}

/// nginx's master, from its pid file, if it runs.
fn running(paths: &FrontPaths) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(paths.pid()).ok()?.trim().parse().ok()?;
    exists(pid as u32).then_some(pid)
}

/// The generation the control socket answers (a new connection reaches a
/// worker of the newest configuration once nginx has reloaded).
fn generation_running(paths: &FrontPaths) -> Option<String> {
    let mut stream = UnixStream::connect(&paths.control).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(b"GET /generation HTTP/1.0\r\nHost: front\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.trim().to_string())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FrontError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut file = File::create(&tmp).map_err(io("cannot write", &tmp))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("cannot write", &tmp))?;
    file.write_all(bytes).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot replace", path))
}
