//! Secrets: a service's `secrets` reach its environment and nowhere else.
//! On a local box from the laptop (its 0600 file and a command, handed over
//! SSH stdin); on a box in moto from Systems Manager and Secrets Manager,
//! read by the box itself with its instance role (credentials from the
//! metadata server). Each checks that no value is in the box root, the
//! supervisord configuration, `services -o json`, `logs`, `-o json` or any
//! process's arguments, that `restart` reads a rotated value, and that a
//! missing one stops its program's start with a message naming the
//! reference, not a value.

use std::process::{Command, Stdio};

use workstation_tests::{manifest_text, moto::block_on, run_ok, TestEnv};

const TOKEN: &str = "tok-SEKRIT-4711";
const ROTATED: &str = "tok-SEKRIT-ROTATED-9";
const SHARED: &str = "sk-SEKRIT-0815";
const PLAID: &str = "plaid-SEKRIT-42";

fn set_secret(env: &TestEnv, name: &str, value: &str) {
    let mut cmd = env.cmd(&["secrets", "set", name]);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), value.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "secrets set {name}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(value));
}

/// `VAR=value` lines of the running program's environment.
fn program_env(env: &TestEnv, program: &str) -> String {
    let script = format!("tr '\\0' '\\n' < /proc/$(supervisorctl -c \"$WORKSTATION_BOX_ROOT/supervisor/current/supervisord.conf\" pid {program})/environ");
    env.ok(&["ssh", "dev", "--", &script])
}

/// Nothing the engineer or the box shows holds any of `values`.
fn assert_nowhere(env: &TestEnv, root: Option<&std::path::Path>, values: &[&str], also: &[String]) {
    let mut shown = also.to_vec();
    // Exits 1 while a program is down (the one missing a secret).
    let services = env.run(&["services", "-o", "json"]);
    shown.push(String::from_utf8_lossy(&services.stdout).into_owned() + &String::from_utf8_lossy(&services.stderr));
    shown.push(env.ok(&["logs", "api"]));
    shown.push(env.ok(&["render", "supervisord"]));
    // Every process on this machine (local boxes and moto's share it).
    shown.push(run_ok(Command::new("ps").args(["-eww", "-o", "args="])));
    for value in values {
        for text in &shown {
            assert!(!text.contains(value), "{value} shown:\n{text}");
        }
    }
    // The values go to grep on its stdin, never in its argv: another test's
    // `ps` above would see them there (as the secrets' own code must not).
    let patterns = values.join("\n");
    if let Some(root) = root {
        let mut grep = Command::new("grep");
        grep.args(["-r", "-l", "-F", "-f", "-"]).arg(root);
        let found = with_stdin(&mut grep, &patterns);
        assert!(found.is_empty(), "values written under the box root: {found}");
    }
    // And on the box, its whole root, the running configuration included.
    let found = with_stdin(&mut env.cmd(&["ssh", "dev", "--", "grep -r -l -F -f - \"$WORKSTATION_BOX_ROOT\""]), &patterns);
    assert!(found.is_empty(), "values in files on the box: {found}");
}

/// `command`'s stdout, given `input` on its stdin.
fn with_stdin(command: &mut Command, input: &str) -> String {
    use std::io::Write;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
}

/// A rotated value (`secrets set` again) takes effect at restart.
fn rotates_at_restart(env: &TestEnv) {
    set_secret(env, "token", ROTATED);
    env.ok(&["restart", "api"]);
    assert!(program_env(env, "api").contains(&format!("TOKEN={ROTATED}\n")));
}

/// A service whose secret nobody has: it does not start, and its log (returned) says which.
fn worker_missing_a_secret(env: &TestEnv) -> String {
    let text = std::fs::read_to_string(&env.manifest).unwrap();
    env.write_manifest(&format!("{text}\n[services.worker]\ncommand = \"sleep 600\"\nsecrets = {{ GONE = \"ssm:/workstation/shared/nope\" }}\n"));
    let _ = env.run(&["up", "--health-timeout", "5s"]);
    env.ok(&["logs", "worker"])
}

fn with_secrets(base: &str, extra: &str) -> String {
    format!("{base}secrets = {{ TOKEN = \"ssm:/workstation/{{owner}}/token\", SHARED = \"ssm:/workstation/shared/stripe\"{extra} }}\n")
}

#[test]
fn local_secrets_come_from_the_laptop_and_land_only_in_the_programs_environment() {
    let env = TestEnv::local();
    // The shared value from a command (as `pass show` would print it), the
    // engineer's own from `secrets set` (the 0600 file).
    let vault = env.root.path().join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    std::fs::write(vault.join("stripe"), format!("{SHARED}\n")).unwrap();
    let settings = std::fs::read_to_string(env.home.join(".config/workstation/config.toml")).unwrap();
    env.write_settings(&format!(
        "{settings}[secrets]\ncommand = '[ \"$WORKSTATION_SECRET\" = ssm:/workstation/shared/stripe ] && cat {}/stripe'\n",
        vault.display()
    ));
    set_secret(&env, "token", TOKEN);
    assert_eq!(env.ok(&["secrets", "list"]), "token\n");
    env.write_manifest(&with_secrets(&manifest_text("image_id = \"ami-0123456789abcdef0\"", ""), ""));

    let created = env.ok(&["create", "dev", "-o", "json"]);
    let vars = program_env(&env, "api");
    assert!(vars.contains(&format!("TOKEN={TOKEN}\n")) && vars.contains(&format!("SHARED={SHARED}\n")), "{vars}");
    let list = env.ok(&["secrets", "list", "-o", "json"]);
    assert_nowhere(&env, Some(&env.box_root("dev")), &[TOKEN, SHARED], &[created, list]);

    rotates_at_restart(&env);
    let log = worker_missing_a_secret(&env);
    assert!(log.contains("cannot start: secret GONE (ssm:/workstation/shared/nope)") && log.contains("[secrets] command failed"), "{log}");
    assert_nowhere(&env, Some(&env.box_root("dev")), &[ROTATED, SHARED], &[log]);
}

#[test]
fn aws_boxes_read_their_own_secrets_with_their_role() {
    let env = TestEnv::aws();
    let moto = env.moto.as_ref().unwrap();
    let ssm = moto.ssm_client();
    let put = ssm.put_parameter().name("/workstation/shared/stripe").value(SHARED).r#type(aws_sdk_ssm::types::ParameterType::SecureString);
    block_on(put.send()).unwrap();
    block_on(moto.secretsmanager_client().create_secret().name("workstation/shared/plaid").secret_string(PLAID).send()).unwrap();
    // The engineer's own value, written by the CLI into her path.
    set_secret(&env, "token", TOKEN);
    assert_eq!(env.ok(&["secrets", "list"]), "token\n");
    let stored = block_on(ssm.get_parameter().name("/workstation/tester/token").send()).unwrap();
    assert_eq!(stored.parameter().unwrap().r#type(), Some(&aws_sdk_ssm::types::ParameterType::SecureString));

    let text = std::fs::read_to_string(&env.manifest).unwrap();
    env.write_manifest(&with_secrets(&text, ", PLAID = \"secretsmanager:workstation/shared/plaid\""));
    let created = env.ok(&["create", "dev", "-o", "json"]);
    env.fleet.as_ref().unwrap().assert_healthy();
    let vars = program_env(&env, "api");
    for (var, value) in [("TOKEN", TOKEN), ("SHARED", SHARED), ("PLAID", PLAID)] {
        assert!(vars.contains(&format!("{var}={value}\n")), "{var}: {vars}");
    }
    assert_nowhere(&env, None, &[TOKEN, SHARED, PLAID], &[created]);

    rotates_at_restart(&env);
    let log = worker_missing_a_secret(&env);
    assert!(log.contains("cannot start: secret GONE (ssm:/workstation/shared/nope): it does not exist"), "{log}");

    assert!(env.ok(&["secrets", "rm", "token"]).contains("removed token"));
    assert_eq!(env.ok(&["secrets", "list"]).trim(), "no values of yours in Systems Manager, /workstation/tester/; add one with `workstation secrets set NAME`");
}
