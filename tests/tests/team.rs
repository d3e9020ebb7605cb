//! Personal intercepts on a shared box (local provider, real nginx in
//! front of the box's `api`): header-routed intercepts of several people at
//! once, a mirror, routes removed when an intercept dies, and data branches.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use workstation_tests::http_server::SERVER;
use workstation_tests::{free_port, netns_with, wait_until, TestEnv};

const BOX_MANIFEST_HEAD: &str = "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n";

struct Fixture {
    env: TestEnv,
    /// The front's port (clients) and the box's api's own.
    front: u16,
    own: u16,
    server: std::path::PathBuf,
    ns: String,
}

fn fixture(stores: &str, environment: &str) -> Fixture {
    let env = TestEnv::local();
    let (front, own) = (free_port(), free_port());
    let server = env.root.path().join("server.py");
    std::fs::write(&server, SERVER).unwrap();
    env.write_manifest(&format!(
        "{BOX_MANIFEST_HEAD}{stores}
[services.api]
command = \"python3 {server} box {own}\"
ports = [{own}]
front = {{ port = {front} }}
health = {{ http = \"/\", port = {own} }}
environment = {{ {environment} }}
",
        server = server.display()
    ));
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    let address = env.json(&["list"])[0]["address"].as_str().unwrap().to_string();
    let ns = netns_with(&address).unwrap();
    Fixture { env, front, own, server, ns }
}

impl Fixture {
    /// What the front answers, asked inside the box, with `header` if any.
    fn ask(&self, header: Option<&str>, path: &str) -> String {
        let mut curl = Command::new("ip");
        curl.args(["netns", "exec", &self.ns, "curl", "-s", "--max-time", "5"]);
        if let Some(h) = header {
            curl.args(["-H", h]);
        }
        let out = curl.arg(format!("http://127.0.0.1:{}{path}", self.front)).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `intercept api ARGS -- python3 server.py WORD PORT [LOG]`.
    fn intercept(&self, args: &[&str], word: &str, port: u16, log: Option<&std::path::Path>) -> Child {
        let mut all = vec!["intercept", "api"];
        all.extend_from_slice(args);
        let port_text = port.to_string();
        let mapping = format!("{}:{port}", self.own_port());
        all.extend_from_slice(&["--port", &mapping, "--", "python3", self.server.to_str().unwrap(), word, &port_text]);
        let log_text = log.map(|l| l.to_str().unwrap().to_string());
        if let Some(l) = &log_text {
            all.push(l);
        }
        self.env.cmd(&all).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// Asserts what the front answers, showing the proxy's log if not.
    fn expect(&self, header: Option<&str>, path: &str, word: &str) {
        let got = self.ask(header, path);
        assert_eq!(got, word, "requests with {header:?} to {path}; the proxy's log:\n{}", self.proxy_log());
    }

    /// The proxy's log, for a failure's message.
    fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.env.box_root("dev").join("logs/ws-front.log")).unwrap_or_default()
    }

    fn own_port(&self) -> u16 {
        self.own
    }

    /// Waits until requests with `header` reach `word`; if they do not,
    /// the failure shows what the intercept said.
    fn wait_routed(&self, child: &mut Child, header: Option<&str>, path: &str, word: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ask(header, path) != word {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let mut text = String::new();
                child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
                panic!("requests with {header:?} answer {:?}, not {word:?}; the intercept said:\n{text}", self.ask(header, path));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn kill_laptop_servers(word: &str) {
    let _ = Command::new("pkill").args(["-9", "-f", &format!("server.py {word} ")]).status();
}

fn stderr_of(mut child: Child) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let mut text = String::new();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    (status.code(), text)
}

#[test]
fn personal_intercepts_route_by_header_and_end_alone() {
    let f = fixture("", "");
    f.expect(None, "/", "box");
    // A body larger than nginx keeps in memory (16 KB) goes through its
    // temporary files, which its workers (nobody) must reach.
    let body = f.env.root.path().join("body.bin");
    std::fs::write(&body, vec![b'x'; 100_000]).unwrap();
    let post = Command::new("ip")
        .args(["netns", "exec", &f.ns, "curl", "-s", "--max-time", "10", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(format!("http://127.0.0.1:{}/", f.front))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&post.stdout).trim(), "box 100000", "{}", f.proxy_log());
    let services = f.env.json(&["services"]);
    assert!(services.as_array().unwrap().iter().any(|s| s["name"] == "ws-front" && s["state"] == "RUNNING"), "{services:#}");

    let (alice_port, bob_port, mirror_port) = (free_port(), free_port(), free_port());
    let mut alice = f.intercept(&["--header", "x-dev=alice"], "alice", alice_port, None);
    f.wait_routed(&mut alice, Some("x-dev: alice"), "/", "alice");
    // A request in flight while bob's route is added (nginx reloads)
    // is answered, not dropped.
    let slow = {
        let ns = f.ns.clone();
        let url = format!("http://127.0.0.1:{}/slow", f.front);
        std::thread::spawn(move || Command::new("ip").args(["netns", "exec", &ns, "curl", "-s", "--max-time", "20", &url]).output().unwrap())
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut bob = f.intercept(&["--header", "X-Dev=bob"], "bob", bob_port, None);
    f.wait_routed(&mut bob, Some("x-dev: bob"), "/", "bob");
    let slow = slow.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&slow.stdout).trim(), "box", "the request in flight across the reload: {slow:?}");
    // Everyone else's requests reach the box's api, which keeps running.
    f.expect(None, "/", "box");
    f.expect(Some("x-dev: carol"), "/", "box");
    f.expect(Some("x-dev: alice"), "/", "alice");
    // `services` shows who takes which requests.
    let services = f.env.json(&["services", "api"]);
    assert_eq!(services[0]["state"], "RUNNING", "{services:#}");
    let routes: Vec<(String, String)> = services[0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["match"]["value"].as_str().unwrap().to_string(), r["by"].as_str().unwrap().split('@').next().unwrap().to_string()))
        .collect();
    assert_eq!(routes, [("alice".to_string(), "tester".to_string()), ("bob".to_string(), "tester".to_string())], "{services:#}");
    let text = f.env.ok(&["services", "api"]);
    assert!(text.contains("personal routes: x-dev: alice to tester@"), "{text}");

    // The same header twice is refused, naming who has it.
    let out = f.env.run(&["intercept", "api", "--header", "x-dev=alice", "--port", &format!("{}:{}", f.own_port(), free_port()), "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x-dev: alice on api is already routed to tester@"), "{err}");

    // A mirror: the box answers every request, the laptop gets a copy.
    let copies = f.env.root.path().join("copies.log");
    let mut mirror = f.intercept(&["--mirror"], "mirror", mirror_port, Some(&copies));
    let seen = || std::fs::read_to_string(&copies).unwrap_or_default();
    let start = Instant::now();
    while !seen().contains("/copy-me") {
        assert_eq!(f.ask(None, "/copy-me"), "box", "the box answers a mirrored request");
        assert!(start.elapsed() < Duration::from_secs(30) && mirror.try_wait().unwrap().is_none(), "no copy reached the laptop: {:?}", seen());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(f.ask(Some("x-dev: bob"), "/"), "bob", "mirroring leaves the header routes alone");

    // kill -9 of alice's intercept: her route is gone within 15 s, and
    // bob's and the default route work throughout.
    alice.kill().unwrap();
    alice.wait().unwrap();
    let killed = Instant::now();
    while f.ask(Some("x-dev: alice"), "/") != "box" {
        assert!(killed.elapsed() < Duration::from_secs(15), "alice's route outlived her intercept by 15 s");
        f.expect(Some("x-dev: bob"), "/", "bob");
        f.expect(None, "/", "box");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("alice's route gone {:?} after kill -9", killed.elapsed());
    kill_laptop_servers("alice");
    f.expect(Some("x-dev: bob"), "/", "bob");

    // Bob's command ends: his intercept ends with its status, his route too.
    f.expect(Some("x-dev: bob"), "/quit", "bob");
    let (code, err) = stderr_of(bob);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("sends every request to the box's api again"), "{err}");
    f.expect(Some("x-dev: bob"), "/", "box");
    mirror.kill().unwrap();
    mirror.wait().unwrap();
    kill_laptop_servers("mirror");
    wait_until(
        Duration::from_secs(15),
        || !std::fs::read_to_string(f.env.box_root("dev").join("run/front/nginx.conf")).unwrap().contains("mirror /"),
        || "the mirror's route outlived its intercept".into(),
    );
}

#[test]
fn a_branched_database_takes_the_laptops_writes() {
    // Ports of their own: tests run in parallel, and an intercept forwards
    // the box's stores to this machine's loopback at the same ports.
    let (redis, pg) = (free_port(), free_port());
    let stores = format!("[stores.main]\nkind = \"postgres\"\ndatabase = \"app\"\nport = {pg}\n[stores.cache]\nkind = \"redis\"\nport = {redis}\n");
    let f = fixture(&stores, &format!("DATABASE_URL = \"postgres://postgres@127.0.0.1:{pg}/app\", REDIS_URL = \"redis://127.0.0.1:{redis}/0\""));
    let sql =
        |db: &str, q: &str| f.env.ok(&["ssh", "dev", "--", &format!("psql -X -At -h 127.0.0.1 -p {pg} -U postgres -d {db} -c \"{q}\"")]).trim().to_string();
    // Unseeded, the store has no database yet.
    sql("postgres", "CREATE DATABASE app");
    sql("app", "CREATE TABLE shared(x int); INSERT INTO shared VALUES (1)");
    f.env.ok(&["ssh", "dev", "--", &format!("redis-cli -p {redis} set shared yes")]);
    // The box's api holds a session on the database, as a shared box's do:
    // the branch is made by dump instead of TEMPLATE.
    let held = f
        .env
        .cmd(&["ssh", "dev", "--", &format!("psql -X -h 127.0.0.1 -p {pg} -U postgres -d app -c 'SELECT pg_sleep(60)'")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _held = scopeguard(held);
    wait_until(
        Duration::from_secs(15),
        || sql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'") != "0",
        || "no session on app".into(),
    );

    let out = f.env.root.path().join("laptop.out");
    // The laptop's service: reads the shared rows through its branch,
    // writes its own, and exits.
    let script = format!(
        "psql -X -At \"$DATABASE_URL\" -c 'SELECT count(*) FROM shared' > {o} && psql -X -q \"$DATABASE_URL\" -c 'INSERT INTO shared VALUES (2)' && redis-cli -u \"$REDIS_URL\" get shared >> {o} && redis-cli -u \"$REDIS_URL\" set mine 1 >/dev/null && echo \"$DATABASE_URL\" >> {o}",
        o = out.display()
    );
    let port = free_port().to_string();
    let own = format!("{}:{port}", f.own_port());
    let run =
        f.env.run(&["intercept", "api", "--header", "x-dev=alice", "--branch-db", "main", "--branch-db", "cache", "--port", &own, "--", "sh", "-c", &script]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("data branch of main: app__tester_") && err.contains("(dump in") && err.contains("data branch of cache: 1 (copy in"), "{err}");
    // --keep cannot keep a redis branch: refused before anything happens.
    let refused = f.env.run(&["intercept", "api", "--header", "x-dev=alice", "--branch-db", "cache", "--keep", "--port", &own, "--", "true"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("a redis branch is always dropped"), "{refused:?}");
    let seen = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(&lines[..2], ["1", "yes"], "the branches start as copies: {seen}");
    assert!(lines[2].contains("/app__tester_"), "{seen}");
    // The shared data never saw the writes, and the branches are gone.
    assert_eq!(sql("app", "SELECT count(*) FROM shared"), "1");
    assert_eq!(sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'app\\_\\_%'"), "0");
    let keys = f.env.ok(&["ssh", "dev", "--", &format!("redis-cli -p {redis} -n 0 exists mine; redis-cli -p {redis} -n 1 dbsize")]);
    assert_eq!(keys.split_whitespace().collect::<Vec<_>>(), ["0", "0"], "{keys}");

    // --keep keeps the postgres branch; the next intercept uses it again.
    let run = f.env.run(&["intercept", "api", "--header", "x-dev=alice", "--branch-db", "main", "--keep", "--port", &own, "--", "sh", "-c", &script]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let run = f.env.run(&["intercept", "api", "--header", "x-dev=alice", "--branch-db", "main", "--port", &own, "--", "sh", "-c", &script]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success() && err.contains("(kept in"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().next(), Some("2"), "the kept branch had the first run's row");
    assert_eq!(sql("app", "SELECT count(*) FROM shared"), "1");
}

/// Kills the child when dropped.
fn scopeguard(child: Child) -> impl Drop {
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Guard(child)
}
