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
