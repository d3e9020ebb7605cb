//! Issue 29: every example in `--help` (each verb's, found by walking the
//! command tree) and in the README runs as written against the demo's box
//! (examples/local: box dev, services app and api, stores cache and main),
//! or is listed below with the reason a test cannot run it and where it is
//! tested instead.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use workstation_tests::hostsagent::HostsDaemon;
use workstation_tests::mountns::MountNs;
use workstation_tests::{binary, repo_root, TestEnv};

/// Examples a test cannot run as written, by prefix, and why.
const ELSEWHERE: [(&str, &str); 24] = [
    ("workstation cost", "needs EC2, Cost Explorer and the Price List API: tests/tests/cost.rs (moto and the shim)"),
    ("workstation init", "sets up a laptop (interactive, or against AWS): tests/tests/setup.rs"),
    ("workstation image", "needs Nix >= 2.18 and an AWS account: tests/tests/image.rs"),
    ("workstation manifest publish", "needs the platform's S3 bucket: tests/tests/admin.rs (moto)"),
    ("workstation admin", "needs every owner's EC2 instances: tests/tests/admin.rs (moto)"),
    ("workstation preview", "runs in CI on a git checkout: tests/tests/preview.rs"),
    ("workstation share --preview", "needs a preview box: tests/tests/preview.rs"),
    ("workstation share alice", "needs a colleague's box: tests/tests/hosts.rs"),
    ("workstation code", "needs VS Code's `code` command"),
    ("workstation intercept api --box", "runs a Go debugger on the laptop: tests/tests/intercept.rs"),
    ("workstation intercept web", "the demo has no service web: tests/tests/intercept.rs"),
    ("workstation intercept api -- cargo", "runs the laptop's cargo build of api: tests/tests/intercept.rs"),
    ("workstation intercept api --header x-dev=alice", "runs the laptop's cargo build of api: tests/tests/team.rs"),
    ("workstation intercept api --mirror", "runs the laptop's cargo build of api: tests/tests/team.rs"),
    ("workstation box front", "supervisord's ws-front runs it on the box (it becomes nginx): tests/tests/team.rs"),
    ("workstation box route", "an intercept runs it on the box over SSH, speaking a line protocol: tests/tests/team.rs"),
    ("workstation env", "CI deploys a team box from a git checkout: tests/tests/team_env.rs"),
    ("workstation ssh --env", "needs a team box and another owner's key: tests/tests/team_env.rs"),
    ("workstation share --env", "needs a team box: tests/tests/team_env.rs"),
    ("workstation intercept api --env", "needs a team box; runs the laptop's cargo build of api: tests/tests/team_env.rs"),
    ("workstation box authorized-keys", "sshd runs it for each key a login offers: tests/tests/team_env.rs"),
    ("workstation webhooks deliver", "needs a function URL event and previews to send it to: tests/tests/webhooks.rs"),
    ("workstation box queues", "a local box's sqs store runs it beside its SQS server: tests/tests/sqs.rs"),
    ("workstation ssh-config && ssh ws-dev", "OpenSSH reads the passwd entry's ~/.ssh/config, not $HOME's: tests/tests/e2e.rs runs `ssh -F`"),
];

/// Asks for the box name at a terminal; without one it refuses, as
/// tests/tests/e2e.rs checks.
const NEEDS_A_TERMINAL: [&str; 2] = ["workstation destroy dev", "workstation destroy dev --purge"];

/// Examples that run until Ctrl-C: started, still running after a while,
/// then interrupted.
fn runs_until_interrupted(example: &str) -> bool {
    example.contains(" -f") || example.starts_with("workstation port-forward") || example == "workstation sync" || example.starts_with("workstation intercept")
}

/// The exit status an example documents (its own `exit N`), else 0.
fn expected_status(example: &str) -> i32 {
    example.split("exit ").nth(1).and_then(|rest| rest.trim_end_matches('\'').trim().parse().ok()).unwrap_or(0)
}

/// The command of an example line: up to its comment (two or more
/// spaces, or ` #`).
fn command_of(line: &str) -> String {
    let line = line.trim();
    let line = line.split("  ").next().unwrap_or(line);
    line.split(" # ").next().unwrap_or(line).trim().to_owned()
}

/// Example lines of every verb's long help (the `Examples:` sections).
fn help_examples() -> Vec<String> {
    fn walk(cmd: &mut clap::Command, out: &mut Vec<String>) {
        let help = cmd.render_long_help().to_string();
        let mut in_examples = false;
        for line in help.lines() {
            if line.starts_with("Examples") {
                in_examples = true;
            } else if !line.starts_with(' ') && !line.is_empty() {
                in_examples = false;
            } else if in_examples && line.contains("workstation ") {
                out.push(command_of(line));
            }
        }
        for sub in cmd.get_subcommands_mut() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                walk(sub, out);
            }
        }
    }
    let mut out = Vec::new();
    let mut cli = workstation::cli::Cli::command();
    cli.build();
    walk(&mut cli, &mut out);
    out
}

/// `workstation ...` lines of the README's sh blocks.
fn readme_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut in_sh = false;
    let mut out = Vec::new();
    for line in readme.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && l.starts_with("workstation ") => out.push(command_of(l)),
            _ => {}
        }
    }
    out
}

/// `sh -c EXAMPLE` in the scratch directory, with this env's variables and
/// the binary first on PATH, as a user's shell would run it. `doctor` runs
/// inside the hosts agent's mount namespace, where the laptop's /etc/hosts
/// is (it checks the names resolve); every other example outside it, where
/// the boxes' network namespaces are made and removed.
fn shell(ns: &MountNs, env: &TestEnv, dir: &Path, example: &str) -> Command {
    let mut sh = if example.starts_with("workstation doctor") { ns.cmd("sh") } else { Command::new("sh") };
    // Entering a mount namespace moves to its root: `cd` first.
    sh.env_clear().arg("-c").arg(format!("cd \"$0\" && {example}")).arg(dir).stdin(Stdio::null());
    for (k, v) in env.cmd(&[]).get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let bin_dir = binary().parent().unwrap().display().to_string();
    sh.env("PATH", format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()));
    sh
}

fn run_until_interrupted(ns: &MountNs, env: &TestEnv, dir: &Path, example: &str) {
    let mut child = shell(ns, env, dir, &format!("exec {example}")).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("`{example}` ended ({status}) before it was interrupted: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ctrl-C, as the user ends it.
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn r29_every_example_in_help_and_readme_runs_on_the_demo_box() {
    let mut env = TestEnv::local();
    // The demo's manifest and seeds, as scripts/demo-local.sh uses them.
    let demo = env.root.path().join("demo");
    let status = Command::new("cp").arg("-a").arg(repo_root().join("examples/local")).arg(&demo).status().unwrap();
    assert!(status.success());
    env.manifest = demo.join("workstation.toml");
    let ns = MountNs::start();
    let _agent = HostsDaemon::start(&ns, &env.root.path().join("agent"), &env.hosts_socket(), &["app.demo.test", "api.demo.test"], "");
    // What the examples take from the directory they run in.
    let dir = env.root.path().join("work");
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    std::fs::write(dir.join("notes.txt"), "notes\n").unwrap();
    std::fs::write(dir.join("README.md"), "readme\n").unwrap();
    std::fs::write(dir.join("fixtures/a.json"), "{}\n").unwrap();
    env.ok(&["create", "dev"]);
    env.ok(&["create", "api-test"]);

    let mut examples: Vec<String> = help_examples();
    examples.extend(readme_examples());
    assert!(examples.len() > 60, "examples found: {examples:?}");
    // Destroying comes last: the other examples need the boxes.
    let (last, first): (Vec<String>, Vec<String>) = examples.into_iter().partition(|e| e.starts_with("workstation destroy") || e.starts_with("workstation rm"));
    let mut ran = 0;
    for example in first.iter().chain(&last) {
        if ELSEWHERE.iter().any(|(prefix, _)| example.starts_with(prefix)) || NEEDS_A_TERMINAL.contains(&example.as_str()) {
            continue;
        }
        eprintln!("example: {example}");
        // The examples assume the demo's boxes run (an earlier one stopped
        // them); `ssh` and the like would wake them, `doctor` reports.
        for b in env.json(&["list"]).as_array().unwrap() {
            if b["state"] == "stopped" && !example.starts_with("workstation start") {
                env.ok(&["start", b["name"].as_str().unwrap()]);
            }
        }
        if runs_until_interrupted(example) {
            run_until_interrupted(&ns, &env, &dir, example);
        } else {
            let out = shell(&ns, &env, &dir, example).output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(expected_status(example)),
                "`{example}` did not run as written:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ran += 1;
    }
    assert!(ran > 50, "only {ran} examples ran");
}

/// Each verb's help shows its own arguments first; the options every verb
/// takes follow, once, under their own heading.
#[test]
fn r29_a_verbs_own_arguments_come_before_the_global_options() {
    fn walk(cmd: &mut clap::Command, path: &str) {
        let help = cmd.render_long_help().to_string();
        if let Some(global) = help.find("Global options:") {
            assert_eq!(help.matches("Global options:").count(), 1, "{path}");
            for own in ["Arguments:", "Options:"] {
                if let Some(at) = help.find(own) {
                    assert!(at < global, "{path}: {own} after the global options");
                }
            }
        }
        for sub in cmd.get_subcommands_mut() {
            let name = format!("{path} {}", sub.get_name());
            walk(sub, &name);
        }
    }
    // Built: global options are propagated to the verbs then.
    let mut cli = workstation::cli::Cli::command();
    cli.build();
    walk(&mut cli, "workstation");
    let up = cli.find_subcommand_mut("preview").unwrap().find_subcommand_mut("up").unwrap();
    let help = up.render_long_help().to_string();
    assert!(help.find("--pr <N>").unwrap() < help.find("Global options:").unwrap(), "{help}");
}
