//! End-to-end test harness: one [`TestEnv`] owns a temporary HOME, its own
//! slice of the test network, and (for the aws provider) a moto EC2 server
//! plus a [`fleet::Fleet`] that makes moto's instances real boxes.
//!
//! Every box is a network namespace on the bridge `wstest0`, which owns all
//! of 10.78.0.0/16: no packet to a test address leaves this machine.

pub mod fleet;
pub mod github;
pub mod hostsagent;
pub mod http_server;
pub mod imds;
pub mod interrupt;
pub mod moto;
pub mod mountns;
pub mod repo;
pub mod shim;

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use workstation::provider::host::addresses_in_use;
use workstation::provider::local::LocalProvider;
use workstation::provider::LocalNetwork;
use workstation::provider::Provider;

pub const BRIDGE: &str = "wstest0";
pub const NETWORK: &str = "10.78.0.0/16";
pub const REGION: &str = "us-east-1";
/// Test environments' temporary directories (root-owned, 0755 parents).
const E2E_ROOT: &str = "/var/lib/workstation-tests";

/// The repository's root (the test crate's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Polls `ok` (every 20 ms) until it holds; after `timeout` the test fails
/// with `why()`, which can show logs gathered at that moment.
pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool, why: impl FnOnce() -> String) {
    let deadline = std::time::Instant::now() + timeout;
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out after {timeout:?}: {}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `workstation` binary, built once per test run (a no-op when fresh).
///
/// `--workspace` on purpose: `-p workstation` alone resolves dependency
/// features differently and would rebuild the whole SDK a second time.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the workstation binary failed");
        target_dir().join("debug/workstation")
    })
}

/// The `workstation-hosts` agent binary, built with [`binary`].
pub fn hosts_binary() -> PathBuf {
    binary().with_file_name("workstation-hosts")
}

/// Root of the tests' temporary directories: 0755 so that other users
/// (store servers, a refused caller) can traverse it.
pub fn e2e_root() -> &'static Path {
    let root = Path::new(E2E_ROOT);
    std::fs::create_dir_all(root).unwrap();
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    root
}

/// `<target>/` from this test executable's path (`<target>/debug/deps/e2e-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").to_owned()
}

/// A slice of the test network, held through a lock file for as long as the
/// environment lives, so parallel test processes never share addresses.
struct Slice {
    index: u8,
    _lock: File,
}

fn take_slice() -> Slice {
    let dir = Path::new("/run/workstation-tests");
    std::fs::create_dir_all(dir).expect("create /run/workstation-tests");
    for index in 1..=250u8 {
        let f = File::options().create(true).truncate(false).write(true).open(dir.join(format!("slice-{index}.lock"))).unwrap();
        if f.try_lock().is_ok() {
            return Slice { index, _lock: f };
        }
    }
    panic!("all 250 test network slices are in use");
}

pub struct TestEnv {
    pub root: tempfile::TempDir,
    pub home: PathBuf,
    pub subnet: ipnet::Ipv4Net,
    pub manifest: PathBuf,
    pub moto: Option<moto::Moto>,
    pub fleet: Option<fleet::Fleet>,
    /// Instance metadata for the aws boxes (moto has none).
    pub imds: Option<imds::Imds>,
    /// Extra environment for every command (AWS endpoint and credentials).
    env: Vec<(String, String)>,
    /// Held for its lock: reserves this environment's addresses.
    _slice: Slice,
}

impl TestEnv {
    fn base() -> TestEnv {
        // Not under /tmp: sshd's StrictModes rejects authorized_keys below a
        // world-writable directory. Not under the checkout either: store
        // servers on the boxes run as their own users (redis, postgres), who
        // must be able to traverse every parent directory, and a checkout
        // may sit below a private one (a CI clone in a 0700 temp directory).
        let tmp = e2e_root();
        let mode = |m| std::os::unix::fs::PermissionsExt::from_mode(m);
        let root = tempfile::Builder::new().prefix("env-").tempdir_in(tmp).unwrap();
        std::fs::set_permissions(root.path(), mode(0o755)).unwrap();
        let home = root.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let key = home.join(".ssh/id_ed25519");
        run_ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "tester@laptop", "-f"]).arg(&key));
        let slice = take_slice();
        let subnet: ipnet::Ipv4Net = format!("10.78.{}.0/24", slice.index).parse().unwrap();
        clear_stale_boxes(&subnet);
        // Never the machine's own hosts agent: a test that wants one starts
        // it on this socket.
        let env = vec![("WORKSTATION_HOSTS_SOCKET".to_owned(), root.path().join("agent.sock").display().to_string())];
        TestEnv { manifest: root.path().join("workstation.toml"), root, home, subnet, moto: None, fleet: None, imds: None, env, _slice: slice }
    }

    /// Boxes are network namespaces created by the local provider.
    pub fn local() -> TestEnv {
        let env = TestEnv::base();
        env.write_settings(&format!(
            "owner = \"tester\"\nprovider = \"local\"\n[local]\nbridge = \"{BRIDGE}\"\nnetwork = \"{NETWORK}\"\nsubnet = \"{}\"\n",
            env.subnet
        ));
        env.write_manifest(&manifest_text("image_id = \"ami-0123456789abcdef0\"", ""));
        env
    }

    /// Boxes are EC2 instances in moto, materialised as namespaces at the
    /// private addresses moto assigned.
    pub fn aws() -> TestEnv {
        let mut env = TestEnv::base();
        let network = LocalNetwork { bridge: BRIDGE.into(), network: NETWORK.parse().unwrap(), subnet: env.subnet };
        workstation::provider::netns::BoxHost::ensure_bridge(&network).expect("test bridge");
        let gateway = workstation::provider::host::gateway(&network.network).to_string();
        let moto = moto::Moto::start_on(&gateway);
        env.env.extend(moto.client_env());
        let imds = imds::Imds::start_on(&gateway, &moto);
        env.env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.url.clone()));
        env.imds = Some(imds);
        let (subnet_id, image) = moto.prepare(env.subnet);
        env.write_settings("owner = \"tester\"\nprovider = \"aws\"\nssh_user = \"root\"\n[aws]\nregion = \"us-east-1\"\naddress = \"private\"\n");
        env.write_manifest(&manifest_text(&format!("image_name = \"{image}\""), &format!("subnet = \"{subnet_id}\"\n")));
        let network = LocalNetwork { bridge: BRIDGE.into(), network: NETWORK.parse().unwrap(), subnet: env.subnet };
        env.fleet = Some(fleet::Fleet::start(
            &moto,
            &env.imds.as_ref().expect("started above").url,
            network,
            env.root.path().join("fleet"),
            env.public_key(),
            binary(),
        ));
        env.moto = Some(moto);
        env
    }

    /// moto's EC2 API only, no boxes behind it: for fleet-wide API work
    /// (reap over thousands of instances).
    pub fn aws_api_only() -> TestEnv {
        let mut env = TestEnv::base();
        let moto = moto::Moto::start();
        env.env.extend(moto.client_env());
        env.write_settings("owner = \"tester\"\nprovider = \"aws\"\n[aws]\nregion = \"us-east-1\"\naddress = \"private\"\n");
        env.write_manifest(&manifest_text("image_id = \"ami-12c6146b\"", ""));
        env.moto = Some(moto);
        env
    }

    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.home.join(".ssh/id_ed25519.pub")).unwrap()
    }

    pub fn write_settings(&self, text: &str) {
        let dir = self.home.join(".config/workstation");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), text).unwrap();
    }

    pub fn write_manifest(&self, text: &str) {
        std::fs::write(&self.manifest, text).unwrap();
    }

    /// Where this environment's `workstation` looks for the hosts agent.
    pub fn hosts_socket(&self) -> PathBuf {
        self.root.path().join("agent.sock")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.home.join(".local/state/workstation")
    }

    /// The root of this env's local box `name` (stores, supervisord,
    /// synced checkouts), as its record names it.
    pub fn box_root(&self, name: &str) -> PathBuf {
        let record = self.state_dir().join(format!("local/tester--{name}/box.json"));
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        PathBuf::from(record["root"].as_str().expect("a local box records its root"))
    }

    /// `workstation ARGS` with a clean environment: only this env's HOME,
    /// PATH and AWS endpoint/credentials reach it.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WORKSTATION_MANIFEST", &self.manifest)
            .current_dir(self.root.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `workstation ARGS` inside the network namespace that has `address`
    /// (a box), with this environment's variables: what a box's own timer
    /// runs.
    pub fn cmd_on_box(&self, address: &str, args: &[&str]) -> Command {
        let ns = netns_with(address).unwrap_or_else(|| panic!("no network namespace has {address}"));
        let mut enter = Command::new("ip");
        enter.args(["netns", "exec", &ns]);
        self.cmd_via(enter, args)
    }

    /// `workstation ARGS` run by `wrapper` (a command that takes the program
    /// to run as its last arguments, such as `ip netns exec NS`), with this
    /// environment's variables.
    pub fn cmd_via(&self, mut wrapper: Command, args: &[&str]) -> Command {
        let plain = self.cmd(args);
        wrapper.arg(plain.get_program()).args(plain.get_args()).env_clear().current_dir(self.root.path());
        for (k, v) in plain.get_envs() {
            if let Some(v) = v {
                wrapper.env(k, v);
            }
        }
        wrapper
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("workstation runs")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "workstation {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "workstation {args:?} should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed invalid JSON ({e}):\n{text}"))
    }

    /// Points the AWS SDK somewhere else (a shim, a counting listener).
    pub fn set_endpoint(&mut self, url: &str) {
        self.env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        self.env.push(("AWS_ENDPOINT_URL".into(), url.into()));
    }

    pub fn local_provider(&self) -> LocalProvider {
        let network = LocalNetwork { bridge: BRIDGE.into(), network: NETWORK.parse().unwrap(), subnet: self.subnet };
        LocalProvider::new(self.state_dir().join("local"), network, std::time::Duration::from_secs(60)).unwrap()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.fleet.take();
        // Power off whatever local boxes the test left behind.
        let provider = self.local_provider();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for b in provider.list(None).await.unwrap_or_default() {
                let _ = provider.destroy_with_data(&b.id).await;
            }
            // And the data volumes a test kept.
            for v in provider.volumes(None).await.unwrap_or_default() {
                let _ = provider.delete_volume(&v).await;
            }
        });
        clear_stale_boxes(&self.subnet);
    }
}

/// The network namespace one of whose addresses is `address`.
pub fn netns_with(address: &str) -> Option<String> {
    let address: Ipv4Addr = address.parse().ok()?;
    addresses_in_use().into_iter().find_map(|(ns, a)| (a == address).then_some(ns))
}

/// Removes namespaces left by a killed earlier run in this slice.
fn clear_stale_boxes(subnet: &ipnet::Ipv4Net) {
    let mut stale: Vec<String> =
        addresses_in_use().into_iter().filter(|(ns, a)| (ns.starts_with("ws-") || ns.starts_with("wt-")) && subnet.contains(a)).map(|(ns, _)| ns).collect();
    stale.dedup();
    for ns in stale {
        let pids = Command::new("ip").args(["netns", "pids", &ns]).output().map(|o| o.stdout).unwrap_or_default();
        for pid in String::from_utf8_lossy(&pids).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

pub fn manifest_text(image_line: &str, extra_box_lines: &str) -> String {
    format!(
        "hostnames = [\"api.dev.test\"]\n\n[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\n{image_line}\n{extra_box_lines}\n\
         [services.api]\ncommand = \"python3 -m http.server 8080\"\nports = [8080]\n"
    )
}

/// A Redis protocol snapshot of `n` keys `key:0..n` with values
/// `<tag>-value-<i>`, for `redis-cli --pipe`.
pub fn write_resp_snapshot(path: &Path, n: usize, tag: &str) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(File::create(path).unwrap());
    for i in 0..n {
        let (k, v) = (format!("key:{i}"), format!("{tag}-value-{i}"));
        write!(out, "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len()).unwrap();
    }
    out.flush().unwrap();
}

/// A postgres CSV snapshot: users and orders (orders reference users).
pub fn write_csv_snapshot(dir: &Path, users: usize, orders_per_user: usize) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("schema.sql"),
        "CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL UNIQUE);
         CREATE TABLE orders (id integer PRIMARY KEY, user_id integer NOT NULL REFERENCES users(id), total numeric(10,2) NOT NULL, note text);
",
    )
    .unwrap();
    let mut u = std::io::BufWriter::new(File::create(dir.join("01-users.csv")).unwrap());
    writeln!(u, "id,email").unwrap();
    for i in 0..users {
        writeln!(u, "{i},user{i}@example.test").unwrap();
    }
    u.flush().unwrap();
    let mut o = std::io::BufWriter::new(File::create(dir.join("02-orders.csv")).unwrap());
    writeln!(o, "id,user_id,total,note").unwrap();
    for i in 0..users * orders_per_user {
        writeln!(o, "{i},{},{}.{:02},\"note, with \"\"quotes\"\"\"", i % users, i % 500, i % 100).unwrap();
    }
    o.flush().unwrap();
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A loopback listener that only counts connections: point the SDK at it
/// to prove a command made no API call.
pub struct CountingListener {
    pub url: String,
    count: Arc<AtomicUsize>,
    _thread: JoinHandle<()>,
}

impl CountingListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                c.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        CountingListener { url, count, _thread: thread }
    }

    pub fn connections(&self) -> usize {
        // Let an in-flight connect land before reading.
        std::thread::sleep(Duration::from_millis(50));
        self.count.load(Ordering::SeqCst)
    }
}
