//! terraform/: every file parses as HCL (python-hcl2), checkov finds
//! nothing, each IAM policy allows exactly the AWS actions the code that
//! runs under it calls (derived from the code's SDK calls), and the
//! policies' resource and condition rules decide who may touch which box
//! (tests/support/iam_eval.py: moto's access control ignores both).
//!
//! Both Python tools live in their own virtualenvs (scripts/install-deps.sh):
//! checkov pins library versions that moto's server does not accept.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use workstation_tests::{repo_root, run_ok};

const HCL2_PYTHON: &str = "/opt/workstation-ci/hcl2/bin/python";
const CHECKOV: &str = "/opt/workstation-ci/checkov/bin/checkov";

/// The code of `rel` under provisioner/src: a file, or every file of a
/// folder (a module split into files), without unit tests.
fn source(rel: &str) -> String {
    let path = repo_root().join("provisioner/src").join(rel);
    let mut files = vec![];
    if path.is_dir() {
        files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "rs")));
        files.sort();
    } else {
        files.push(path);
    }
    let mut out = String::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        // Unit tests build requests they never send.
        out += match text.find("#[cfg(test)]") {
            Some(at) => &text[..at],
            None => &text,
        };
    }
    out
}

fn pascal(snake: &str) -> String {
    snake.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

/// The IAM actions of the SDK calls in `src`: `<client>.<operation>()`,
/// where `client` is `ec2`, `ebs`, `s3`, or `client` (the file's own
/// service, `default`).
fn sdk_actions(src: &str, default: &str) -> BTreeSet<String> {
    let squeezed: String = src.split_whitespace().collect();
    let mut out = BTreeSet::new();
    for (var, service) in [("client.", default), ("ec2.", "ec2"), ("ebs.", "ebs"), ("s3.", "s3"), ("route53.", "route53")] {
        let mut rest = squeezed.as_str();
        while let Some(at) = rest.find(var) {
            let before = squeezed.len() - rest.len() + at;
            rest = &rest[at + var.len()..];
            let boundary = squeezed[..before].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let op: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if boundary && !op.is_empty() && rest[op.len()..].starts_with("()") {
                let op = pascal(&op);
                // HeadObject is authorised by s3:GetObject.
                let op = if service == "s3" && op == "HeadObject" { "GetObject".into() } else { op };
                out.insert(format!("{service}:{op}"));
            }
        }
    }
    out
}

/// The functions of `src` by name, each with its body (up to the next fn).
fn functions(src: &str) -> BTreeMap<String, String> {
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim_start().trim_start_matches("pub(super) ").trim_start_matches("pub ").trim_start_matches("async ");
        if let Some(rest) = t.strip_prefix("fn ") {
            starts.push((offset, rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()));
        }
        offset += line.len();
    }
    let ends = starts.iter().skip(1).map(|(o, _)| *o).chain([src.len()]);
    starts.iter().zip(ends).map(|((start, name), end)| (name.clone(), src[*start..end].to_string())).collect()
}

/// Actions of `entries` in `src` and of every `self.f(` they reach.
fn reachable_actions(src: &str, entries: &BTreeSet<String>) -> BTreeSet<String> {
    let fns = functions(src);
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = entries.iter().cloned().collect();
    let mut actions = BTreeSet::new();
    while let Some(f) = todo.pop() {
        let Some(body) = fns.get(&f) else { continue };
        if !seen.insert(f.clone()) {
            continue;
        }
        actions.extend(sdk_actions(body, "ec2"));
        let squeezed: String = body.split_whitespace().collect();
        for name in fns.keys() {
            if squeezed.contains(&format!("self.{name}(")) {
                todo.push(name.clone());
            }
        }
    }
    actions
}

/// `recv.f(` calls in `src`: the provider methods a module uses.
fn calls_on(src: &str, recv: &str) -> BTreeSet<String> {
    let squeezed: String = src.split_whitespace().collect();
    squeezed
        .split(&format!("{recv}."))
        .skip(1)
        .map(|r| r.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
        .filter(|name| !name.is_empty())
        .collect()
}

/// What each policy document in terraform/ allows, from python-hcl2.
fn policies() -> BTreeMap<String, BTreeSet<String>> {
    let out = run_ok(
        Command::new(HCL2_PYTHON).arg(repo_root().join("tests/support/terraform_policies.py")).arg(repo_root().join("terraform")),
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn each_policy_allows_exactly_the_actions_its_code_calls() {
    let aws = source("provider/aws");
    let mut engineer = sdk_actions(&aws, "ec2");
    engineer.extend(sdk_actions(&source("stack/seed"), "s3"));
    if aws.contains("iam_instance_profile(") {
        engineer.insert("iam:PassRole".into());
    }
    let on_box = sdk_actions(&source("boxside"), "ec2");
    let reaper = reachable_actions(&aws, &calls_on(&source("idle/reap.rs"), "provider"));
    let publisher = sdk_actions(&source("image"), "ec2");
    // The preview role has the engineers' policy (as the owner `preview`)
    // and its own for the zone's records.
    let preview_dns = sdk_actions(&source("preview"), "route53");

    // Sanity: the scan sees the calls we know are there.
    assert!(engineer.contains("ec2:RunInstances") && engineer.contains("s3:GetObject"), "{engineer:?}");
    assert!(reaper.contains("ec2:StopInstances") && !reaper.contains("ec2:RunInstances"), "{reaper:?}");
    assert!(publisher.contains("ebs:PutSnapshotBlock"), "{publisher:?}");
    assert!(reaper.contains("ec2:TerminateInstances"), "reap terminates expired previews: {reaper:?}");
    assert_eq!(preview_dns, ["route53:ChangeResourceRecordSets".to_owned(), "route53:ListResourceRecordSets".to_owned()].into());

    let policies = policies();
    // kms, logs, sqs, xray and sts are the infrastructure's own (encryption,
    // the Lambda's logs and dead letters); the code calls ec2, ebs, s3, iam.
    let api = |name: &str| -> BTreeSet<String> {
        policies[name].iter().filter(|a| ["ec2:", "ebs:", "s3:", "iam:", "route53:"].iter().any(|p| a.starts_with(p))).cloned().collect()
    };
    let preview_role = std::fs::read_to_string(repo_root().join("terraform/preview.tf")).unwrap().split_whitespace().collect::<String>();
    assert!(preview_role.contains("policy_arn=aws_iam_policy.engineer.arn"), "the preview role has the engineers' policy");
    for (name, derived) in [("engineer", &engineer), ("box", &on_box), ("reaper", &reaper), ("publisher", &publisher), ("preview_dns", &preview_dns)] {
        let allowed = api(name);
        let missing: Vec<_> = derived.difference(&allowed).collect();
        let unneeded: Vec<_> = allowed.difference(derived).collect();
        assert!(missing.is_empty(), "terraform's {name} policy lacks {missing:?}, which the code calls");
        assert!(unneeded.is_empty(), "terraform's {name} policy allows {unneeded:?}, which no code of it calls");
    }
}

const ACCOUNT: &str = "111122223333";

fn arn(kind: &str, id: &str) -> String {
    match kind {
        "image" => format!("arn:aws:ec2:us-east-1::image/{id}"),
        _ => format!("arn:aws:ec2:us-east-1:{ACCOUNT}:{kind}/{id}"),
    }
}

/// What terraform/'s policies decide for each request, by
/// tests/support/iam_eval.py.
fn decide(requests: &[serde_json::Value]) -> Vec<String> {
    let input = serde_json::json!({
        "bindings": {"var.region": "us-east-1", "local.subnet_ids": ["subnet-1"], "var.preview_domain": "dev.example.com"},
        "requests": requests,
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let out = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!("{HCL2_PYTHON} {} {} < {}", repo_root().join("tests/support/iam_eval.py").display(), repo_root().join("terraform").display(), file.display())),
    );
    serde_json::from_str(&out).unwrap()
}

/// An engineer's request: `who` acting on a resource with `context`.
fn engineer(who: &str, action: &str, resource: String, context: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"policy": "engineer", "principal_tags": {"workstation-owner": who}, "action": action, "resource": resource, "context": context})
}

/// The ABAC rules end to end, on the policy documents themselves: moto
/// evaluates neither resources nor conditions, so it cannot test them.
#[test]
fn nobody_can_touch_another_engineers_box_or_key() {
    let alices_box = arn("instance", "i-alice");
    let owned_by = |o: &str| serde_json::json!({"ec2:ResourceTag/workstation:owner": o});
    let launch_tag = |o: &str| serde_json::json!({"aws:RequestTag/workstation:owner": o});
    let tags_on = |o: &str, keys: &[&str]| serde_json::json!({"ec2:ResourceTag/workstation:owner": o, "aws:TagKeys": keys});
    let this_box = serde_json::json!({"aws:ARN": alices_box, "ec2:SourceInstanceARN": alices_box});
    let box_tags = |keys: &[&str], on: &str| {
        serde_json::json!({"aws:ARN": on, "ec2:SourceInstanceARN": alices_box, "aws:TagKeys": keys})
    };
    let on_box = |action: &str, resource: &str, context: serde_json::Value| {
        serde_json::json!({"policy": "box", "action": action, "resource": resource, "context": context})
    };
    let dns = |names: &[&str], types: &[&str]| {
        let zone = "arn:aws:route53:::hostedzone/arn:aws:test:::aws_route53_zone/preview";
        let context = serde_json::json!({"route53:ChangeResourceRecordSetsNormalizedRecordNames": names, "route53:ChangeResourceRecordSetsRecordTypes": types});
        serde_json::json!({"policy": "preview_dns", "action": "route53:ChangeResourceRecordSets", "resource": zone, "context": context})
    };
    let reaper = |action: &str, context: serde_json::Value| {
        serde_json::json!({"policy": "reaper", "action": action, "resource": alices_box, "context": context})
    };
    let cases: Vec<(&str, &str, serde_json::Value)> = vec![
        ("allow", "alice stops her box", engineer("alice", "ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "bob stops alice's box", engineer("bob", "ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "bob starts alice's box", engineer("bob", "ec2:StartInstances", alices_box.clone(), owned_by("alice"))),
        (
            "allow",
            "bob starts alice's box she made shareable",
            engineer("bob", "ec2:StartInstances", alices_box.clone(), serde_json::json!({"ec2:ResourceTag/workstation:owner": "alice", "ec2:ResourceTag/workstation:shareable": "true"})),
        ),
        (
            "deny",
            "bob stops alice's shareable box",
            engineer("bob", "ec2:StopInstances", alices_box.clone(), serde_json::json!({"ec2:ResourceTag/workstation:owner": "alice", "ec2:ResourceTag/workstation:shareable": "true"})),
        ),
        ("deny", "bob makes alice's box shareable", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:shareable"]))),
        ("deny", "bob terminates alice's box", engineer("bob", "ec2:TerminateInstances", alices_box.clone(), owned_by("alice"))),
        ("allow", "alice keeps her box", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:keep-until"]))),
        ("deny", "bob tags alice's box", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:keep-until"]))),
        (
            "allow",
            "alice records her box's bring-up and manifest",
            engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:bring-up", "workstation:manifest-hash"])),
        ),
        ("deny", "bob records a bring-up on alice's box", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:bring-up"]))),
        ("deny", "alice forges activity", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:last-active"]))),
        ("deny", "alice gives her box to bob", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:owner"]))),
        ("allow", "bob launches his own box", engineer("bob", "ec2:RunInstances", arn("instance", "*"), launch_tag("bob"))),
        ("deny", "bob launches a box as alice's", engineer("bob", "ec2:RunInstances", arn("instance", "*"), launch_tag("alice"))),
        ("deny", "bob launches with alice's key pair", engineer("bob", "ec2:RunInstances", arn("key-pair", "workstation.alice.ab12"), launch_tag("bob"))),
        ("allow", "bob launches with his key pair", engineer("bob", "ec2:RunInstances", arn("key-pair", "workstation.bob.ab12"), launch_tag("bob"))),
        ("allow", "a launch from this account's image", engineer("bob", "ec2:RunInstances", arn("image", "ami-1"), serde_json::json!({"ec2:Owner": ACCOUNT}))),
        ("deny", "a launch from a stranger's image", engineer("bob", "ec2:RunInstances", arn("image", "ami-2"), serde_json::json!({"ec2:Owner": "999988887777"}))),
        ("allow", "alice imports her key", engineer("alice", "ec2:ImportKeyPair", arn("key-pair", "workstation.alice.ab12"), launch_tag("alice"))),
        ("deny", "bob squats alice's key-pair name", engineer("bob", "ec2:ImportKeyPair", arn("key-pair", "workstation.alice.ab12"), launch_tag("bob"))),
        ("deny", "bob imports a pair tagged as alice's", engineer("bob", "ec2:ImportKeyPair", arn("key-pair", "workstation.bob.ab12"), launch_tag("alice"))),
        ("allow", "a box publishes its host key", on_box("ec2:CreateTags", &alices_box, box_tags(&["workstation:host-key"], &alices_box))),
        ("allow", "a box stops itself", on_box("ec2:StopInstances", &alices_box, this_box.clone())),
        ("deny", "a box stops another", on_box("ec2:StopInstances", &arn("instance", "i-other"), box_tags(&[], &arn("instance", "i-other")))),
        ("deny", "a box re-labels its owner", on_box("ec2:CreateTags", &alices_box, box_tags(&["workstation:owner"], &alices_box))),
        ("deny", "a box reads the region's tags", on_box("ec2:DescribeTags", "*", this_box.clone())),
        ("allow", "the reaper stops a box", reaper("ec2:StopInstances", owned_by("alice"))),
        ("deny", "the reaper stops a stranger's instance", reaper("ec2:StopInstances", serde_json::json!({}))),
        ("deny", "the reaper extends a keep", reaper("ec2:CreateTags", tags_on("alice", &["workstation:keep-until"]))),
        // Previews: CI's role is the owner `preview` under the engineers' policy.
        ("allow", "CI launches a preview", engineer("preview", "ec2:RunInstances", arn("instance", "*"), launch_tag("preview"))),
        ("allow", "CI records a preview's commit", engineer("preview", "ec2:CreateTags", arn("instance", "i-pr"), tags_on("preview", &["workstation:ref", "workstation:expires"]))),
        ("allow", "CI takes a preview down", engineer("preview", "ec2:TerminateInstances", arn("instance", "i-pr"), owned_by("preview"))),
        ("deny", "CI terminates alice's box", engineer("preview", "ec2:TerminateInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "CI stops alice's box", engineer("preview", "ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "CI tags alice's box as an expired preview", engineer("preview", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:expires"]))),
        ("deny", "CI launches a box as alice's", engineer("preview", "ec2:RunInstances", arn("instance", "*"), launch_tag("alice"))),
        ("allow", "CI names a preview in the zone", dns(&["api.pr-12.dev.example.com"], &["A"])),
        ("deny", "CI takes over an engineer's hostname", dns(&["api.pr-12.dev.example.com", "api.dev.example.com"], &["A"])),
        ("deny", "CI writes another record type", dns(&["api.pr-12.dev.example.com"], &["TXT"])),
        (
            "allow",
            "the reaper terminates an expired preview",
            reaper("ec2:TerminateInstances", serde_json::json!({"ec2:ResourceTag/workstation:owner": "preview", "ec2:ResourceTag/workstation:preview": "12"})),
        ),
        (
            "deny",
            "the reaper terminates alice's box tagged as a preview",
            reaper("ec2:TerminateInstances", serde_json::json!({"ec2:ResourceTag/workstation:owner": "alice", "ec2:ResourceTag/workstation:preview": "12"})),
        ),
        ("deny", "the reaper terminates the preview owner's other box", reaper("ec2:TerminateInstances", owned_by("preview"))),
    ];
    let decided = decide(&cases.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>());
    let wrong: Vec<String> =
        cases.iter().zip(&decided).filter(|((want, ..), got)| want != got).map(|((want, what, _), got)| format!("{what}: {got}, not {want}")).collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn checkov_passes_and_every_skip_says_why() {
    let out = Command::new(CHECKOV)
        .args(["-d", "terraform", "--quiet", "--compact", "--skip-download", "-o", "json"])
        .current_dir(repo_root())
        .output()
        .expect("checkov (scripts/install-deps.sh installs it)");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov output: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    let summary = &report["summary"];
    assert_eq!(summary["failed"], 0, "checkov failed checks:\n{}", serde_json::to_string_pretty(&report["results"]["failed_checks"]).unwrap());
    assert!(summary["passed"].as_u64().unwrap() > 100, "{summary}");

    for entry in std::fs::read_dir(repo_root().join("terraform")).unwrap() {
        let path = entry.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(skip) = line.trim().strip_prefix("#checkov:skip=") {
                let reason = skip.split_once(':').map(|(_, r)| r.trim()).unwrap_or("");
                assert!(reason.len() > 10, "{}: a skip without a reason: {line}", path.display());
            }
        }
    }
}
