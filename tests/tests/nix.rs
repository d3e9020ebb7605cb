//! The Nix side, with Debian's Nix 2.8: it parses every .nix file but cannot
//! evaluate current nixpkgs, so what the image derives from the manifest
//! lives in images/lib.nix (no nixpkgs) and is evaluated here and compared
//! with the Rust side. `nix flake check` (Nix >= 2.18) covers the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use workstation::manifest::Manifest;
use workstation::stack::layout::{Layout, StoreRunner, DEFAULT_ROOT};
use workstation::stack::stores;
use workstation_tests::{binary, repo_root, run_ok};

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() && !name.starts_with('.') && name != "target" {
            nix_files(&path, out);
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repo_root(), &mut files);
    assert!(files.len() >= 4, "flake.nix and images/*.nix: {files:?}");
    for f in &files {
        let out = Command::new("nix-instantiate").arg("--parse").arg(f).output().expect("nix-instantiate (Debian's nix-bin)");
        assert!(out.status.success(), "{} does not parse:\n{}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

/// images/lib.nix's view of `manifest`.
fn facts(manifest: &Path) -> serde_json::Value {
    let expr = format!(
        "let l = import {lib}; m = l.readManifest {manifest}; in {{ inherit (l) root programPath renderArgs storeRunner; \
         kinds = l.storeKinds m; ports = l.servicePorts m; fronted = l.fronted m; diskMB = l.diskSizeMB m; units = l.storeUnits m; \
         storePorts = builtins.mapAttrs (n: s: l.storePort s) (m.stores or {{}}); \
         databases = builtins.mapAttrs l.database (m.stores or {{}}); }}",
        lib = repo_root().join("images/lib.nix").display(),
        manifest = manifest.display(),
    );
    let out = run_ok(Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expr]));
    serde_json::from_str(&out).unwrap()
}

fn files_under(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            out.insert(path.strip_prefix(base).unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn the_image_renders_what_workstation_up_renders_on_it() {
    let manifests = ["examples/workstation.toml", "examples/local/workstation.toml", "provisioner/tests/golden/supervisord/workstation.toml"];
    for rel in manifests {
        let path = repo_root().join(rel);
        let facts = facts(&path);
        let manifest = Manifest::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();

        // The image's build step: `workstation <renderArgs> --out DIR`.
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = facts["renderArgs"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        run_ok(Command::new(binary()).arg("--manifest").arg(&path).args(&args).arg("--out").arg(dir.path()));
        let mut built = BTreeMap::new();
        files_under(dir.path(), dir.path(), &mut built);

        // `up` on that box: the default root, the PATH and store runner
        // from the files the image writes (stack/shell.rs reads them).
        assert_eq!(facts["root"], DEFAULT_ROOT, "{rel}");
        assert_eq!(facts["storeRunner"], "systemd");
        let layout = Layout::new(DEFAULT_ROOT, Some(facts["programPath"].as_str().unwrap().into())).unwrap().with_stores(StoreRunner::Systemd);
        // Before the box's queues are known (an sqs store's URLs are the
        // box's): `up` then adds them.
        let up = workstation::stack::supervisor::render(&manifest, &layout, &BTreeMap::new());
        assert_eq!(built, up.files, "{rel}: the image's configuration differs from what `up` renders");

        let mut ports = manifest.service_ports();
        ports.sort();
        assert_eq!(facts["ports"], serde_json::json!(ports), "{rel}");
        assert_eq!(facts["fronted"], manifest.services.values().any(|s| s.front.is_some()), "{rel}");
        let mut kinds: Vec<&str> = manifest.stores.values().map(|s| s.kind.as_str()).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(facts["kinds"], serde_json::json!(kinds), "{rel}");
        assert_eq!(facts["diskMB"], manifest.machine.disk_gib * 1024, "{rel}");

        // Each store under nixpkgs' module: the unit workstation controls
        // and reads, its port, its database.
        let on_box = Layout::new(DEFAULT_ROOT, None).unwrap().with_stores(StoreRunner::Systemd);
        for (name, store) in &manifest.stores {
            match stores::runner(store, &on_box) {
                Some(_) => assert_eq!(facts["units"][name], stores::system_unit(name, store.kind), "{rel}: {name}"),
                None => assert!(facts["units"].get(name).is_none(), "{rel}: {name} has no server on the box"),
            }
            assert_eq!(facts["storePorts"][name], store.port(), "{rel}: {name}");
            assert_eq!(facts["databases"][name], store.database(name), "{rel}: {name}");
        }
    }
}

#[test]
fn the_image_writes_its_layout_where_workstation_reads_it() {
    let module = std::fs::read_to_string(repo_root().join("images/workstation.nix")).unwrap();
    for (file, value) in [(workstation::stack::shell::PROGRAM_PATH_FILE, "programPath"), (workstation::stack::shell::STORES_FILE, "storeRunner")] {
        let etc = file.strip_prefix("/etc/").unwrap();
        assert!(module.contains(&format!("environment.etc.\"{etc}\".text = wslib.{value}")), "images/workstation.nix must write {file}");
    }
}

/// The flake's `ami` tags the image with `builtins.hashFile "sha256"` of
/// its manifest; the CLI names a manifest by its own hash. They must agree,
/// or `image publish`'s manifest tag would never match a box's.
#[test]
fn nix_hashes_a_manifest_as_the_cli_does() {
    let flake = std::fs::read_to_string(repo_root().join("flake.nix")).unwrap();
    assert!(flake.contains(r#"manifest_hash = builtins.hashFile "sha256" manifest;"#), "flake.nix's ami writes the manifest hash");
    for rel in ["examples/workstation.toml", "examples/local/workstation.toml"] {
        let path = repo_root().join(rel);
        let expr = format!("builtins.hashFile \"sha256\" {}", path.display());
        let out = run_ok(Command::new("nix-instantiate").args(["--eval", "--json", "-E", &expr]));
        let nix: String = serde_json::from_str(&out).unwrap();
        assert_eq!(nix, Manifest::load(&path).unwrap().hash, "{rel}");
    }
}

/// box.hibernate's image side as images/lib.nix says it (the flake's
/// `hibernation` check evaluates the NixOS options themselves, which needs
/// a current Nix): the kernel parameter is one word by nixpkgs' kernelParam
/// type (system/boot/kernel.nix) and expands the GRUB variable the box side
/// sets, the status file is the one `doctor` reads, only a hibernating
/// manifest gets any of it, and the service runs a verb that exists.
#[test]
fn hibernation_options_are_what_the_box_side_sets_and_reads() {
    let expr = format!(
        r#"let l = import {lib}; in {{ h = l.hibernation; on = l.hibernates (builtins.fromTOML "[box]\nhibernate = true"); off = l.hibernates (builtins.fromTOML "[box]\n"); words = builtins.all (p: builtins.match "([^\"[:space:]]|\"[^\"]*\")+" p != null) l.hibernation.kernelParams; }}"#,
        lib = repo_root().join("images/lib.nix").display(),
    );
    let facts: serde_json::Value = serde_json::from_str(&run_ok(Command::new("nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expr]))).unwrap();
    assert_eq!((facts["on"].as_bool(), facts["off"].as_bool(), facts["words"].as_bool()), (Some(true), Some(false), Some(true)), "{facts:#}");
    let h = &facts["h"];
    assert_eq!(h["status"], workstation::boxes::doctor::HIBERNATION_STATUS);
    assert_eq!(h["kernelParams"], serde_json::json!([format!("${{{}}}", workstation::boxside::hibernation::GRUB_VARIABLE)]));
    assert_eq!((h["swapFile"].as_str(), h["resumeDevice"].as_str()), (Some("/swapfile"), Some("/dev/disk/by-label/nixos")), "{h:#}");
    let module = std::fs::read_to_string(repo_root().join("images/hibernation.nix")).unwrap();
    for line in [
        "config = lib.mkIf (wslib.hibernates manifest) {",
        "boot.resumeDevice = h.resumeDevice;",
        "boot.kernelParams = h.kernelParams;",
        "services.logind.settings.Login.HandleSuspendKey = \"hibernate\";",
        "box hibernation --swap-file ${h.swapFile} --resume-device ${h.resumeDevice} --grub-env ${h.grubEnv} --status ${h.status}",
    ] {
        assert!(module.contains(line), "images/hibernation.nix lacks {line:?}");
    }
    assert!(std::fs::read_to_string(repo_root().join("images/workstation.nix")).unwrap().contains("imports = [ ./hibernation.nix ];"));
    let help = run_ok(Command::new(binary()).args(["box", "hibernation", "--help"]));
    for flag in ["--swap-file", "--resume-device", "--grub-env", "--status"] {
        assert!(help.contains(flag), "{help}");
    }
}
