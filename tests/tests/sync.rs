//! `workstation sync` with real rsync and sshd: a local box (network
//! namespace) whose files sit on this machine, so results are read directly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use workstation_tests::{wait_until, TestEnv};

const MANIFEST: &str = r#"
[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"
exclude = ["*.tmp"]

[services.web]
command = "sleep 100000"
install = "echo installed >> install.log"
install_on = ["package-lock.json"]
restart_on = ["web/**"]

[services.api]
command = "sleep 100000"
restart_on = ["api/**"]
"#;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    wait_until(Duration::from_secs(60), ok, || format!("waiting for {what}"));
}

fn setup() -> (TestEnv, PathBuf, PathBuf) {
    let env = TestEnv::local();
    env.write_manifest(MANIFEST);
    env.ok(&["create", "--name", "dev"]);
    let checkout = env.root.path().join("checkout");
    write(&checkout.join("a.txt"), "a1");
    write(&checkout.join("dir/b.txt"), "b1");
    write(&checkout.join(".gitignore"), "ignored.txt\nbuild/\n");
    write(&checkout.join("ignored.txt"), "no");
    write(&checkout.join("build/out.o"), "no");
    write(&checkout.join("scratch.tmp"), "no");
    write(&checkout.join(".git/HEAD"), "ref: refs/heads/main\n");
    let out = env.json(&["sync", "dev", "--once", "--dir", checkout.to_str().unwrap()]);
    let remote = PathBuf::from(out["remote"].as_str().unwrap());
    (env, checkout, remote)
}

/// The program's pid while it is running (`services` exits 1 while
/// anything is not healthy, e.g. during a restart).
fn pid(env: &TestEnv, program: &str) -> Option<u64> {
    let out = env.run(&["services", program, "--output", "json"]);
    let services: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let list = services.as_array().cloned().or_else(|| services["programs"].as_array().cloned())?;
    list.iter().find(|p| p["name"] == program && p["state"] == "RUNNING").and_then(|p| p["pid"].as_u64())
}

fn running_pid(env: &TestEnv, program: &str) -> u64 {
    let mut found = None;
    wait_for(&format!("{program} running"), || {
        found = pid(env, program);
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn once_honours_gitignore_and_excludes_and_syncs_a_10000_file_tree() {
    let (env, _checkout, remote) = setup();
    assert_eq!(std::fs::read_to_string(remote.join("a.txt")).unwrap(), "a1");
    assert_eq!(std::fs::read_to_string(remote.join("dir/b.txt")).unwrap(), "b1");
    for absent in ["ignored.txt", "build", "scratch.tmp", ".git"] {
        assert!(!remote.join(absent).exists(), "{absent} must not be synced");
    }
    assert!(remote.join(".gitignore").exists());

    let big = env.root.path().join("big");
    for i in 0..10_000 {
        write(&big.join(format!("d{}/f{i}.txt", i % 100)), &format!("file {i}\n"));
    }
    let t = Instant::now();
    let out = env.json(&["sync", "dev", "--once", "--dir", big.to_str().unwrap()]);
    eprintln!("10,000-file initial sync: {:.2}s", t.elapsed().as_secs_f64());
    let remote_big = PathBuf::from(out["remote"].as_str().unwrap());
    let count = walk(&remote_big);
    assert_eq!(count, 10_000);
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()
}

struct Watching {
    child: Child,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_mirrors_edits_runs_installs_restarts_and_catches_up_after_a_stop() {
    let (env, checkout, remote) = setup();
    let mut child = env.cmd(&["sync", "dev", "-v", "--dir", checkout.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    loop {
        let line = lines.next().expect("sync printed nothing").unwrap();
        log.lock().unwrap().push_str(&format!("{line}\n"));
        if line.starts_with("watching") {
            break;
        }
    }
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
    }
    let _watching = Watching { child };
    let read = |p: &str| std::fs::read_to_string(remote.join(p)).ok();

    // A second sync of the same checkout is refused.
    let err = env.fails(&["sync", "dev", "--once", "--dir", checkout.to_str().unwrap()]);
    assert!(err.contains("already syncing"), "{err}");

    write(&checkout.join("a.txt"), "a2");
    wait_for("an edit", || read("a.txt").as_deref() == Some("a2"));
    write(&checkout.join("new/deeper/c.txt"), "c1");
    wait_for("a new directory tree", || read("new/deeper/c.txt").as_deref() == Some("c1"));
    std::fs::remove_file(checkout.join("dir/b.txt")).unwrap();
    wait_for("a delete", || !remote.join("dir/b.txt").exists());
    std::fs::rename(checkout.join("a.txt"), checkout.join("z.txt")).unwrap();
    wait_for("a file rename", || read("z.txt").is_some() && read("a.txt").is_none());
    std::fs::rename(checkout.join("new"), checkout.join("renamed")).unwrap();
    wait_for("a directory rename", || read("renamed/deeper/c.txt").is_some() && !remote.join("new").exists());
    write(&checkout.join("ignored.txt"), "still no");
    write(&checkout.join("visible.txt"), "yes");
    wait_for("a file after an ignored one", || read("visible.txt").is_some());
    assert!(read("ignored.txt").is_none());

    // The lockfile: install once, restart web only.
    let (web, api) = (running_pid(&env, "web"), running_pid(&env, "api"));
    write(&checkout.join("package-lock.json"), "{}");
    wait_until(
        Duration::from_secs(60),
        || read("install.log").is_some_and(|l| l.contains("installed")),
        || format!("the install never ran; sync said:\n{}", log.lock().unwrap()),
    );
    wait_for("web's restart", || pid(&env, "web").is_some_and(|p| p != web));
    assert_eq!(read("install.log").unwrap(), "installed\n", "the install ran once");
    assert_eq!(running_pid(&env, "api"), api, "api does not depend on the lockfile");
    let web = running_pid(&env, "web");
    write(&checkout.join("api/handler.py"), "print(1)");
    wait_for("api's restart", || pid(&env, "api").is_some_and(|p| p != api));
    assert_eq!(running_pid(&env, "web"), web);

    // The box goes away and comes back: edits made meanwhile arrive, and
    // syncing goes on. (A local box's stop can leave the shared SSH
    // connection's session alive, so the edit may even arrive while it is
    // down; `push` retries unreachable boxes with backoff either way.)
    env.ok(&["stop", "dev"]);
    write(&checkout.join("offline.txt"), "made while the box was down");
    // A fixed wait is the check here: nothing says "the watcher saw the
    // edit and its push failed", and the point is an edit seen while the
    // box is down (notify delivers within milliseconds; 2 s is ample).
    std::thread::sleep(Duration::from_secs(2));
    env.ok(&["start", "dev"]);
    wait_for("the re-sync after reconnecting", || read("offline.txt").is_some());
    write(&checkout.join("after.txt"), "after the restart");
    wait_for("an edit after the restart", || read("after.txt").is_some());
}
