//! .github/workflows/: what runs in CI with credentials in scope, checked on
//! the files themselves (GitHub's runners are not here): a pull request's
//! code never runs on a runner that holds the preview role or its key seed.

use workstation_tests::{repo_root, run_ok};

/// A workflow file as JSON (PyYAML, which moto's server brings along).
fn workflow(name: &str) -> serde_json::Value {
    let path = repo_root().join(".github/workflows").join(name);
    let script = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout, default=str)";
    let text = run_ok(std::process::Command::new("python3").args(["-c", script]).arg(&path));
    serde_json::from_str(&text).unwrap()
}

fn steps(job: &serde_json::Value) -> Vec<&serde_json::Value> {
    job["steps"].as_array().map(|s| s.iter().collect()).unwrap_or_default()
}

#[test]
fn previews_never_run_a_pull_requests_code_with_credentials() {
    let wf = workflow("preview.yml");
    // PyYAML reads the key `on` as true (YAML 1.1).
    let on = wf.get("on").or_else(|| wf.get("true")).expect("a trigger");
    assert!(on.get("pull_request_target").is_some(), "the base branch's workflow: {on}");
    assert!(on.get("pull_request").is_none(), "never the pull request's own workflow file: {on}");

    let jobs = wf["jobs"].as_object().unwrap();
    assert!(!jobs.is_empty());
    for (name, job) in jobs {
        let steps = steps(job);
        let credentials = steps.iter().any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials")));
        let text = job.to_string();
        if credentials || text.contains("secrets.") {
            assert_eq!(job["environment"], "preview", "job {name} holds credentials: it runs in the approved environment");
        }
        for step in &steps {
            let run = step["run"].as_str().unwrap_or_default();
            let what = format!("job {name}, step {}", step["name"].as_str().or(step["uses"].as_str()).unwrap_or("?"));
            // Nothing built or run from the checkout: cargo, build scripts,
            // package scripts, make, or a script path of the tree.
            for word in ["cargo ", "make", "npm ", "npx ", "pip ", "./", "pr/scripts", "bash pr", "sh pr"] {
                assert!(!run.contains(word), "{what} runs `{word}` (code from the pull request): {run}");
            }
            if let Some(uses) = step["uses"].as_str() {
                assert!(!uses.starts_with("./"), "{what} uses an action from the checkout");
                let pinned = uses.rsplit_once('@').is_some_and(|(_, r)| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(pinned, "{what}: an action runs with the OIDC token in scope, so it is pinned to a commit, not a tag: {uses}");
                if uses.starts_with("actions/checkout") {
                    assert_eq!(step["with"]["persist-credentials"], false, "{what}: no git token left in the tree");
                    assert_eq!(step["with"]["path"], "pr", "{what}: the tree is data, beside the workspace");
                }
            }
            // An expression in a script is text the pull request may choose
            // (a branch name, a title): values go through `env:`.
            assert!(!run.contains("${{"), "{what} interpolates an expression into its script: {run}");
            if run.contains("curl") {
                assert!(run.contains("sha256sum -c"), "{what}: a downloaded binary is checked against its pinned checksum");
            }
            // The seed is given to the one step that derives the key.
            if step.to_string().contains("WORKSTATION_PREVIEW_KEY_SEED") {
                assert!(run.starts_with("workstation preview key"), "{what} sees the key seed: {run}");
            }
        }
    }
    let up = &jobs["up"];
    let seed_steps = steps(up).iter().filter(|s| s.to_string().contains("secrets.WORKSTATION_PREVIEW_KEY_SEED")).count();
    assert_eq!(seed_steps, 1);
    assert!(!wf.to_string().contains("WORKSTATION_PREVIEW_SSH_KEY"), "no key shared by every preview");
    assert!(wf["env"]["WORKSTATION_PREVIEW_ROLE"].as_str().is_some_and(|r| r.contains("vars.")), "runs as its pull request's session");
}

/// The image: a pull request builds it with no credentials; only a push to
/// the default branch publishes, from the `image` environment, with pinned
/// actions and the released binary checked against its checksum.
#[test]
fn images_publish_only_from_the_default_branch_in_the_image_environment() {
    let wf = workflow("image.yml");
    assert_eq!(wf["permissions"]["id-token"], serde_json::Value::Null, "no OIDC token by default: {}", wf["permissions"]);
    let jobs = wf["jobs"].as_object().unwrap();
    for (name, job) in jobs {
        let credentialed = steps(job).iter().any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials")));
        let token = job["permissions"]["id-token"] == "write";
        assert_eq!(credentialed, token, "job {name}: an OIDC token only where credentials are used");
        if credentialed {
            assert_eq!(job["environment"], "image", "job {name} publishes from the protected environment");
            let only_main = job["if"].as_str().unwrap_or_default();
            assert!(
                only_main.contains("github.event_name == 'push'") && only_main.contains("refs/heads/main"),
                "job {name} runs on pull requests: {only_main}"
            );
            let runs: String = steps(job).iter().filter_map(|s| s["run"].as_str()).collect();
            assert!(runs.contains("image publish") && runs.contains("--commit"), "job {name} publishes the image tagged with its commit");
            assert!(runs.contains("manifest publish --to"), "job {name} publishes the manifest to terraform's manifest_url");
            assert!(runs.contains("sha256sum -c") && !runs.contains("cargo "), "job {name}: the released binary, checked, not a build");
        }
        for step in steps(job) {
            if let Some(uses) = step["uses"].as_str() {
                let pinned = uses.rsplit_once('@').is_some_and(|(_, r)| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(pinned, "job {name}: {uses} is pinned to a commit");
            }
            assert!(!step["run"].as_str().unwrap_or_default().contains("${{"), "job {name}: values go through env");
        }
    }
    assert!(jobs.values().any(|j| j["environment"] == "image"), "something publishes");
}

/// Releases: dist's own checks that dist-workspace.toml and the generated
/// .github/workflows/release.yml agree, and that the plan has every target
/// with checksums and the Homebrew formula.
#[test]
fn the_release_workflow_is_what_dist_generates() {
    const DIST: &str = "/opt/workstation-ci/dist/bin/dist";
    run_ok(std::process::Command::new(DIST).args(["generate", "--check"]).current_dir(repo_root()));
    let plan = run_ok(std::process::Command::new(DIST).args(["plan", "--output-format=json"]).current_dir(repo_root()));
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let artifacts: Vec<&str> = plan["artifacts"].as_object().unwrap().keys().map(String::as_str).collect();
    for target in ["aarch64-apple-darwin", "aarch64-unknown-linux-gnu", "x86_64-apple-darwin", "x86_64-unknown-linux-gnu"] {
        let archive = format!("workstation-{target}.tar.xz");
        assert!(artifacts.contains(&archive.as_str()), "{archive} in {artifacts:?}");
        assert!(artifacts.contains(&format!("{archive}.sha256").as_str()), "a checksum of {archive}");
    }
    assert!(artifacts.contains(&"workstation.rb"), "the Homebrew formula: {artifacts:?}");
}
