//! `workstation intercept` on a local box with real sshd, supervisord and
//! redis: the box's `api` answers "box"; intercepted, the box's requests to
//! its port reach a server on this machine (the laptop) answering "laptop",
//! which uses the box's redis through the environment it was given.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use workstation_tests::{free_port, netns_with, wait_until, TestEnv};

const BOX_MANIFEST_HEAD: &str = "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n";

/// A server answering `word` on `port` (the env names it), which writes the
/// redis key `intercept` through REDIS_URL first (as the service would use
/// the box's stores) and exits 7 after answering /quit.
const SERVER: &str = r#"
import http.server, os, subprocess, sys
word, port = sys.argv[1], int(sys.argv[2])
if word == "laptop":
    subprocess.run(["redis-cli", "-u", os.environ["REDIS_URL"], "set", "intercept", "from-" + os.environ["WORKSTATION_INTERCEPT"]], check=True, stdout=subprocess.DEVNULL)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = (word + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.path == "/quit":
            os._exit(7)
http.server.ThreadingHTTPServer(("127.0.0.1" if word == "laptop" else "0.0.0.0", port), H).serve_forever()
"#;

/// Tries to listen on the port given on 127.0.0.1, 0.0.0.0, ::1 and ::
/// (with SO_REUSEADDR and SO_REUSEPORT, as a squatter would), printing
/// `taken` or `bound` for each.
const SQUATTER: &str = r#"
import errno, socket, sys
port = int(sys.argv[1])
out = []
for family, address in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::1"), (socket.AF_INET6, "::")]:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        s.bind((address, port))
        s.listen()
        out.append("bound")
    except OSError as e:
        out.append("taken" if e.errno == errno.EADDRINUSE else "error %d" % e.errno)
    s.close()
print(" ".join(out))
"#;

struct Fixture {
    env: TestEnv,
    port: u16,
    redis: u16,
    server: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let env = TestEnv::local();
    // Ports of their own: tests run in parallel, and an intercept forwards
    // the box's redis to this machine's loopback at the same port.
    let (port, redis) = (free_port(), free_port());
    let server = env.root.path().join("server.py");
    std::fs::write(&server, SERVER).unwrap();
    env.write_manifest(&format!(
        "{BOX_MANIFEST_HEAD}
[stores.cache]
kind = \"redis\"
port = {redis}

[services.api]
command = \"python3 {server} box {port}\"
ports = [{port}]
health = {{ http = \"/\", port = {port} }}
environment = {{ REDIS_URL = \"redis://127.0.0.1:{redis}/0\" }}
",
        server = server.display()
    ));
    let created = env.json(&["create", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    Fixture { env, port, redis, server }
}

impl Fixture {
    /// What api's port answers, asked on the box.
    fn ask(&self, path: &str) -> String {
        let out = self.env.run(&["ssh", "dev", "--", &format!("curl -s --max-time 5 http://127.0.0.1:{}{path}", self.port)]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The same, from inside the box's namespace without SSH (for when the
    /// box's network is down).
    fn ask_inside(&self, ns: &str) -> String {
        let out =
            Command::new("ip").args(["netns", "exec", ns, "curl", "-s", "--max-time", "2"]).arg(format!("http://127.0.0.1:{}/", self.port)).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn intercept(&self) -> Child {
        let port = self.port.to_string();
        let server = self.server.to_str().unwrap();
        self.env.cmd(&["intercept", "api", "--", "python3", server, "laptop", &port]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    }

    fn wait_for(&self, word: &str, timeout: Duration) {
        let last = std::cell::RefCell::new(String::new());
        wait_until(
            timeout,
            || {
                *last.borrow_mut() = self.ask("/");
                *last.borrow() == word
            },
            || format!("api answers {:?}, not {word:?}", last.borrow()),
        );
    }

    /// Waits until the intercept `child` is in place; if it is not, the
    /// failure shows what the intercept said.
    fn wait_intercepted(&self, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ask("/") != "laptop" {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let mut text = String::new();
                child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
                panic!("the intercept did not take (api answers {:?}); it said:\n{text}", self.ask("/"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn namespace(&self) -> String {
        let list = self.env.json(&["list"]);
        let address = list[0]["address"].as_str().unwrap().to_string();
        netns_with(&address).unwrap()
    }
}

fn stderr_of(mut child: Child) -> (Option<i32>, String) {
    let status = child.wait().unwrap();
    let mut text = String::new();
    child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
    (status.code(), text)
}

/// Kills what is left of a laptop server a killed intercept left behind.
fn kill_laptop_servers(port: u16) {
    let _ = Command::new("pkill").args(["-9", "-f", &format!("server.py laptop {port}")]).status();
}

#[test]
fn a_service_runs_on_the_laptop_and_comes_back_to_the_box() {
    let f = fixture();
    assert_eq!(f.ask("/"), "box");

    // Refused before anything happens: an unknown service lists the known.
    let out = f.env.run(&["intercept", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no service \"nope\"") && err.contains("api"), "{err}");

    let mut child = f.intercept();
    f.wait_intercepted(&mut child);
    // The laptop's process used the box's redis through its environment.
    assert_eq!(f.env.ok(&["ssh", "dev", "--", &format!("redis-cli -p {} get intercept", f.redis)]).trim(), "from-api");
    // A colleague who `share`s the box reaches it at the box's address
    // (here, from this machine across the bridge): that reaches the laptop.
    let address = f.env.json(&["list"])[0]["address"].as_str().unwrap().to_string();
    let out = Command::new("curl").args(["-s", "--max-time", "5"]).arg(format!("http://{address}:{}/", f.port)).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "laptop");
    // While it lasts, no other user on the box can take api's port, on any
    // address of either family: a squatter gets none of its traffic.
    let ns = f.namespace();
    let squat =
        Command::new("ip").args(["netns", "exec", &ns, "runuser", "-u", "nobody", "--", "python3", "-c", SQUATTER, &f.port.to_string()]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&squat.stdout).trim(), "taken taken taken taken", "{squat:?}");
    // Nor open (and so hold) the lock, or read who holds it.
    let records = f.env.box_root("dev").join("run/intercepts");
    let as_nobody = |args: &[&str]| Command::new("runuser").args(["-u", "nobody", "--"]).args(args).output().unwrap().status.success();
    assert!(as_nobody(&["test", "-x", records.parent().unwrap().to_str().unwrap()]), "the box's run directory is reachable: the checks below mean something");
    assert!(!as_nobody(&["flock", "-n", records.join("api.lock").to_str().unwrap(), "true"]), "nobody cannot hold the lock");
    assert!(!as_nobody(&["cat", records.join("api.json").to_str().unwrap()]), "nobody cannot read the record");
    // `services` says who holds it.
    let services = f.env.json(&["services", "api"]);
    assert_eq!(services[0]["state"], "INTERCEPTED", "{services:#}");
    assert!(services[0]["intercepted"]["by"].as_str().unwrap().starts_with("tester@"), "{services:#}");
    assert_eq!(services[0]["intercepted"]["ports"][0], f.port);
    // Restarting it on the box would find its ports taken: refused.
    let err = f.env.fails(&["restart", "api"]);
    assert!(err.contains("api is intercepted by tester@"), "{err}");
    // A second intercept is refused, naming the holder.
    let out = f.env.run(&["intercept", "api", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api is already intercepted by tester@"), "{err}");

    // The command's end is the intercept's, with its exit status; api is
    // back on the box, running under supervisord.
    assert_eq!(f.ask("/quit"), "laptop");
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(7), "{err}");
    assert!(err.contains("api runs on box dev again"), "{err}");
    assert_eq!(f.ask("/"), "box");
    let services = f.env.json(&["services", "api"]);
    // Up: supervisord runs it (RUNNING, or STARTING for its first second)
    // and it passes its check.
    assert!(["RUNNING", "STARTING"].contains(&services[0]["state"].as_str().unwrap()), "{services:#}");
    assert_eq!(services[0]["health"]["status"], "healthy", "{services:#}");
    assert!(services[0].get("intercepted").is_none());
}

#[test]
fn the_box_takes_its_service_back_when_the_laptop_vanishes() {
    let f = fixture();

    // kill -9 of the intercept: the box's api is back within 15 s.
    let mut child = f.intercept();
    f.wait_intercepted(&mut child);
    child.kill().unwrap();
    let killed = Instant::now();
    child.wait().unwrap();
    // End of input reaches the box at once: well before the lease (10 s).
    f.wait_for("box", Duration::from_secs(5));
    eprintln!("api back {:?} after kill -9", killed.elapsed());
    // The laptop's server ended with the CLI: nothing holds its port.
    let server = format!("server.py laptop {}", f.port);
    let running = || Command::new("pgrep").args(["-f", &server]).output().unwrap().status.success();
    wait_until(Duration::from_secs(5), || !running(), || "the laptop's server still runs after its intercept was killed".into());
    assert!(std::net::TcpListener::bind(("127.0.0.1", f.port)).is_ok(), "port {} is still taken", f.port);

    // The box's network down for 20 s: the box restores api by itself,
    // and the CLI says the intercept ended instead of hanging.
    let mut child = f.intercept();
    f.wait_intercepted(&mut child);
    let ns = f.namespace();
    let link = |state: &str| assert!(Command::new("ip").args(["-n", &ns, "link", "set", "eth0", state]).status().unwrap().success());
    link("down");
    let down = Instant::now();
    let answer = std::cell::RefCell::new(String::new());
    wait_until(
        Duration::from_secs(15),
        || {
            *answer.borrow_mut() = f.ask_inside(&ns);
            *answer.borrow() == "box"
        },
        || format!("api answers {:?} inside the box with its network down", answer.borrow()),
    );
    eprintln!("api back {:?} after the network went down", down.elapsed());
    std::thread::sleep(Duration::from_secs(20).saturating_sub(down.elapsed()));
    link("up");
    let mut child = child;
    let ended = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(ended.elapsed() < Duration::from_secs(30), "the intercept still runs 30 s after the network came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, err) = stderr_of(child);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("connection to box dev was lost"), "{err}");
    kill_laptop_servers(f.port);
    f.wait_for("box", Duration::from_secs(15));
}

/// `intercept` killed (kill -9) or Ctrl-C'd anywhere, from connecting to
/// routing: the box gets api back within the lease (10 s), the laptop's
/// server has ended and freed its port, and the next intercept takes.
/// Ctrl-C is the command's (it ends the laptop's server, and the intercept
/// with it), so only a crash is refused in what it says.
#[test]
fn intercept_interrupted_anywhere_leaves_the_box_its_service_and_the_next_one_takes() {
    use workstation_tests::interrupt::{points, timed, Left, Points, Sweep};
    let f = fixture();
    let port = f.port.to_string();
    let server = f.server.to_str().unwrap();
    let args = ["intercept", "api", "--", "python3", server, "laptop", &port];
    let server_runs = || Command::new("pgrep").args(["-f", &format!("server.py laptop {}", f.port)]).output().unwrap().status.success();
    let take_and_end = || {
        let mut child = f.intercept();
        f.wait_intercepted(&mut child);
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let (_, err) = stderr_of(child);
        f.wait_for("box", Duration::from_secs(15));
        err
    };
    let clean = timed(|| drop(take_and_end()));
    let mut sweep = Sweep::new("intercept").saying(|said| !said.contains("panicked"));
    sweep.run(
        &f.env,
        &args,
        Points { clean, seed: 0x1c7e_5eed, n: points(20) },
        |_| {},
        || {
            let back = Instant::now();
            while f.ask("/") != "box" {
                if back.elapsed() > Duration::from_secs(15) {
                    return Err(format!("api answers {:?} 15 s after the intercept ended", f.ask("/")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let gone = Instant::now();
            while server_runs() && gone.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let leaked = usize::from(server_runs());
            kill_laptop_servers(f.port);
            let said = take_and_end();
            if !said.contains("api runs on box dev again") {
                return Err(format!("the next intercept did not end cleanly: {said}"));
            }
            Ok(Left { leaked, lost: 0 })
        },
    );
    sweep.finish();
}
