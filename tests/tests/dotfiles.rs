//! Dotfiles on `create` (local boxes, real sshd): a repository's install
//! script runs once, a directory without one is linked into home, and a
//! failing script is reported without failing `create`.

use std::path::Path;
use std::process::Command;

use workstation_tests::{run_ok, TestEnv};

fn write(path: &Path, text: &str, executable: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn create(env: &TestEnv, name: &str, dotfiles: &str) -> serde_json::Value {
    let out = env.cmd(&["create", name, "-o", "json"]).env("WORKSTATION_DOTFILES", dotfiles).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dotfiles_install_once_link_without_a_script_and_report_a_failure() {
    let env = TestEnv::local();
    // A git repository (cloned on the laptop) with an install script.
    let repo = env.root.path().join("dotfiles");
    write(&repo.join("install.sh"), "#!/bin/sh\necho ran >> \"$HOME/installed.log\"\n", true);
    write(&repo.join(".vimrc"), "set number\n", false);
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "dots"]] {
        run_ok(Command::new("git").arg("-C").arg(&repo).args(args));
    }
    let url = format!("file://{}", repo.display());
    let first = create(&env, "dev", &url);
    let dots = &first["dotfiles"];
    assert_eq!((dots["how"].as_str(), dots["script"].as_str(), dots["ok"].as_bool()), (Some("script"), Some("install.sh"), Some(true)), "{first:#}");
    let installed = || env.ok(&["ssh", "dev", "--", "cat \"$HOME/installed.log\""]);
    assert_eq!(installed(), "ran\n");
    // The same dotfiles again: not installed twice.
    let again = create(&env, "dev", &url);
    assert_eq!(again["dotfiles"]["how"], "unchanged", "{again:#}");
    assert_eq!(installed(), "ran\n");

    // A directory without a script: its dotfiles are linked into home.
    let plain = env.root.path().join("plain");
    write(&plain.join(".bashrc"), "alias ll='ls -l'\n", false);
    let linked = create(&env, "dev", plain.to_str().unwrap());
    assert_eq!(linked["dotfiles"]["linked"], serde_json::json!([".bashrc"]), "{linked:#}");
    let target = env.ok(&["ssh", "dev", "--", "readlink \"$HOME/.bashrc\""]);
    assert!(target.trim().ends_with(".dotfiles/.bashrc"), "{target}");

    // A failing script is reported, and create still succeeds.
    let failing = env.root.path().join("failing");
    write(&failing.join("setup.sh"), "echo 'no such tool' >&2\nexit 3\n", false);
    let failed = create(&env, "dev", failing.to_str().unwrap());
    let dots = &failed["dotfiles"];
    assert_eq!(dots["ok"], false, "{failed:#}");
    assert!(dots["failure"].as_str().unwrap().contains("setup.sh exited 3: no such tool"), "{failed:#}");
    // A source that is not there: reported too.
    let missing = create(&env, "dev", "/nonexistent/dots");
    assert!(missing["dotfiles"]["failure"].as_str().unwrap().contains("is not a directory"), "{missing:#}");
}
