//! End-to-end: services under a real supervisord and stores (real
//! redis-server and PostgreSQL) seeded on local boxes, through the
//! `workstation` binary.

use std::path::Path;
use std::time::{Duration, Instant};

use workstation_tests::{wait_until, write_csv_snapshot, write_resp_snapshot, TestEnv};

const BOX: &str = "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n";

fn ssh(env: &TestEnv, script: &str) -> String {
    // One remote command line, as with ssh.
    env.ok(&["ssh", "dev", "--", script]).trim().to_string()
}

fn redis(env: &TestEnv, args: &str) -> String {
    ssh(env, &format!("redis-cli -h 127.0.0.1 -p 6379 {args}"))
}

fn psql(env: &TestEnv, sql: &str) -> String {
    ssh(env, &format!("psql -X -At -h 127.0.0.1 -p 5432 -U postgres -d app -c \"{sql}\""))
}

fn marker(env: &TestEnv, store: &str) -> String {
    let root = env.box_root("dev");
    std::fs::read_to_string(root.join(format!("seeds/{store}.loaded"))).unwrap_or_default().trim().to_string()
}

fn program<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} missing in {list:#}"))
}

#[test]
fn services_come_up_healthy_and_a_crash_is_restarted() {
    let env = TestEnv::local();
    let site = env.root.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "hello from the box\n").unwrap();
    let hostile = "100% %(ENV_HOME)s it's \"quoted\" ; #not-a-comment\nsecond line\n";
    env.write_manifest(&format!(
        "{BOX}
[services.web]
command = 'printf %s \"$HOSTILE\" > env.out; exec python3 -m http.server 8081 --bind 127.0.0.1'
directory = \"{site}\"
ports = [8081]
depends_on = [\"api\"]
health = {{ http = \"/\", port = 8081 }}
environment = {{ HOSTILE = {hostile_toml} }}

[services.api]
command = \"python3 -m http.server 8082\"
directory = \"{site}\"
ports = [8082]
health = {{ tcp = 8082 }}
",
        site = site.display(),
        hostile_toml = toml_string(hostile),
    ));

    let created = env.json(&["create", "--name", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    assert_eq!(created["up"]["supervisord"], "started");
    let programs = &created["up"]["programs"];
    assert_eq!(program(programs, "web")["health"]["status"], "healthy");
    assert_eq!(program(programs, "api")["health"]["status"], "healthy");
    // The hostile value reached the service byte for byte.
    assert_eq!(std::fs::read_to_string(site.join("env.out")).unwrap(), hostile);

    // Idempotent: nothing to change, nothing restarted.
    let pid = program(programs, "web")["pid"].clone();
    let again = env.json(&["up", "dev"]);
    assert_eq!(again["supervisord"], "unchanged");
    assert_eq!(program(&again["programs"], "web")["pid"], pid);

    // The health checks' requests are in web's log.
    let log = env.ok(&["logs", "web", "--box", "dev"]);
    assert!(log.contains("\"GET / HTTP/1.0\" 200"), "{log}");

    // restart gives a new process.
    env.ok(&["restart", "web", "--box", "dev"]);
    let after = env.json(&["services", "web", "--box", "dev"]);
    assert_ne!(after[0]["pid"], pid);
    assert_eq!(after[0]["health"]["status"], "healthy");

    // A service that crashes is restarted by supervisord, and `services`
    // reports the unexpected exits. Adding it restarts nothing else.
    let mut text = std::fs::read_to_string(&env.manifest).unwrap();
    text.push_str("\n[services.crasher]\ncommand = \"sleep 1.2; exit 3\"\n");
    env.write_manifest(&text);
    let web_pid = after[0]["pid"].clone();
    // It may be between crashes right now: up then reports not healthy.
    let updated = env.run(&["up", "dev", "--health-timeout", "1s", "--output", "json"]);
    let updated: serde_json::Value = serde_json::from_slice(&updated.stdout).unwrap();
    assert_eq!(updated["supervisord"], "updated");
    assert_eq!(program(&updated["programs"], "web")["pid"], web_pid, "unrelated programs keep running");
    let deadline = Instant::now() + Duration::from_secs(20);
    let crasher = loop {
        let out = env.run(&["services", "crasher", "--box", "dev", "--output", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if list[0]["unexpected_exits"].as_u64().unwrap() >= 2 || Instant::now() > deadline {
            break list[0].clone();
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(crasher["unexpected_exits"].as_u64().unwrap() >= 2, "{crasher:#}");
    let table = String::from_utf8(env.run(&["services", "--box", "dev"]).stdout).unwrap();
    assert!(table.contains("crasher") && table.contains("EXITS"), "{table}");
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.into()).to_string()
}

fn seeded_env(resp_keys: usize) -> TestEnv {
    let env = TestEnv::local();
    let seeds = env.root.path().join("seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    write_resp_snapshot(&seeds.join("cache.resp"), resp_keys, "v1");
    write_csv_snapshot(&seeds.join("main"), 1000, 5);
    env.write_manifest(&format!(
        "{BOX}
[stores.cache]
kind = \"redis\"
seed = \"seeds/cache.resp\"

[stores.main]
kind = \"postgres\"
database = \"app\"
seed = \"seeds/main\"
"
    ));
    env
}

#[test]
fn stores_are_seeded_and_reset_restores_the_snapshot() {
    let env = seeded_env(100_000);
    let created = env.json(&["create", "--name", "dev"]);
    assert_eq!(created["up"]["healthy"], true, "{created:#}");
    let seeds = created["up"]["seeds"].as_array().unwrap();
    assert!(seeds.iter().all(|s| s["outcome"] == "loaded"), "{seeds:#?}");

    assert_eq!(redis(&env, "dbsize"), "100000");
    assert_eq!(redis(&env, "get key:99999"), "v1-value-99999");
    assert_eq!(psql(&env, "SELECT count(*) FROM orders"), "5000");
    assert_eq!(psql(&env, "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id"), "5000");
    // The keys set aside for the load are back: two primary keys, the
    // unique email and the foreign key.
    assert_eq!(
        psql(&env, "SELECT string_agg(conname, ' ' ORDER BY conname) FROM pg_constraint WHERE conrelid IN ('users'::regclass, 'orders'::regclass)"),
        "orders_pkey orders_user_id_fkey users_email_key users_pkey"
    );
    assert!(marker(&env, "cache").starts_with("sha256:"));

    // Seeding again is a no-op.
    let again = env.json(&["seed", "--box", "dev"]);
    assert!(again.as_array().unwrap().iter().all(|s| s["outcome"] == "already-loaded"), "{again:#}");

    // Local changes, then --reset brings the snapshot back.
    redis(&env, "set extra 1");
    redis(&env, "del key:1");
    psql(&env, "DELETE FROM orders WHERE id < 100");
    psql(&env, "INSERT INTO users VALUES (5000, 'new@example.test')");
    let reset = env.json(&["seed", "--reset", "--box", "dev"]);
    assert!(reset.as_array().unwrap().iter().all(|s| s["outcome"] == "loaded"), "{reset:#}");
    assert_eq!(redis(&env, "dbsize"), "100000");
    assert_eq!(redis(&env, "exists extra"), "0");
    assert_eq!(redis(&env, "get key:1"), "v1-value-1");
    assert_eq!(psql(&env, "SELECT count(*) FROM orders"), "5000");
    assert_eq!(psql(&env, "SELECT count(*) FROM users"), "1000");
    // Nothing staged is left behind; the replaced database goes in the
    // background, soon.
    assert_eq!(redis(&env, "-n 15 dbsize"), "0");
    let leftovers = || ssh(&env, "psql -X -At -h 127.0.0.1 -U postgres -d postgres -c \"SELECT count(*) FROM pg_database WHERE datname LIKE 'app__ws%'\"");
    wait_until(std::time::Duration::from_secs(15), || leftovers() == "0", || format!("{} staging or replaced databases left", leftovers()));
}

#[test]
fn bad_or_interrupted_seeds_leave_the_store_as_it_was() {
    let env = seeded_env(1000);
    env.ok(&["create", "--name", "dev"]);
    let loaded = marker(&env, "cache");
    let seeds = env.root.path().join("seeds");

    // A truncated snapshot: clear error, old data and marker intact.
    let mut bytes = std::fs::read(seeds.join("cache.resp")).unwrap();
    bytes.truncate(bytes.len() - 7);
    std::fs::write(seeds.join("cache.resp"), &bytes).unwrap();
    let err = env.fails(&["seed", "cache", "--reset", "--box", "dev"]);
    assert!(err.contains("truncated") && err.contains("left as it was"), "{err}");
    assert_eq!(redis(&env, "dbsize"), "1000");
    assert_eq!(marker(&env, "cache"), loaded);

    // A malformed postgres snapshot: the CSV has a row that breaks the
    // foreign key. The old database is untouched.
    let main = seeds.join("main");
    std::fs::write(main.join("02-orders.csv"), "id,user_id,total,note\n1,0,1.00,ok\n2,99999,2.00,orphan\n").unwrap();
    let err = env.fails(&["seed", "main", "--reset", "--box", "dev"]);
    assert!(err.contains("02-orders.csv") && err.contains("foreign key"), "{err}");
    assert_eq!(psql(&env, "SELECT count(*) FROM orders"), "5000");
    // A duplicate key, found when the keys are built after the data.
    std::fs::write(main.join("02-orders.csv"), "id,user_id,total,note\n1,0,1.00,ok\n1,1,2.00,twice\n").unwrap();
    let err = env.fails(&["seed", "main", "--reset", "--box", "dev"]);
    assert!(err.contains("02-orders.csv") && err.contains("duplicate") && err.contains("left as it was"), "{err}");
    assert_eq!(psql(&env, "SELECT count(*) FROM orders"), "5000");

    // Killing the connection mid-seed: no marker for the new snapshot, the
    // old data still served; a second run completes.
    write_resp_snapshot(&seeds.join("cache.resp"), 1_000_000, "v2");
    let mut child = env.cmd(&["seed", "cache", "--reset", "--box", "dev"]).spawn().unwrap();
    wait_for_staging(&env);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(marker(&env, "cache"), loaded, "no marker for an interrupted load");
    assert_eq!(redis(&env, "get key:0"), "v1-value-0");
    let done = env.json(&["seed", "cache", "--reset", "--box", "dev"]);
    assert_eq!(done[0]["outcome"], "loaded");
    assert_eq!(redis(&env, "dbsize"), "1000000");
    assert_eq!(redis(&env, "get key:0"), "v2-value-0");
    assert_ne!(marker(&env, "cache"), loaded);
}

/// Waits (bounded) until keys arrive in redis' staging database: the load
/// is under way.
fn wait_for_staging(env: &TestEnv) {
    wait_until(Duration::from_secs(30), || redis(env, "-n 15 dbsize").parse::<u64>().unwrap_or(0) > 1000, || "the seed never started loading".into());
}

#[test]
fn render_supervisord_matches_the_golden_files() {
    let env = TestEnv::local();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../provisioner/tests/golden/supervisord");
    let out = env.ok(&["render", "supervisord", "--manifest", golden.join("workstation.toml").to_str().unwrap(), "--path", "/run/current-system/sw/bin"]);
    assert_eq!(out, std::fs::read_to_string(golden.join("expected.txt")).unwrap());
    // --out writes the files, and real supervisord's parser accepts them.
    // (The golden manifest runs a service as "app", not a user here.)
    let box_root = env.root.path().join("box-root");
    std::fs::create_dir_all(box_root.join("logs")).unwrap();
    std::fs::create_dir_all(box_root.join("run")).unwrap();
    let manifest = std::fs::read_to_string(golden.join("workstation.toml")).unwrap().replace("user = \"app\"", "user = \"root\"");
    env.write_manifest(&manifest);
    let dir = box_root.join("supervisor/current");
    env.ok(&["render", "supervisord", "--root", box_root.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    let check = std::process::Command::new("python3")
        .args(["-c", "import sys; from supervisor.options import ServerOptions as O; o = O(); o.realize(['-c', sys.argv[1]]); print(sorted(p.name for g in o.process_group_configs for p in g.process_configs))"])
        .arg(dir.join("supervisord.conf"))
        .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "['api', 'cache', 'main', 'orders', 'worker', 'ws-front']");
}
