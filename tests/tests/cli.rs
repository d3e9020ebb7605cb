//! The command line as a newcomer meets it, through the real binary:
//! `ssh` that behaves like ssh, AWS failures in one line with their fix,
//! one way to name a box, checks before launch, a stopped box woken by
//! connecting to it, port forwarding, VS Code, JSON errors.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use workstation_tests::moto::block_on;
use workstation_tests::{free_port, manifest_text, wait_until, TestEnv};

#[test]
fn ssh_forwards_stdin_and_the_exit_status_like_ssh() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);

    // stdin reaches the command, with its EOF; 8 MiB arrive intact.
    let payload: Vec<u8> = (0..8u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let mut child = env.cmd(&["ssh", "dev", "--", "sha256sum"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&payload).map(|_| payload));
    let out = child.wait_with_output().unwrap();
    let payload = writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().next(), Some(hex(&Sha256::digest(&payload)).as_str()));

    // `tar c . | workstation ssh dev -- tar x -C DIR` works as with ssh.
    let src = env.root.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/file.txt"), "from the laptop").unwrap();
    let dest = env.root.path().join("unpacked");
    let mut tar = std::process::Command::new("tar").arg("c").arg("-C").arg(&src).arg(".").stdout(Stdio::piped()).spawn().unwrap();
    let out = env
        .cmd(&["ssh", "dev", "--", "mkdir", "-p", dest.to_str().unwrap(), "&&", "tar", "x", "-C", dest.to_str().unwrap()])
        .stdin(tar.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tar.wait().unwrap().success());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(dest.join("sub/file.txt")).unwrap(), "from the laptop");

    // stderr is stderr; the status is the command's.
    let out = env.run(&["ssh", "dev", "--", "echo out; echo err >&2; exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!((String::from_utf8_lossy(&out.stdout).as_ref(), String::from_utf8_lossy(&out.stderr).trim()), ("out\n", "err"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Each AWS configuration mistake is one `error:` line naming the cause and
/// its fix (no SDK dump), exit 1; the raw chain is there with -v.
#[test]
fn aws_failures_are_one_line_with_their_fix() {
    let env = TestEnv::aws_api_only();
    let closed = format!("http://127.0.0.1:{}", free_port());
    // (what, variables set, variables removed, what the error says)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str], &'a str);
    let cases: [Case; 4] = [
        ("no credentials", vec![("AWS_ENDPOINT_URL", closed.as_str())], &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "aws configure"),
        ("an unknown profile", vec![("AWS_PROFILE", "nope")], &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "\"nope\" is not in ~/.aws/config"),
        ("no region", vec![], &["AWS_REGION"], "[aws] region"),
        ("an unreachable endpoint", vec![("AWS_ENDPOINT_URL", closed.as_str())], &[], "check AWS_ENDPOINT_URL"),
    ];
    // The settings name no region, so the environment's is the only one.
    env.write_settings("owner = \"tester\"\nprovider = \"aws\"\n");
    for (what, set, unset, fix) in cases {
        let mut cmd = env.cmd(&["list"]);
        cmd.envs(set.iter().copied());
        for k in unset {
            cmd.env_remove(k);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.starts_with("error: DescribeInstances: ") && err.contains(fix), "{what}: {err}");
        assert!(!err.contains("DispatchFailure"), "{what}: {err}");
    }
    // -v keeps the SDK's own chain for whoever debugs it.
    let out = env.cmd(&["-v", "list"]).env("AWS_ENDPOINT_URL", &closed).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("DispatchFailure"));
    // -o json: the failure is also an object on stdout, with a stable kind.
    let out = env.cmd(&["list", "-o", "json"]).env("AWS_ENDPOINT_URL", &closed).output().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(body["error"]["kind"], "aws-unreachable", "{body}");
    assert_eq!(body["error"]["exit_code"], 1);
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\x1b'), "no escape codes when stderr is not a terminal");

    // doctor: the failed check carries the actual fix; what it could not
    // check is skipped, not failed.
    let out = env.cmd(&["doctor", "-o", "json"]).env("AWS_ENDPOINT_URL", &closed).output().unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |name: &str| checks.as_array().unwrap().iter().find(|c| c["check"] == name).cloned().unwrap();
    assert_eq!(check("credentials")["outcome"], "fail", "{checks}");
    assert!(check("credentials")["fix"].as_str().unwrap().contains("AWS_ENDPOINT_URL"), "{checks}");
    assert_eq!(check("box")["outcome"], "skip", "{checks}");
}

#[test]
fn one_way_to_name_a_box() {
    let env = TestEnv::local();
    env.ok(&["create", "dev2"]);
    assert_eq!(env.json(&["status", "dev2"])["name"], "dev2");
    // The old flag still works, hidden; a name given twice is refused.
    assert_eq!(env.json(&["status", "--name", "dev2"])["name"], "dev2");
    let out = env.run(&["status", "dev2", "--name", "other"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    // Where the positional is something else, --box names the box.
    let services = env.json(&["services", "api", "--box", "dev2"]);
    assert_eq!(services[0]["name"], "api", "{services}");
    // Internal verbs stay out of the main help; verbs teach by example.
    let help = env.ok(&["--help"]);
    assert!(!help.lines().any(|l| l.trim_start().starts_with("box ")), "{help}");
    assert!(help.contains("port-forward") && help.contains("code"), "{help}");
    for verb in ["create", "ssh", "stop", "logs", "seed", "port-forward"] {
        let text = env.ok(&[verb, "--help"]);
        assert!(text.contains("Examples:\n  workstation "), "{verb} --help has examples, one per line:\n{text}");
    }
    env.ok(&["destroy", "dev2", "--yes"]);
}

/// A missing seed is found before any box is launched (and billed).
#[test]
fn create_checks_seeds_before_launching() {
    let env = TestEnv::aws_api_only();
    let text = manifest_text("image_id = \"ami-12c6146b\"", "") + "\n[stores.cache]\nkind = \"redis\"\nseed = \"seeds/missing.rdb\"\n";
    env.write_manifest(&text);
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("seeds/missing.rdb"), "{err}");
    std::fs::create_dir_all(env.root.path().join("seeds")).unwrap();
    std::fs::write(env.root.path().join("seeds/missing.rdb"), "<html>not a dump</html>").unwrap();
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("stores.cache.seed") && err.contains("REDIS"), "{err}");
    // A seed outside the manifest's directory needs --allow-outside.
    env.write_manifest(&text.replace("seeds/missing.rdb", "/etc/dump.rdb"));
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("outside the manifest's directory") && err.contains("--allow-outside"), "{err}");
    let client = env.moto.as_ref().unwrap().client();
    let launched = block_on(client.describe_instances().send()).unwrap();
    assert_eq!(launched.reservations().len(), 0, "nothing was launched");
}

/// Wake on connect: the verbs that connect start a stopped box (progress on
/// stderr) and its stack comes back with it; plain OpenSSH through the
/// generated config does the same; two wakes at once boot it once; a
/// destroyed box is an error naming `create`.
#[test]
fn connecting_to_a_stopped_box_starts_it() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);
    env.ok(&["stop", "dev"]);
    let out = env.run(&["ssh", "dev", "--", "hostname"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dev\n");
    assert!(stderr.contains("box dev is stopped: starting it"), "{stderr}");
    // supervisord came back at boot, with the service.
    wait_until(Duration::from_secs(20), || env.run(&["services", "--box", "dev"]).status.success(), || env.fails(&["services", "--box", "dev"]));

    // `services` reports the woken stack (starting, not missing); `up`
    // brings it to healthy.
    env.ok(&["stop", "dev"]);
    let out = env.run(&["services", "--box", "dev"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("api") && (table.contains("STARTING") || table.contains("RUNNING")), "{table}{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&["stop", "dev"]);
    env.ok(&["up", "dev"]);

    // Plain ssh through the generated config: its ProxyCommand wakes it.
    env.ok(&["stop", "dev"]);
    let config = env.state_dir().join("ssh_config");
    let plain = || {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args(["-o", "BatchMode=yes", "ws-dev", "hostname"])
            .env_clear()
            .env("HOME", &env.home)
            .env("PATH", std::env::var("PATH").unwrap())
            .env("WORKSTATION_MANIFEST", &env.manifest)
            .output()
            .unwrap()
    };
    let out = plain();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "dev\n");
    assert_eq!(env.json(&["status", "dev"])["state"], "running");

    // Two wakes at once: one boot, both answered (a second boot would have
    // halted the first one's sshd and session).
    env.ok(&["stop", "dev"]);
    let both: Vec<_> =
        (0..2).map(|_| env.cmd(&["ssh", "dev", "--", "sleep 1; hostname"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    let outs: Vec<_> = both.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "dev\n");
    }
    let boots = outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).matches("booting local box").count()).sum::<usize>();
    assert_eq!(boots, 1, "{:?}", outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect::<Vec<_>>());

    // Destroyed: the error says how to make it again.
    env.ok(&["destroy", "dev", "--yes"]);
    let err = env.fails(&["ssh", "dev", "--", "true"]);
    assert!(err.contains("workstation create dev"), "{err}");
    // A broken manifest does not stop the verbs that need none of it.
    env.write_manifest("this is not toml [");
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 0);
}

/// A local box runs its own idle check inside the box, every
/// `local.idle_check_every`, without anyone scheduling it: an idle box
/// stops itself once the timeout has passed, and the check goes away with
/// the box and comes back when it is woken.
#[test]
fn a_local_box_stops_itself_when_idle() {
    let env = TestEnv::local();
    let settings = std::fs::read_to_string(env.home.join(".config/workstation/config.toml")).unwrap();
    env.write_settings(&format!("{settings}idle_check_every = \"1s\"\n"));
    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    env.write_manifest(&format!("{manifest}\n[idle]\ntimeout = \"1m\"\nwarning = \"10s\"\n"));
    env.ok(&["create", "dev"]);
    let ns = namespace_inode(&env);
    assert!(processes_in(ns).iter().any(|p| p.contains("box idle-check") || p.contains("while sleep")), "{:?}", processes_in(ns));
    wait_until(Duration::from_secs(120), || env.json(&["status", "dev"])["state"] == "stopped", || format!("{}", env.json(&["status", "dev"])));
    let status = env.json(&["status", "dev"]);
    assert!(status["stopped_by"].as_str().is_some_and(|r| r.contains("idle")), "{status}");
    // The check that stopped the box ends last (the stop spares it).
    wait_until(Duration::from_secs(20), || processes_in(ns).is_empty(), || format!("nothing of the box outlives it: {:?}", processes_in(ns)));
    // Woken, it counts as active from its start again.
    env.ok(&["ssh", "dev", "--", "true"]);
    let status = env.json(&["status", "dev"]);
    assert_eq!(status["state"], "running", "{status}");
    assert!(processes_in(namespace_inode(&env)).iter().any(|p| p.contains("while sleep")));
}

/// A port only the box's loopback listens on, reached from here.
#[test]
fn port_forward_reaches_a_loopback_only_port_on_the_box() {
    let env = TestEnv::local();
    let text =
        std::fs::read_to_string(&env.manifest).unwrap() + "\n[services.internal]\ncommand = \"python3 -m http.server 8090 --bind 127.0.0.1\"\nports = [8090]\n";
    env.write_manifest(&text);
    let created = env.json(&["create", "dev"]);
    let ip = created["box"]["address"].as_str().unwrap().to_string();
    assert!(std::net::TcpStream::connect((ip.as_str(), 8090)).is_err(), "8090 is not reachable from outside the box");

    let local = free_port();
    let mut forward = env.cmd(&["port-forward", "dev", &format!("{local}:8090")]).stderr(Stdio::piped()).spawn().unwrap();
    let page = std::cell::RefCell::new(String::new());
    wait_until(
        Duration::from_secs(20),
        || {
            let mut page = page.borrow_mut();
            page.clear();
            std::net::TcpStream::connect(("127.0.0.1", local))
                .and_then(|mut s| {
                    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                    s.read_to_string(&mut page)
                })
                .is_ok()
                && page.starts_with("HTTP/1.0 200")
        },
        || format!("no answer through the forward: {:?}", page.borrow()),
    );
    let _ = forward.kill();
    let _ = forward.wait();
}

/// `code` runs VS Code's command with the box's Remote-SSH host, after the
/// Include line that lets VS Code find it.
#[test]
fn code_opens_vs_code_on_the_box() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);
    let bin = env.root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.root.path().join("code-args");
    std::fs::write(bin.join("code"), format!("#!/bin/sh\necho \"$@\" > {}\n", record.display())).unwrap();
    std::fs::set_permissions(bin.join("code"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = env.cmd(&["code", "dev", "/srv/app"]).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), "--remote ssh-remote+ws-dev /srv/app");
    assert!(std::fs::read_to_string(env.home.join(".ssh/config")).unwrap().contains("Include"));
    // Without VS Code: what to install.
    let out = env.cmd(&["code", "dev"]).env("PATH", "/usr/bin:/bin").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Install 'code' command in PATH"));
}

/// The command lines of the processes in the network namespace with inode
/// `ns_inode` (every process of a
/// local box lives in its namespace), found through /proc.
fn processes_in(ns_inode: u64) -> Vec<String> {
    let want = format!("net:[{ns_inode}]");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| std::fs::read_link(e.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == want))
        .map(|e| std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default().replace('\0', " "))
        .collect()
}

fn namespace_inode(env: &TestEnv) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let id = env.json(&["status", "dev"])["id"].as_str().unwrap().to_string();
    std::fs::metadata(format!("/run/netns/ws-{}", id.trim_start_matches("lb-"))).unwrap().ino()
}

/// After `stop` and after `destroy`, nothing of the box runs anywhere: no
/// service, supervisord or sshd survives in its (deleted) namespace.
#[test]
fn a_local_box_ends_with_all_its_processes() {
    let env = TestEnv::local();
    env.ok(&["create", "dev"]);
    let ns = namespace_inode(&env);
    assert!(processes_in(ns).iter().any(|p| p.contains("http.server")), "the service runs in the box: {:?}", processes_in(ns));
    env.ok(&["stop", "dev"]);
    assert_eq!(processes_in(ns), Vec::<String>::new(), "after stop");
    env.ok(&["start", "dev"]);
    let ns = namespace_inode(&env);
    assert!(!processes_in(ns).is_empty());
    env.ok(&["destroy", "dev", "--yes"]);
    assert_eq!(processes_in(ns), Vec::<String>::new(), "after destroy");
}

/// A HOME (and so the box's directory) below a directory everyone may
/// write, as a checkout under /tmp: the box's sshd still takes the key.
#[test]
fn a_local_box_works_with_home_under_a_world_writable_directory() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = TestEnv::local();
    let shared = env.root.path().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let home = shared.join("home");
    workstation_tests::run_ok(std::process::Command::new("cp").arg("-a").arg(&env.home).arg(&home));
    env.home = home;
    env.ok(&["create", "dev"]);
    assert_eq!(env.ok(&["ssh", "dev", "--", "hostname"]).trim(), "dev");

    // When sshd does refuse the key, its own reason is in the error.
    let id = env.json(&["status", "dev"])["id"].as_str().unwrap().to_string();
    let keys = format!("/run/workstation-local/ws-{}/authorized_keys", id.trim_start_matches("lb-"));
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = env.fails(&["ssh", "dev", "--", "true"]);
    assert!(err.contains("the box's sshd says: Authentication refused: bad ownership or modes"), "{err}");
    env.ok(&["destroy", "dev", "--yes"]);
}
