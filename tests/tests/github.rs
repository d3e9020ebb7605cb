//! `preview up` and `preview down` reported to GitHub as a Deployment and a
//! Check run, against a loopback stand-in that refuses any request not in
//! GitHub's documented shape (tests/src/github.rs): a healthy preview moves
//! its deployment through in_progress to success with its URL; an unhealthy
//! one to failure with the run's log; `down` marks the environment's
//! deployments inactive. The token reaches GitHub only as a header.

use std::process::Command;

use workstation_tests::github::{GitHubStandIn, Request};
use workstation_tests::repo::{commit, init, write};
use workstation_tests::TestEnv;

const MANIFEST: &str = r#"
hostnames = ["api.box.ws-test"]

[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"

[services.api]
command = "sleep 100000"
HEALTH
"#;

const TOKEN: &str = "ghs_standInToken0123456789";

/// `workstation ARGS` in a GitHub Actions run of acme/shop (run 4242).
fn in_actions(env: &TestEnv, github: &GitHubStandIn, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.envs([
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_API_URL", github.url.as_str()),
        ("GITHUB_SERVER_URL", "https://github.example"),
        ("GITHUB_RUN_ID", "4242"),
    ]);
    c
}

/// The calls made since `from`: method, path, and the state or conclusion.
fn calls(requests: &[Request]) -> Vec<(String, String, String)> {
    requests
        .iter()
        .map(|r| {
            let what = r.body.get("state").or(r.body.get("conclusion")).and_then(|v| v.as_str()).unwrap_or_default();
            (r.method.clone(), r.path.clone(), what.to_owned())
        })
        .collect()
}

#[test]
fn previews_report_a_deployment_and_a_check_run_to_github() {
    let env = TestEnv::local();
    let github = GitHubStandIn::start("acme/shop");
    env.write_manifest(&MANIFEST.replace("HEALTH", ""));
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("README"), "shop\n");
    let c1 = commit(&repo, &["."], "one");
    let repo_arg = repo.to_str().unwrap();

    let out = in_actions(&env, &github, &["preview", "up", "--pr", "3", "--ref", "main", "--repo", repo_arg, "-o", "json"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "every GitHub call was accepted: {stderr}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token is never printed");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let url = report["url"].as_str().unwrap().to_owned();

    let requests = github.requests();
    let d = "/repos/acme/shop/deployments";
    let deployment_id = 1000;
    assert_eq!(
        calls(&requests),
        [
            ("POST".into(), d.into(), String::new()),
            ("POST".into(), format!("{d}/{deployment_id}/statuses"), "in_progress".into()),
            ("POST".into(), format!("{d}/{deployment_id}/statuses"), "success".into()),
            ("POST".into(), "/repos/acme/shop/check-runs".into(), "success".into()),
        ]
    );
    assert!(requests.iter().all(|r| r.authorization == format!("Bearer {TOKEN}")), "{requests:?}");
    let created = &requests[0].body;
    assert_eq!((created["ref"].as_str(), created["environment"].as_str()), (Some(c1.as_str()), Some("pr-3")), "the commit, not the branch name");
    assert_eq!(created["transient_environment"], true);
    let success = &requests[2].body;
    assert_eq!(success["environment_url"], url.as_str(), "{success}");
    assert_eq!(success["log_url"], "https://github.example/acme/shop/actions/runs/4242");
    let check = &requests[3].body;
    assert_eq!(
        (check["head_sha"].as_str(), check["status"].as_str(), check["details_url"].as_str()),
        (Some(c1.as_str()), Some("completed"), Some(url.as_str()))
    );
    assert!(check["output"]["summary"].as_str().unwrap().starts_with("### Preview #3 is up"), "the comment's summary: {check}");

    // An unhealthy stack: failure, with the run's log in the status and the check.
    env.write_manifest(&MANIFEST.replace("HEALTH", "health = { tcp = 9 }"));
    let out = in_actions(&env, &github, &["preview", "up", "--pr", "3", "--ref", &c1, "--repo", repo_arg, "--health-timeout", "2s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let requests = github.requests();
    let (status, check) = (&requests[6].body, &requests[7].body);
    assert_eq!(
        (status["state"].as_str(), status["log_url"].as_str()),
        (Some("failure"), Some("https://github.example/acme/shop/actions/runs/4242")),
        "{status}"
    );
    assert_eq!(check["conclusion"], "failure");
    let summary = check["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("NOT healthy") && summary.contains("[The run's log](https://github.example/acme/shop/actions/runs/4242)"), "{summary}");

    // Down: both deployments of pr-3 inactive.
    let out = in_actions(&env, &github, &["preview", "down", "3"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let requests = github.requests();
    let down = calls(&requests[8..]);
    assert_eq!(down[0], ("GET".into(), format!("{d}?environment=pr-3&per_page=100"), String::new()));
    assert_eq!(down[1..], [("POST".into(), format!("{d}/1001/statuses"), "inactive".into()), ("POST".into(), format!("{d}/1000/statuses"), "inactive".into())]);

    // Outside Actions nothing is reported; --github without a token says what is missing.
    let before = github.requests().len();
    env.write_manifest(&MANIFEST.replace("HEALTH", ""));
    let err = env.fails(&["preview", "up", "--pr", "4", "--ref", &c1, "--repo", repo_arg, "--github"]);
    assert!(err.contains("--github needs GITHUB_TOKEN"), "{err}");
    assert_eq!(github.requests().len(), before);
}
