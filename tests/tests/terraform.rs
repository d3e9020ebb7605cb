//! terraform/: every file parses as HCL (python-hcl2), checkov finds
//! nothing, each IAM policy allows exactly the AWS actions the code that
//! runs under it calls (derived from the code's SDK calls), and the
//! policies' resource and condition rules decide who may touch which box,
//! as AWS would: terraform's documents are rendered to AWS's JSON
//! (tests/support/terraform_render.py) and every request is decided by a
//! maintained IAM simulator, `@cloud-copilot/iam-simulate`
//! (tests/support/iam/), which also refuses an action, resource type or
//! condition key that AWS's service data does not have for that action
//! (moto's access control ignores resources and conditions altogether).
//!
//! The OIDC trust policy's `token.actions.githubusercontent.com:*` keys are
//! not in the simulator's service data: those conditions are checked on the
//! rendered document itself.
//!
//! The Python tools live in their own virtualenvs and the simulator in
//! tests/support/iam/node_modules (scripts/install-deps.sh): checkov pins
//! library versions that moto's server does not accept.

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
/// where `client` is `ec2`, `ebs`, `s3`, `instance_connect`, ... or
/// `client` (the file's own service, `default`).
fn sdk_actions(src: &str, default: &str) -> BTreeSet<String> {
    let squeezed: String = src.split_whitespace().collect();
    let mut out = BTreeSet::new();
    for (var, service) in [
        ("client.", default),
        ("ec2.", "ec2"),
        ("ebs.", "ebs"),
        ("s3.", "s3"),
        ("route53.", "route53"),
        ("ssm.", "ssm"),
        ("secretsmanager.", "secretsmanager"),
        ("instance_connect.", "ec2-instance-connect"),
        ("sqs.", "sqs"),
    ] {
        let mut rest = squeezed.as_str();
        while let Some(at) = rest.find(var) {
            let before = squeezed.len() - rest.len() + at;
            rest = &rest[at + var.len()..];
            let boundary = squeezed[..before].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let op: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if boundary && !op.is_empty() && rest[op.len()..].starts_with("()") {
                let op = pascal(&op);
                // HeadObject is authorised by s3:GetObject.
                let op = match (service, op.as_str()) {
                    ("s3", "HeadObject") => "GetObject".into(),
                    // IAM spells it with SSH in capitals.
                    ("ec2-instance-connect", "SendSshPublicKey") => "SendSSHPublicKey".into(),
                    _ => op,
                };
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

const ACCOUNT: &str = "111122223333";
const DOMAIN: &str = "dev.example.com";

/// terraform/'s policy documents as AWS JSON, by name.
fn rendered() -> serde_json::Value {
    let bindings = serde_json::json!({"bindings": {
        "var.region": "us-east-1",
        "local.subnet_ids": ["subnet-1"],
        "var.preview_domain": DOMAIN,
        "var.github_repository": "org/repo",
        "local.github_oidc": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"),
    }});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bindings.json");
    std::fs::write(&file, bindings.to_string()).unwrap();
    let script = repo_root().join("tests/support/terraform_render.py");
    let terraform = repo_root().join("terraform");
    let out = run_ok(Command::new("sh").arg("-c").arg(format!("{HCL2_PYTHON} {} {} < {}", script.display(), terraform.display(), file.display())));
    serde_json::from_str(&out).unwrap()
}

fn as_list(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
        _ => vec![],
    }
}

/// The actions each policy document allows.
fn policies() -> BTreeMap<String, BTreeSet<String>> {
    let docs = rendered();
    docs.as_object()
        .unwrap()
        .iter()
        .map(|(name, doc)| {
            let allowed = doc["Statement"].as_array().unwrap().iter().filter(|st| st["Effect"] == "Allow").flat_map(|st| as_list(&st["Action"])).collect();
            (name.clone(), allowed)
        })
        .collect()
}

#[test]
fn each_policy_allows_exactly_the_actions_its_code_calls() {
    // Offboarding is the admin's, not an engineer's: its file is apart.
    let aws = source("provider/aws").replace(&source("provider/aws/offboard.rs"), "");
    let mut engineer = sdk_actions(&aws, "ec2");
    engineer.extend(sdk_actions(&source("stack/seed"), "s3"));
    if aws.contains("iam_instance_profile(") {
        engineer.insert("iam:PassRole".into());
    }
    // Boxes' queues, made with tags: SQS authorizes those as TagQueue.
    let queues = source("provider/queues.rs");
    engineer.extend(sdk_actions(&queues, "sqs"));
    if queues.contains("set_tags(") {
        engineer.insert("sqs:TagQueue".into());
    }
    let on_box = sdk_actions(&source("boxside"), "ec2");
    let mut reaper = reachable_actions(&aws, &calls_on(&source("idle/reap.rs"), "provider"));
    // The deployed manifest, read from S3 (manifest/deployed.rs's fetch).
    let deployed = functions(&source("manifest/deployed.rs"));
    reaper.extend(sdk_actions(&deployed["fetch"], "s3"));
    let manifest_publisher = sdk_actions(&deployed["publish"], "s3");
    // The webhook endpoint: the boxes it sends to (webhooks/), the manifest.
    let mut webhooks = reachable_actions(&aws, &calls_on(&source("webhooks"), "provider"));
    webhooks.extend(sdk_actions(&deployed["fetch"], "s3"));
    // `admin offboard`: what offboard.rs's steps reach in the provider.
    let offboard = source("admin/offboard.rs");
    let mut admin =
        reachable_actions(&source("provider/aws/offboard.rs"), &["holdings", "mark_offboarded", "delete_key_pair", "delete_volume"].map(String::from).into());
    admin.extend(reachable_actions(&aws, &calls_on(&offboard, "provider")));
    admin.extend(reachable_actions(&aws, &calls_on(&source("provider/aws/offboard.rs"), "self")));
    let publisher = sdk_actions(&source("image"), "ec2");
    // A preview run calls what an engineer's create and destroy call (the
    // same provider), and its own zone's records; not `workstation
    // secrets`, an engineer's own values.
    let own_secrets = sdk_actions(&source("provider/aws/secrets.rs"), "ssm");
    // Nor a team box's pushed keys: a preview run reaches its own box only.
    let team_access: BTreeSet<String> = ["ec2-instance-connect:SendSSHPublicKey".to_owned()].into();
    assert!(engineer.contains("ec2-instance-connect:SendSSHPublicKey"), "team boxes admit pushed keys: {engineer:?}");
    let preview: BTreeSet<String> = engineer.difference(&own_secrets).filter(|a| !team_access.contains(*a)).cloned().collect();
    // List prices (`cost`'s estimate, `status`'s cost line): engineers' and
    // the platform's, not a preview run's; the bill is the platform's only.
    let price_list = sdk_actions(&source("cost/prices.rs"), "pricing");
    engineer.extend(price_list.iter().cloned());
    let mut cost_reader = sdk_actions(&source("cost/billed.rs"), "ce");
    cost_reader.extend(price_list.iter().cloned());
    assert_eq!(cost_reader, ["ce:GetCostAndUsage".to_owned(), "pricing:GetProducts".to_owned()].into());
    let preview_dns = sdk_actions(&source("preview"), "route53");
    assert!(engineer.contains("ec2:DescribeSnapshots"), "create checks an image's snapshot: {engineer:?}");
    assert!(own_secrets.contains("ssm:PutParameter") && on_box.contains("secretsmanager:GetSecretValue"), "{own_secrets:?} {on_box:?}");

    // Sanity: the scan sees the calls we know are there.
    assert!(engineer.contains("ec2:RunInstances") && engineer.contains("s3:GetObject"), "{engineer:?}");
    assert!(reaper.contains("ec2:StopInstances") && !reaper.contains("ec2:RunInstances"), "{reaper:?}");
    assert!(publisher.contains("ebs:PutSnapshotBlock"), "{publisher:?}");
    assert!(reaper.contains("ec2:TerminateInstances"), "reap terminates expired previews: {reaper:?}");
    assert!(reaper.contains("s3:GetObject") && manifest_publisher == ["s3:PutObject".to_owned()].into(), "{reaper:?} {manifest_publisher:?}");
    assert!(admin.contains("ec2:DeleteKeyPair") && admin.contains("ec2:TerminateInstances") && admin.contains("ec2:DescribeVolumes"), "{admin:?}");
    assert_eq!(preview_dns, ["route53:ChangeResourceRecordSets".to_owned(), "route53:ListResourceRecordSets".to_owned()].into());
    assert_eq!(webhooks, ["ec2:DescribeInstances".to_owned(), "s3:GetObject".to_owned()].into(), "the endpoint only reads");

    let policies = policies();
    // kms, logs, xray, sts and the Lambda's dead letters (sqs:SendMessage)
    // are the infrastructure's own, and ssm's sessions are the Session
    // Manager plugin's and agent's; the code calls ec2, ebs, s3, iam,
    // route53, ssm's parameters, secretsmanager and sqs's queue actions.
    let api = |name: &str| -> BTreeSet<String> {
        let called = |a: &&String| {
            ["ec2:", "ebs:", "s3:", "iam:", "route53:", "secretsmanager:", "ec2-instance-connect:", "ce:", "pricing:"].iter().any(|p| a.starts_with(p))
                || (a.starts_with("ssm:") && a.contains("Parameter"))
                || (a.starts_with("sqs:") && *a != "sqs:SendMessage")
        };
        policies[name].iter().filter(called).cloned().collect()
    };
    let preview_tf = std::fs::read_to_string(repo_root().join("terraform/preview.tf")).unwrap().split_whitespace().collect::<String>();
    assert!(!preview_tf.contains("aws_iam_policy.engineer"), "the preview role has a policy of its own, not the engineers'");
    for (name, derived) in [
        ("engineer", &engineer),
        ("preview", &preview),
        ("box", &on_box.iter().filter(|a| a.starts_with("ec2:")).cloned().collect()),
        ("box_secrets", &on_box.iter().filter(|a| !a.starts_with("ec2:")).cloned().collect()),
        ("reaper", &reaper),
        ("publisher", &publisher),
        ("preview_dns", &preview_dns),
        ("admin", &admin),
        ("manifest_publisher", &manifest_publisher),
        ("webhooks", &webhooks),
        ("cost_reader", &cost_reader),
    ] {
        let allowed = api(name);
        let missing: Vec<_> = derived.difference(&allowed).collect();
        let unneeded: Vec<_> = allowed.difference(derived).collect();
        assert!(missing.is_empty(), "terraform's {name} policy lacks {missing:?}, which the code calls");
        assert!(unneeded.is_empty(), "terraform's {name} policy allows {unneeded:?}, which no code of it calls");
    }
}

fn arn(kind: &str, id: &str) -> String {
    match kind {
        "image" | "snapshot" => format!("arn:aws:ec2:us-east-1::{kind}/{id}"),
        _ => format!("arn:aws:ec2:us-east-1:{ACCOUNT}:{kind}/{id}"),
    }
}

/// What the simulator decides for each request, and by which statements.
fn decide(requests: &[serde_json::Value]) -> Vec<(String, Vec<String>)> {
    let input = serde_json::json!({"policies": rendered(), "requests": requests});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let script = repo_root().join("tests/support/iam/simulate.mjs");
    let out = run_ok(Command::new("sh").arg("-c").arg(format!("node {} < {}", script.display(), file.display())));
    let decided: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    decided.iter().map(|d| (d["decision"].as_str().unwrap().to_owned(), as_list(&d["by"]))).collect()
}

/// A request by `principal` (an ARN) under `policies`, with `context`.
fn request(policies: &[&str], principal: &str, action: &str, resource: &str, context: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"policies": policies, "principal": principal, "action": action, "resource": resource, "context": context})
}

/// With the principal tags of `tags` in the context, as AWS puts them.
fn with_tags(mut context: serde_json::Value, tags: &[(&str, &str)]) -> serde_json::Value {
    for (k, v) in tags {
        context[format!("aws:PrincipalTag/{k}")] = serde_json::json!(v);
    }
    context
}

/// An engineer's request: `who` acting on a resource with `context`.
fn engineer(who: &str, action: &str, resource: String, context: serde_json::Value) -> serde_json::Value {
    let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/engineers/{who}");
    request(&["engineer"], &principal, action, &resource, with_tags(context, &[("workstation-owner", who)]))
}

/// A preview run's request: the session of pull request `pr`.
fn preview(pr: u32, action: &str, resource: String, context: serde_json::Value) -> serde_json::Value {
    let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-preview/pr-{pr}");
    let pr = pr.to_string();
    request(&["preview"], &principal, action, &resource, with_tags(context, &[("workstation-owner", "preview"), ("workstation-preview", &pr)]))
}

/// Runs `cases` (want, what, request) and fails listing every one decided
/// otherwise, with the statements that decided it.
fn check(cases: &[(&str, &str, serde_json::Value)]) {
    let decided = decide(&cases.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>());
    let wrong: Vec<String> = cases
        .iter()
        .zip(&decided)
        .filter(|((want, ..), (got, _))| want != got)
        .map(|((want, what, _), (got, by))| format!("{what}: {got} (by {by:?}), not {want}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn owned_by(o: &str) -> serde_json::Value {
    serde_json::json!({"ec2:ResourceTag/workstation:owner": o})
}

fn launch_tag(o: &str) -> serde_json::Value {
    serde_json::json!({"aws:RequestTag/workstation:owner": o})
}

/// A launch of an instance of `instance_type` tagged as `o`'s.
fn launch(o: &str, instance_type: &str) -> serde_json::Value {
    serde_json::json!({"aws:RequestTag/workstation:owner": o, "ec2:InstanceType": instance_type})
}

fn tags_on(o: &str, keys: &[&str]) -> serde_json::Value {
    serde_json::json!({"ec2:ResourceTag/workstation:owner": o, "aws:TagKeys": keys})
}

/// The ABAC rules end to end, on the policy documents themselves: moto
/// evaluates neither resources nor conditions, so it cannot test them.
#[test]
fn nobody_can_touch_another_engineers_box_or_key() {
    let alices_box = arn("instance", "i-alice");
    let box_principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-box/i-alice");
    // Requests signed with the instance's credentials carry its ARN; the
    // instance acted on, its id.
    let on_box = |action: &str, resource: &str, keys: Option<&[&str]>| {
        let mut context = serde_json::json!({"ec2:SourceInstanceARN": alices_box});
        if let Some(id) = resource.strip_prefix(&format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/")) {
            context["ec2:InstanceID"] = serde_json::json!(id);
        }
        if let Some(keys) = keys {
            context["aws:TagKeys"] = serde_json::json!(keys);
        }
        request(&["box"], &box_principal, action, resource, context)
    };
    let reaper = |action: &str, context: serde_json::Value| {
        request(&["reaper"], &format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-reaper/reap"), action, &alices_box, context)
    };
    let webhooks = |action: &str, resource: &str| {
        // A box's tags are in the context of an action on a box.
        let context = if action == "ec2:StopInstances" { owned_by("preview") } else { serde_json::json!({}) };
        request(&["webhooks"], &format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-webhooks/callback"), action, resource, context)
    };
    let shared = serde_json::json!({"ec2:ResourceTag/workstation:owner": "alice", "ec2:ResourceTag/workstation:shareable": "true"});
    let interface_in = |subnet: &str| serde_json::json!({"ec2:Subnet": arn("subnet", subnet)});
    check(&[
        ("allow", "alice stops her box", engineer("alice", "ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "bob stops alice's box", engineer("bob", "ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "bob starts alice's box", engineer("bob", "ec2:StartInstances", alices_box.clone(), owned_by("alice"))),
        ("allow", "bob starts alice's box she made shareable", engineer("bob", "ec2:StartInstances", alices_box.clone(), shared.clone())),
        ("deny", "bob stops alice's shareable box", engineer("bob", "ec2:StopInstances", alices_box.clone(), shared)),
        ("deny", "bob makes alice's box shareable", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:shareable"]))),
        ("deny", "bob terminates alice's box", engineer("bob", "ec2:TerminateInstances", alices_box.clone(), owned_by("alice"))),
        ("allow", "alice keeps her box", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:keep-until"]))),
        ("deny", "bob tags alice's box", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:keep-until"]))),
        ("allow", "alice's start records her box's hours", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:usage"]))),
        ("deny", "bob rewrites alice's hours", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:usage"]))),
        (
            "allow",
            "alice records her box's bring-up and manifest",
            engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:bring-up", "workstation:manifest-hash"])),
        ),
        ("deny", "bob records a bring-up on alice's box", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:bring-up"]))),
        ("deny", "alice forges activity", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:last-active"]))),
        ("deny", "alice gives her box to bob", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:owner"]))),
        ("deny", "alice rewrites her box's host key", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:host-key"]))),
        (
            "deny",
            "alice writes a tag nothing reads",
            engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["Name", "workstation:keep-until"])),
        ),
        ("allow", "bob launches his own box", engineer("bob", "ec2:RunInstances", arn("instance", "*"), launch("bob", "m7i.xlarge"))),
        ("deny", "bob launches a box as alice's", engineer("bob", "ec2:RunInstances", arn("instance", "*"), launch("alice", "m7i.xlarge"))),
        ("deny", "bob launches with alice's key pair", engineer("bob", "ec2:RunInstances", arn("key-pair", "workstation.alice.ab12"), serde_json::json!({}))),
        ("allow", "bob launches with his key pair", engineer("bob", "ec2:RunInstances", arn("key-pair", "workstation.bob.ab12"), serde_json::json!({}))),
        ("allow", "a launch makes its interface in our subnet", engineer("bob", "ec2:RunInstances", arn("network-interface", "*"), interface_in("subnet-1"))),
        (
            "deny",
            "a launch attaches an interface of another subnet",
            engineer("bob", "ec2:RunInstances", arn("network-interface", "eni-1"), interface_in("subnet-9")),
        ),
        ("allow", "a launch from this account's image", engineer("bob", "ec2:RunInstances", arn("image", "ami-1"), serde_json::json!({"ec2:Owner": ACCOUNT}))),
        (
            "deny",
            "a launch from a stranger's image",
            engineer("bob", "ec2:RunInstances", arn("image", "ami-2"), serde_json::json!({"ec2:Owner": "999988887777"})),
        ),
        ("allow", "alice imports her key", engineer("alice", "ec2:ImportKeyPair", arn("key-pair", "workstation.alice.ab12"), launch_tag("alice"))),
        ("deny", "bob squats alice's key-pair name", engineer("bob", "ec2:ImportKeyPair", arn("key-pair", "workstation.alice.ab12"), launch_tag("bob"))),
        ("deny", "bob imports a pair tagged as alice's", engineer("bob", "ec2:ImportKeyPair", arn("key-pair", "workstation.bob.ab12"), launch_tag("alice"))),
        ("allow", "alice reads a seed", engineer("alice", "s3:GetObject", "arn:aws:s3:::workstation-seeds/prod.sql".into(), serde_json::json!({}))),
        ("allow", "a box publishes its host key", on_box("ec2:CreateTags", &alices_box, Some(&["workstation:host-key"]))),
        ("allow", "a box stops itself", on_box("ec2:StopInstances", &alices_box, None)),
        ("deny", "a box stops another", on_box("ec2:StopInstances", &arn("instance", "i-other"), None)),
        ("deny", "a box tags another", on_box("ec2:CreateTags", &arn("instance", "i-other"), Some(&["workstation:last-active"]))),
        ("deny", "a box re-labels its owner", on_box("ec2:CreateTags", &alices_box, Some(&["workstation:owner"]))),
        ("deny", "a box reads the region's tags", on_box("ec2:DescribeTags", "*", None)),
        ("allow", "the reaper stops a box", reaper("ec2:StopInstances", owned_by("alice"))),
        ("deny", "the reaper stops a stranger's instance", reaper("ec2:StopInstances", serde_json::json!({}))),
        ("deny", "the reaper extends a keep", reaper("ec2:CreateTags", tags_on("alice", &["workstation:keep-until"]))),
        ("allow", "the reaper records a team box's hours as it starts it", reaper("ec2:CreateTags", tags_on("team-a", &["workstation:usage"]))),
        (
            "allow",
            "the reaper starts a team box in its working hours",
            reaper(
                "ec2:StartInstances",
                serde_json::json!({"ec2:ResourceTag/workstation:owner": "payments-ci", "ec2:ResourceTag/workstation:team": "payments"}),
            ),
        ),
        ("deny", "the reaper starts an engineer's box", reaper("ec2:StartInstances", owned_by("alice"))),
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
        ("allow", "the webhook endpoint lists the boxes", webhooks("ec2:DescribeInstances", "*")),
        ("allow", "the webhook endpoint reads the deployed manifest", webhooks("s3:GetObject", "arn:aws:s3:::workstation-seeds/manifest/workstation.toml")),
        ("deny", "the webhook endpoint reads a seed snapshot", webhooks("s3:GetObject", "arn:aws:s3:::workstation-seeds/prod.sql")),
        ("deny", "the webhook endpoint stops a preview", webhooks("ec2:StopInstances", &alices_box)),
        ("deny", "the webhook endpoint pushes a key to a team box", webhooks("ec2-instance-connect:SendSSHPublicKey", &alices_box)),
    ]);
}

/// An engineer of `team` (None: her identity names no team).
fn member(who: &str, team: Option<&str>, action: &str, resource: String, context: serde_json::Value) -> serde_json::Value {
    let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/engineers/{who}");
    let mut tags = vec![("workstation-owner", who)];
    tags.extend(team.map(|t| ("team", t)));
    request(&["engineer"], &principal, action, &resource, with_tags(context, &tags))
}

/// Team boxes (`workstation env`): a member of the box's team may push her
/// key to it (EC2 Instance Connect) or open a session to its sshd; nobody
/// else may, and only members make a box tagged with their team.
#[test]
fn only_a_teams_members_reach_or_make_its_team_boxes() {
    let team_box = arn("instance", "i-payments-staging");
    let of_team = |t: &str| serde_json::json!({"aws:ResourceTag/workstation:team": t, "ec2:ResourceTag/workstation:owner": "payments-ci"});
    let push =
        |who: &str, team: Option<&str>, context: serde_json::Value| member(who, team, "ec2-instance-connect:SendSSHPublicKey", team_box.clone(), context);
    let session = |who: &str, team: Option<&str>, t: &str| {
        member(
            who,
            team,
            "ssm:StartSession",
            team_box.clone(),
            serde_json::json!({"ssm:resourceTag/workstation:team": t, "ssm:resourceTag/workstation:owner": "payments-ci"}),
        )
    };
    let launch_for = |who: &str, team: Option<&str>, tagged: Option<&str>| {
        let mut context = launch(who, "t3.large");
        if let Some(t) = tagged {
            context["aws:RequestTag/workstation:team"] = serde_json::json!(t);
        }
        member(who, team, "ec2:RunInstances", arn("instance", "*"), context)
    };
    let retag = |who: &str, team: Option<&str>, to: &str| {
        let context = serde_json::json!({
            "ec2:ResourceTag/workstation:owner": who,
            "aws:TagKeys": ["workstation:team"],
            "aws:RequestTag/workstation:team": to,
        });
        member(who, team, "ec2:CreateTags", arn("instance", "i-own"), context)
    };
    check(&[
        ("allow", "alice of payments pushes her key to payments' box", push("alice", Some("payments"), of_team("payments"))),
        ("deny", "sam of search pushes his key to payments' box", push("sam", Some("search"), of_team("payments"))),
        ("deny", "carol of no team pushes her key to payments' box", push("carol", None, of_team("payments"))),
        ("deny", "alice pushes her key to a box of no team", push("alice", Some("payments"), owned_by("bob"))),
        ("allow", "alice of payments opens a session to payments' box", session("alice", Some("payments"), "payments")),
        ("deny", "sam of search opens a session to payments' box", session("sam", Some("search"), "payments")),
        ("allow", "payments' CI launches payments' team box", launch_for("payments-ci", Some("payments"), Some("payments"))),
        ("deny", "sam of search launches a box tagged as payments'", launch_for("sam", Some("search"), Some("payments"))),
        ("deny", "alice of payments launches her own box tagged as payments' environment", launch_for("alice", Some("payments"), Some("payments"))),
        ("deny", "carol of no team launches a box tagged as payments'", launch_for("carol", None, Some("payments"))),
        ("allow", "carol of no team launches her own box", launch_for("carol", None, None)),
        ("deny", "sam tags his own box as payments'", retag("sam", Some("search"), "payments")),
        ("deny", "alice of payments tags her own box as payments' after launch", retag("alice", Some("payments"), "payments")),
    ]);
}

/// Data volumes and upgrades: an engineer's own volume to her own box, her
/// own box's root from an image she could launch; never a colleague's.
#[test]
fn data_volumes_and_upgrades_stay_with_their_owner() {
    let (alices_box, alices_volume) = (arn("instance", "i-alice"), arn("volume", "vol-alice"));
    let from_image = |owner: &str| serde_json::json!({"ec2:Owner": owner});
    check(&[
        ("allow", "alice reattaches her kept volume", engineer("alice", "ec2:AttachVolume", alices_volume.clone(), owned_by("alice"))),
        ("allow", "to her own box", engineer("alice", "ec2:AttachVolume", alices_box.clone(), owned_by("alice"))),
        ("deny", "bob attaches alice's volume", engineer("bob", "ec2:AttachVolume", alices_volume.clone(), owned_by("alice"))),
        ("deny", "bob attaches a volume to alice's box", engineer("bob", "ec2:AttachVolume", alices_box.clone(), owned_by("alice"))),
        ("allow", "alice purges her kept data", engineer("alice", "ec2:DeleteVolume", alices_volume.clone(), owned_by("alice"))),
        ("deny", "bob deletes alice's data", engineer("bob", "ec2:DeleteVolume", alices_volume.clone(), owned_by("alice"))),
        ("allow", "alice upgrades her box", engineer("alice", "ec2:CreateReplaceRootVolumeTask", alices_box.clone(), owned_by("alice"))),
        ("allow", "replacing its root volume", engineer("alice", "ec2:CreateReplaceRootVolumeTask", arn("volume", "vol-root"), owned_by("alice"))),
        ("deny", "bob replaces alice's root volume", engineer("bob", "ec2:CreateReplaceRootVolumeTask", arn("volume", "vol-root"), owned_by("alice"))),
        ("allow", "from this account's image", engineer("alice", "ec2:CreateReplaceRootVolumeTask", arn("image", "ami-1"), from_image(ACCOUNT))),
        (
            "allow",
            "making a replacement task",
            engineer("alice", "ec2:CreateReplaceRootVolumeTask", arn("replace-root-volume-task", "*"), serde_json::json!({})),
        ),
        ("deny", "bob replaces alice's root", engineer("bob", "ec2:CreateReplaceRootVolumeTask", alices_box.clone(), owned_by("alice"))),
        (
            "deny",
            "alice's root from a stranger's image",
            engineer("alice", "ec2:CreateReplaceRootVolumeTask", arn("image", "ami-2"), from_image("999988887777")),
        ),
        ("deny", "alice's root from a snapshot", engineer("alice", "ec2:CreateReplaceRootVolumeTask", arn("snapshot", "snap-1"), serde_json::json!({}))),
        ("allow", "alice records the image her box runs", engineer("alice", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:image-id"]))),
        ("deny", "bob records an image on alice's box", engineer("bob", "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:image-id"]))),
        (
            "allow",
            "a preview deletes its own volume",
            preview(
                7,
                "ec2:DeleteVolume",
                arn("volume", "vol-7"),
                serde_json::json!({"ec2:ResourceTag/workstation:owner": "preview", "ec2:ResourceTag/workstation:preview": "7"}),
            ),
        ),
        (
            "deny",
            "a preview deletes another pull request's volume",
            preview(
                7,
                "ec2:DeleteVolume",
                arn("volume", "vol-8"),
                serde_json::json!({"ec2:ResourceTag/workstation:owner": "preview", "ec2:ResourceTag/workstation:preview": "8"}),
            ),
        ),
        ("deny", "a preview deletes alice's data", preview(7, "ec2:DeleteVolume", alices_volume, owned_by("alice"))),
    ]);
}

/// A request from a box of `owner`'s, signed with its role's credentials
/// (the role's owner tag is the session's principal tag).
fn from_box(owner: &str, action: &str, resource: &str) -> serde_json::Value {
    let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-box-{owner}/i-0123456789abcdef0");
    request(&["box", "box_secrets"], &principal, action, resource, with_tags(serde_json::json!({}), &[("workstation-owner", owner)]))
}

#[test]
fn a_box_reads_the_shared_secrets_and_its_owners_and_engineers_write_only_their_own() {
    let parameter = |path: &str| format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/workstation/{path}");
    let secret = |name: &str| format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:workstation/{name}-AbCdEf");
    let role = |owner: &str| format!("arn:aws:iam::{ACCOUNT}:role/workstation-box-{owner}");
    let shared_box = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-box/i-0123456789abcdef0");
    check(&[
        ("allow", "bob's box reads a shared parameter", from_box("bob", "ssm:GetParameter", &parameter("shared/stripe"))),
        ("allow", "bob's box reads his own", from_box("bob", "ssm:GetParameter", &parameter("bob/github_token"))),
        ("deny", "bob's box reads alice's", from_box("bob", "ssm:GetParameter", &parameter("alice/github_token"))),
        ("deny", "bob's box reads outside /workstation", from_box("bob", "ssm:GetParameter", &format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/prod/db"))),
        ("allow", "bob's box reads a shared secret", from_box("bob", "secretsmanager:GetSecretValue", &secret("shared/plaid"))),
        ("deny", "bob's box reads alice's secret", from_box("bob", "secretsmanager:GetSecretValue", &secret("alice/plaid"))),
        ("deny", "a box lists alice's path", from_box("bob", "ssm:GetParametersByPath", &parameter("alice"))),
        ("deny", "a box writes a parameter", from_box("bob", "ssm:PutParameter", &parameter("bob/x"))),
        (
            "allow",
            "the shared role reads shared values",
            request(&["box", "box_secrets"], &shared_box, "ssm:GetParameter", &parameter("shared/stripe"), serde_json::json!({})),
        ),
        (
            "deny",
            "the shared role, without an owner tag, reads no owner's",
            request(&["box", "box_secrets"], &shared_box, "ssm:GetParameter", &parameter("alice/github_token"), serde_json::json!({})),
        ),
        ("allow", "alice sets her own value", engineer("alice", "ssm:PutParameter", parameter("alice/github_token"), serde_json::json!({}))),
        ("allow", "alice lists her own names", engineer("alice", "ssm:GetParametersByPath", parameter("alice"), serde_json::json!({}))),
        ("allow", "alice deletes her own value", engineer("alice", "ssm:DeleteParameter", parameter("alice/github_token"), serde_json::json!({}))),
        ("deny", "alice overwrites bob's", engineer("alice", "ssm:PutParameter", parameter("bob/github_token"), serde_json::json!({}))),
        ("deny", "alice writes a shared one", engineer("alice", "ssm:PutParameter", parameter("shared/stripe"), serde_json::json!({}))),
        (
            "deny",
            "an engineer tagged \"shared\" writes the shared ones",
            engineer("shared", "ssm:PutParameter", parameter("shared/stripe"), serde_json::json!({})),
        ),
        ("deny", "alice lists bob's names", engineer("alice", "ssm:GetParametersByPath", parameter("bob"), serde_json::json!({}))),
        ("deny", "alice reads a value herself", engineer("alice", "ssm:GetParameter", parameter("alice/github_token"), serde_json::json!({}))),
        (
            "allow",
            "alice launches with her own box role",
            engineer("alice", "iam:PassRole", role("alice"), serde_json::json!({"iam:PassedToService": "ec2.amazonaws.com"})),
        ),
        (
            "deny",
            "alice launches with bob's box role",
            engineer("alice", "iam:PassRole", role("bob"), serde_json::json!({"iam:PassedToService": "ec2.amazonaws.com"})),
        ),
        (
            "allow",
            "a preview launches with the preview owner's role",
            preview(7, "iam:PassRole", role("preview"), serde_json::json!({"iam:PassedToService": "ec2.amazonaws.com"})),
        ),
        (
            "deny",
            "a preview launches with alice's role",
            preview(7, "iam:PassRole", role("alice"), serde_json::json!({"iam:PassedToService": "ec2.amazonaws.com"})),
        ),
    ]);
}

/// A preview run (the session of one pull request, here 7) reaches its own
/// box, seeds made for previews and its own records, and nothing else.
#[test]
fn a_preview_run_reaches_only_its_own_pull_request() {
    let alices_box = arn("instance", "i-alice");
    let pr = |n: &str| serde_json::json!({"ec2:ResourceTag/workstation:owner": "preview", "ec2:ResourceTag/workstation:preview": n});
    let pr_tags = |n: &str, keys: &[&str]| serde_json::json!({"ec2:ResourceTag/workstation:owner": "preview", "ec2:ResourceTag/workstation:preview": n, "aws:TagKeys": keys});
    let volume = |gib: u32| serde_json::json!({"aws:RequestTag/workstation:owner": "preview", "ec2:VolumeSize": gib.to_string()});
    let launch = |n: &str, instance_type: &str| serde_json::json!({"aws:RequestTag/workstation:owner": "preview", "aws:RequestTag/workstation:preview": n, "ec2:InstanceType": instance_type});
    let seed = |key: &str| format!("arn:aws:s3:::workstation-seeds/{key}");
    let dns = |names: &[&str], types: &[&str]| {
        let context = serde_json::json!({"route53:ChangeResourceRecordSetsNormalizedRecordNames": names, "route53:ChangeResourceRecordSetsRecordTypes": types});
        let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-preview/pr-7");
        let context = with_tags(context, &[("workstation-owner", "preview"), ("workstation-preview", "7")]);
        request(&["preview_dns"], &principal, "route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/Zpreview", context)
    };
    let shared = serde_json::json!({"ec2:ResourceTag/workstation:owner": "alice", "ec2:ResourceTag/workstation:shareable": "true"});
    let session_on = |n: &str| serde_json::json!({"ssm:resourceTag/workstation:owner": "preview", "ssm:resourceTag/workstation:preview": n});
    let own = arn("instance", "i-pr7");
    let other = arn("instance", "i-pr5");
    check(&[
        ("allow", "PR 7 launches its box", preview(7, "ec2:RunInstances", arn("instance", "*"), launch("7", "t3.medium"))),
        ("deny", "PR 7 launches a type outside the list", preview(7, "ec2:RunInstances", arn("instance", "*"), launch("7", "p5.48xlarge"))),
        ("allow", "PR 7 launches a 30 GiB volume", preview(7, "ec2:RunInstances", arn("volume", "*"), volume(30))),
        ("deny", "PR 7 launches a 16 TiB volume", preview(7, "ec2:RunInstances", arn("volume", "*"), volume(16384))),
        ("deny", "PR 7 launches a box as PR 5's", preview(7, "ec2:RunInstances", arn("instance", "*"), launch("5", "t3.medium"))),
        (
            "deny",
            "PR 7 launches a box tagged as payments' team box",
            preview(7, "ec2:RunInstances", arn("instance", "*"), {
                let mut c = launch("7", "t3.medium");
                c["aws:RequestTag/workstation:team"] = serde_json::json!("payments");
                c
            }),
        ),
        (
            "deny",
            "PR 7 launches a box as alice's",
            preview(
                7,
                "ec2:RunInstances",
                arn("instance", "*"),
                serde_json::json!({"aws:RequestTag/workstation:owner": "alice", "aws:RequestTag/workstation:preview": "7", "ec2:InstanceType": "t3.medium"}),
            ),
        ),
        ("allow", "PR 7 records its commit", preview(7, "ec2:CreateTags", own.clone(), pr_tags("7", &["workstation:ref", "workstation:expires"]))),
        ("deny", "PR 7 moves PR 5's expiry", preview(7, "ec2:CreateTags", other.clone(), pr_tags("5", &["workstation:expires"]))),
        ("deny", "PR 7 tags PR 5's commit", preview(7, "ec2:CreateTags", other.clone(), pr_tags("5", &["workstation:ref"]))),
        ("deny", "PR 7 rewrites a host key", preview(7, "ec2:CreateTags", own.clone(), pr_tags("7", &["workstation:host-key"]))),
        ("deny", "PR 7 keeps its box forever", preview(7, "ec2:CreateTags", own.clone(), pr_tags("7", &["workstation:keep-until"]))),
        ("allow", "PR 7 takes its box down", preview(7, "ec2:TerminateInstances", own.clone(), pr("7"))),
        ("deny", "PR 7 terminates PR 5's box", preview(7, "ec2:TerminateInstances", other.clone(), pr("5"))),
        ("deny", "PR 7 stops PR 5's box", preview(7, "ec2:StopInstances", other, pr("5"))),
        ("deny", "a preview run starts alice's shareable box", preview(7, "ec2:StartInstances", alices_box.clone(), shared)),
        ("deny", "a preview run stops alice's box", preview(7, "ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "a preview run terminates alice's box", preview(7, "ec2:TerminateInstances", alices_box.clone(), owned_by("alice"))),
        (
            "deny",
            "a preview run tags alice's box as an expired preview",
            preview(7, "ec2:CreateTags", alices_box.clone(), tags_on("alice", &["workstation:expires"])),
        ),
        ("allow", "a preview run reads a preview seed", preview(7, "s3:GetObject", seed("previews/app.sql"), serde_json::json!({}))),
        ("deny", "a preview run reads production's seed", preview(7, "s3:GetObject", seed("prod.sql"), serde_json::json!({}))),
        ("allow", "PR 7 names its preview in the zone", dns(&["api.pr-7.dev.example.com", "web.pr-7.dev.example.com"], &["A"])),
        ("deny", "PR 7 points PR 5's name at its box", dns(&["api.pr-5.dev.example.com"], &["A"])),
        ("deny", "PR 7 takes over an engineer's hostname", dns(&["api.pr-7.dev.example.com", "api.dev.example.com"], &["A"])),
        ("deny", "PR 7 takes over PR 17's names", dns(&["api.pr-17.dev.example.com"], &["A"])),
        ("deny", "PR 7 writes another record type", dns(&["api.pr-7.dev.example.com"], &["TXT"])),
        ("allow", "PR 7 opens a session to its box", preview(7, "ssm:StartSession", own.clone(), session_on("7"))),
        ("deny", "PR 7 opens a session to PR 5's box", preview(7, "ssm:StartSession", arn("instance", "i-pr5"), session_on("5"))),
        (
            "deny",
            "a preview run opens a session to alice's box",
            preview(7, "ssm:StartSession", alices_box.clone(), serde_json::json!({"ssm:resourceTag/workstation:owner": "alice"})),
        ),
    ]);
}

/// The way in: a GitHub job of the approved environment gets the CI role,
/// which can only become one pull request's session.
#[test]
fn only_the_approved_environment_becomes_one_pull_requests_session() {
    let docs = rendered();
    // The OIDC keys are not in the simulator's data: the trust's own text.
    let trust = &docs["preview_ci_assume"]["Statement"][0];
    assert_eq!(as_list(&trust["Action"]), ["sts:AssumeRoleWithWebIdentity"]);
    let equals = &trust["Condition"]["StringEquals"];
    assert_eq!(trust["Condition"].as_object().unwrap().len(), 1, "only exact matches, no StringLike: {trust}");
    assert_eq!(as_list(&equals["token.actions.githubusercontent.com:sub"]), ["repo:org/repo:environment:preview"], "{trust}");
    assert_eq!(as_list(&equals["token.actions.githubusercontent.com:aud"]), ["sts.amazonaws.com"]);

    let ci = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-preview-ci/run");
    let preview_role = format!("arn:aws:iam::{ACCOUNT}:role/workstation-preview");
    let tag = |tags: &[(&str, &str)]| {
        let mut context = serde_json::json!({"aws:TagKeys": tags.iter().map(|(k, _)| *k).collect::<Vec<_>>()});
        for (k, v) in tags {
            context[format!("aws:RequestTag/{k}")] = serde_json::json!(v);
        }
        context
    };
    let trusted = |action: &str, principal: &str, context: serde_json::Value| {
        let mut r = request(&["preview_ci"], principal, action, &preview_role, context);
        r["resource_policy"] = serde_json::json!("preview_assume");
        r
    };
    check(&[
        ("allow", "the CI role becomes PR 7", trusted("sts:AssumeRole", &ci, tag(&[("workstation-preview", "7")]))),
        ("allow", "the CI role names PR 7 in the session", trusted("sts:TagSession", &ci, tag(&[("workstation-preview", "7")]))),
        ("deny", "the CI role's session without a pull request", trusted("sts:AssumeRole", &ci, serde_json::json!({}))),
        ("deny", "the CI role names another owner", trusted("sts:TagSession", &ci, tag(&[("workstation-preview", "7"), ("workstation-owner", "alice")]))),
        ("deny", "the CI role passes a pattern as the pull request", trusted("sts:TagSession", &ci, tag(&[("workstation-preview", "*")]))),
        ("deny", "the CI role passes a name as the pull request", trusted("sts:TagSession", &ci, tag(&[("workstation-preview", "5.dev")]))),
        (
            "deny",
            "an engineer becomes a preview session",
            trusted("sts:AssumeRole", &format!("arn:aws:sts::{ACCOUNT}:assumed-role/engineers/alice"), tag(&[("workstation-preview", "7")])),
        ),
    ]);
}

/// The publisher registers images only from snapshots it made and tags
/// only images it registered.
#[test]
fn the_publisher_cannot_slip_in_a_foreign_image() {
    let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/publisher/ci");
    let publisher = |action: &str, resource: String, context: serde_json::Value| request(&["publisher"], &principal, action, &resource, context);
    let inputs = "workstation:image-inputs";
    check(&[
        (
            "allow",
            "it starts a tagged snapshot",
            publisher(
                "ebs:StartSnapshot",
                arn("snapshot", "*"),
                serde_json::json!({"aws:RequestTag/workstation:image-inputs": "abc", "aws:TagKeys": [inputs]}),
            ),
        ),
        ("deny", "it starts an untagged snapshot", publisher("ebs:StartSnapshot", arn("snapshot", "*"), serde_json::json!({}))),
        (
            "allow",
            "it writes into its snapshot",
            publisher("ebs:PutSnapshotBlock", arn("snapshot", "snap-1"), serde_json::json!({"aws:ResourceTag/workstation:image-inputs": "abc"})),
        ),
        ("deny", "it writes into a foreign snapshot", publisher("ebs:PutSnapshotBlock", arn("snapshot", "snap-2"), serde_json::json!({}))),
        (
            "allow",
            "it registers from its snapshot",
            publisher("ec2:RegisterImage", arn("snapshot", "snap-1"), serde_json::json!({"ec2:ResourceTag/workstation:image-inputs": "abc"})),
        ),
        ("deny", "it registers from an untagged snapshot", publisher("ec2:RegisterImage", arn("snapshot", "snap-2"), serde_json::json!({}))),
        (
            "allow",
            "it tags an image as it registers it",
            publisher("ec2:CreateTags", arn("image", "ami-1"), serde_json::json!({"ec2:CreateAction": "RegisterImage"})),
        ),
        (
            "allow",
            "it tags its image again",
            publisher("ec2:CreateTags", arn("image", "ami-1"), serde_json::json!({"ec2:ResourceTag/workstation:image-inputs": "abc"})),
        ),
        ("deny", "it tags a foreign image", publisher("ec2:CreateTags", arn("image", "ami-2"), serde_json::json!({}))),
        ("deny", "it tags a snapshot", publisher("ec2:CreateTags", arn("snapshot", "snap-2"), serde_json::json!({}))),
    ]);
}

/// The platform's guardrails and Session Manager: an engineer launches only
/// the listed instance types and disks up to the limit, and opens sessions
/// only to her own boxes, only with the SSH document; the same policy holds
/// for an Identity Center session (the permission set references it and
/// maps the directory's user name to the owner tag).
#[test]
fn guardrails_and_session_manager_keep_engineers_to_their_own() {
    let alices_box = arn("instance", "i-alice");
    let volume = |o: &str, gib: u32| serde_json::json!({"aws:RequestTag/workstation:owner": o, "ec2:VolumeSize": gib.to_string()});
    let session = |who: &str, resource: String, context: serde_json::Value| {
        let mut context = context;
        context["ssm:SessionDocumentAccessCheck"] = serde_json::json!("true");
        engineer(who, "ssm:StartSession", resource, context)
    };
    let on = |o: &str| serde_json::json!({"ssm:resourceTag/workstation:owner": o});
    let ssh_document = format!("arn:aws:ssm:us-east-1:{ACCOUNT}:document/AWS-StartSSHSession");
    let shell_document = format!("arn:aws:ssm:us-east-1:{ACCOUNT}:document/SSM-SessionManagerRunShell");
    // Identity Center's role for the permission set, its session named
    // after the user, the owner tag from attributes for access control.
    let sso = |action: &str, resource: String, context: serde_json::Value| {
        let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_workstation-engineer_0123abcd/alice@example.com");
        request(&["engineer"], &principal, action, &resource, with_tags(context, &[("workstation-owner", "alice")]))
    };
    let session_of = |userid: &str, starter: &str| {
        let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/engineers/{userid}");
        let mut context = with_tags(serde_json::json!({"ssm:resourceTag/aws:ssmmessages:session-id": starter}), &[("workstation-owner", userid)]);
        context["aws:userid"] = serde_json::json!(format!("AROAEXAMPLE:{userid}"));
        request(&["engineer"], &principal, "ssm:TerminateSession", &format!("arn:aws:ssm:us-east-1:{ACCOUNT}:session/{starter}-0abc"), context)
    };
    check(&[
        ("allow", "alice launches an allowed type", engineer("alice", "ec2:RunInstances", arn("instance", "*"), launch("alice", "m7i.2xlarge"))),
        ("deny", "alice launches a p5.48xlarge", engineer("alice", "ec2:RunInstances", arn("instance", "*"), launch("alice", "p5.48xlarge"))),
        ("allow", "alice launches a 200 GiB disk", engineer("alice", "ec2:RunInstances", arn("volume", "*"), volume("alice", 200))),
        ("deny", "alice launches a 10 TB disk", engineer("alice", "ec2:RunInstances", arn("volume", "*"), volume("alice", 10240))),
        ("deny", "alice launches a disk as bob's", engineer("alice", "ec2:RunInstances", arn("volume", "*"), volume("bob", 50))),
        ("allow", "alice opens a session to her box", session("alice", alices_box.clone(), on("alice"))),
        ("deny", "bob opens a session to alice's box", session("bob", alices_box.clone(), on("alice"))),
        ("allow", "alice's session uses the SSH document", session("alice", ssh_document, serde_json::json!({}))),
        ("deny", "alice's session uses a shell document", session("alice", shell_document, serde_json::json!({}))),
        ("allow", "alice ends her session", session_of("alice", "AROAEXAMPLE:alice")),
        ("deny", "alice ends bob's session", session_of("alice", "AROAEXAMPLE:bob")),
        ("allow", "alice through Identity Center stops her box", sso("ec2:StopInstances", alices_box.clone(), owned_by("alice"))),
        ("deny", "alice through Identity Center stops bob's box", sso("ec2:StopInstances", arn("instance", "i-bob"), owned_by("bob"))),
        ("deny", "alice through Identity Center launches a p5.48xlarge", sso("ec2:RunInstances", arn("instance", "*"), launch("alice", "p5.48xlarge"))),
    ]);

    // The permission set carries exactly this policy, and the owner tag
    // comes from the directory's user name.
    let identity = hcl("identity.tf");
    let resource = |kind: &str, name: &str| {
        identity["resource"].as_array().unwrap().iter().find_map(|r| r.get(format!("\"{kind}\""))).unwrap()[format!("\"{name}\"")].clone()
    };
    let attach = resource("aws_ssoadmin_customer_managed_policy_attachment", "engineer");
    assert_eq!(attach["customer_managed_policy_reference"][0]["name"], "${aws_iam_policy.engineer.name}", "{attach}");
    let attributes = &resource("aws_ssoadmin_instance_access_control_attributes", "owner")["attribute"][0];
    assert_eq!(attributes["key"], "${var.owner_principal_tag}", "{attributes}");
    assert_eq!(attributes["value"][0]["source"], serde_json::json!(["${var.identity_center_owner_source}"]), "{attributes}");
    let variables = hcl("variables.tf");
    let source = variables["variable"].as_array().unwrap().iter().find_map(|v| v.get("\"identity_center_owner_source\"")).unwrap();
    assert_eq!(source["default"], "\"$${path:userName}\"", "{source}");
}

/// The break-glass policy reaches every owner's boxes, key pairs and
/// volumes, and nothing that is not workstation's.
#[test]
fn the_admin_policy_offboards_any_owner_and_nothing_else() {
    let admin = |action: &str, resource: String, context: serde_json::Value| {
        request(&["admin"], &format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-admin/platform"), action, &resource, context)
    };
    let marking = |o: &str, keys: &[&str]| serde_json::json!({"ec2:ResourceTag/workstation:owner": o, "aws:TagKeys": keys});
    check(&[
        ("allow", "it stops a leaver's box", admin("ec2:StopInstances", arn("instance", "i-1"), owned_by("leaver"))),
        ("allow", "it terminates a leaver's box", admin("ec2:TerminateInstances", arn("instance", "i-1"), owned_by("leaver"))),
        ("deny", "it terminates an instance that is not a box", admin("ec2:TerminateInstances", arn("instance", "i-db"), serde_json::json!({}))),
        ("allow", "it marks a box offboarded", admin("ec2:CreateTags", arn("instance", "i-1"), marking("leaver", &["workstation:offboarded-at"]))),
        ("deny", "it re-labels a box's owner", admin("ec2:CreateTags", arn("instance", "i-1"), marking("leaver", &["workstation:owner"]))),
        ("allow", "it deletes a leaver's key pair", admin("ec2:DeleteKeyPair", arn("key-pair", "workstation.leaver.ab12"), serde_json::json!({}))),
        ("deny", "it deletes another key pair", admin("ec2:DeleteKeyPair", arn("key-pair", "prod-bastion"), serde_json::json!({}))),
        ("allow", "it deletes a leaver's kept volume", admin("ec2:DeleteVolume", arn("volume", "vol-1"), owned_by("leaver"))),
        ("deny", "it deletes a database's volume", admin("ec2:DeleteVolume", arn("volume", "vol-db"), serde_json::json!({}))),
    ]);
}

/// The bill is the platform team's: Cost Explorer cannot be scoped to an
/// owner, so engineers read list prices only (`cost --estimate`, `status`).
#[test]
fn only_the_platform_reads_the_bill_and_everyone_reads_prices() {
    let platform = |action: &str| {
        request(&["cost_reader"], &format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-admin/platform"), action, "*", serde_json::json!({}))
    };
    check(&[
        ("allow", "the platform reads the month's bill", platform("ce:GetCostAndUsage")),
        ("allow", "the platform reads list prices", platform("pricing:GetProducts")),
        ("deny", "the platform's bill read changes no budget", platform("budgets:ModifyBudget")),
        ("allow", "alice reads list prices", engineer("alice", "pricing:GetProducts", "*".into(), serde_json::json!({}))),
        ("deny", "alice reads the account's bill", engineer("alice", "ce:GetCostAndUsage", "*".into(), serde_json::json!({}))),
        ("deny", "a preview run reads the bill", preview(7, "ce:GetCostAndUsage", "*".into(), serde_json::json!({}))),
    ]);
}

/// Boxes' queues (sqs stores) are named and tagged as their owner's: an
/// engineer makes, changes and deletes only hers, a box's services use only
/// its owner's, a preview run only its pull request's, the reaper deletes
/// only previews', and the admin any box's.
#[test]
fn queues_belong_to_their_owner_and_bobs_box_cannot_read_alices() {
    let queue = |name: &str| format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}");
    let tagged = |o: &str| serde_json::json!({"aws:ResourceTag/workstation:owner": o});
    let making = |o: &str| serde_json::json!({"aws:RequestTag/workstation:owner": o, "aws:TagKeys": ["workstation:owner", "workstation:name"]});
    let a_box = |owner: &str, action: &str, resource: String, context: serde_json::Value| {
        let principal = format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-box-{owner}/i-0123456789abcdef0");
        let context = if owner == "shared" { context } else { with_tags(context, &[("workstation-owner", owner)]) };
        request(&["box", "box_secrets", "box_queues"], &principal, action, &resource, context)
    };
    let reaper = |action: &str, resource: String, context: serde_json::Value| {
        request(&["reaper"], &format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-reaper/reap"), action, &resource, context)
    };
    let admin = |action: &str, resource: String, context: serde_json::Value| {
        request(&["admin"], &format!("arn:aws:sts::{ACCOUNT}:assumed-role/workstation-admin/platform"), action, &resource, context)
    };
    let pr = |n: &str| serde_json::json!({"aws:ResourceTag/workstation:owner": "preview", "aws:ResourceTag/workstation:preview": n});
    // A request on an existing queue of `owner`'s.
    let with_resource = |mut context: serde_json::Value, owner: &str| {
        context["aws:ResourceTag/workstation:owner"] = serde_json::json!(owner);
        context
    };
    let pr_making = |n: &str| serde_json::json!({"aws:RequestTag/workstation:owner": "preview", "aws:RequestTag/workstation:preview": n, "aws:TagKeys": ["workstation:owner", "workstation:name", "workstation:preview"]});
    let alices = queue("ws_alice_dev_emails");
    check(&[
        ("allow", "alice makes her box's queue", engineer("alice", "sqs:CreateQueue", alices.clone(), making("alice"))),
        ("allow", "alice tags it as hers while making it", engineer("alice", "sqs:TagQueue", alices.clone(), making("alice"))),
        ("deny", "alice makes her queue tagged as bob's", engineer("alice", "sqs:CreateQueue", alices.clone(), making("bob"))),
        ("deny", "alice re-tags bob's queue as hers", engineer("alice", "sqs:TagQueue", queue("ws_bob_dev_emails"), with_resource(making("alice"), "bob"))),
        (
            "deny",
            "alice untags bob's queue",
            engineer(
                "alice",
                "sqs:UntagQueue",
                queue("ws_bob_dev_emails"),
                serde_json::json!({"aws:ResourceTag/workstation:owner": "bob", "aws:TagKeys": ["workstation:owner"]}),
            ),
        ),
        ("allow", "alice redrives her queue", engineer("alice", "sqs:SetQueueAttributes", alices.clone(), tagged("alice"))),
        ("allow", "alice deletes her queue", engineer("alice", "sqs:DeleteQueue", alices.clone(), tagged("alice"))),
        ("deny", "alice deletes bob's queue", engineer("alice", "sqs:DeleteQueue", queue("ws_bob_dev_emails"), tagged("bob"))),
        ("deny", "alice deletes a queue with her prefix tagged bob's", engineer("alice", "sqs:DeleteQueue", alices.clone(), tagged("bob"))),
        ("deny", "alice reads messages herself", engineer("alice", "sqs:ReceiveMessage", alices.clone(), tagged("alice"))),
        ("allow", "alice lists queues (only \"*\" exists)", engineer("alice", "sqs:ListQueues", "*".into(), serde_json::json!({}))),
        ("allow", "alice's box receives from her queue", a_box("alice", "sqs:ReceiveMessage", alices.clone(), tagged("alice"))),
        ("allow", "alice's box sends to her queue", a_box("alice", "sqs:SendMessage", alices.clone(), tagged("alice"))),
        ("deny", "bob's box receives from alice's queue", a_box("bob", "sqs:ReceiveMessage", alices.clone(), tagged("alice"))),
        ("deny", "bob's box sends to alice's queue", a_box("bob", "sqs:SendMessage", alices.clone(), tagged("alice"))),
        (
            "deny",
            "bob's box receives from a queue named his but tagged alice's",
            a_box("bob", "sqs:ReceiveMessage", queue("ws_bob_dev_emails"), tagged("alice")),
        ),
        ("deny", "alice's box receives from a queue that is no box's", a_box("alice", "sqs:ReceiveMessage", queue("orders-prod"), tagged("alice"))),
        ("deny", "a box of the shared role receives from alice's queue", a_box("shared", "sqs:ReceiveMessage", alices.clone(), tagged("alice"))),
        ("deny", "alice's box deletes her queue", a_box("alice", "sqs:DeleteQueue", alices.clone(), tagged("alice"))),
        ("allow", "PR 7 makes its box's queue", preview(7, "sqs:CreateQueue", queue("ws_preview_pr-7_emails"), pr_making("7"))),
        ("deny", "PR 7 makes a queue tagged as PR 8's", preview(7, "sqs:CreateQueue", queue("ws_preview_pr-8_emails"), pr_making("8"))),
        ("allow", "PR 7 deletes its queue", preview(7, "sqs:DeleteQueue", queue("ws_preview_pr-7_emails"), pr("7"))),
        (
            "deny",
            "PR 7 re-tags PR 8's queue as its own",
            preview(
                7,
                "sqs:TagQueue",
                queue("ws_preview_pr-8_emails"),
                serde_json::json!({"aws:ResourceTag/workstation:owner": "preview", "aws:ResourceTag/workstation:preview": "8", "aws:RequestTag/workstation:owner": "preview", "aws:RequestTag/workstation:preview": "7", "aws:TagKeys": ["workstation:preview"]}),
            ),
        ),
        ("deny", "PR 7 re-tags alice's queue as its own", preview(7, "sqs:TagQueue", alices.clone(), with_resource(pr_making("7"), "alice"))),
        ("deny", "PR 7 deletes PR 8's queue", preview(7, "sqs:DeleteQueue", queue("ws_preview_pr-8_emails"), pr("8"))),
        ("deny", "PR 7 deletes alice's queue", preview(7, "sqs:DeleteQueue", alices.clone(), tagged("alice"))),
        ("allow", "the reaper deletes an expired preview's queue", reaper("sqs:DeleteQueue", queue("ws_preview_pr-7_emails"), pr("7"))),
        ("deny", "the reaper deletes alice's queue", reaper("sqs:DeleteQueue", alices.clone(), tagged("alice"))),
        ("deny", "the reaper deletes an untagged queue named like a preview's", reaper("sqs:DeleteQueue", queue("ws_preview_pr-7_x"), serde_json::json!({}))),
        ("allow", "the admin deletes a leaver's queue", admin("sqs:DeleteQueue", queue("ws_leaver_dev_emails"), tagged("leaver"))),
        ("deny", "the admin deletes a queue that is no box's", admin("sqs:DeleteQueue", queue("orders-prod"), tagged("leaver"))),
    ]);
}

/// terraform file `name` as python-hcl2 reads it.
fn hcl(name: &str) -> serde_json::Value {
    let path = repo_root().join("terraform").join(name);
    let script = "import hcl2, json, sys; json.dump(hcl2.load(open(sys.argv[1])), sys.stdout)";
    serde_json::from_str(&run_ok(Command::new(HCL2_PYTHON).args(["-c", script]).arg(&path))).unwrap()
}

#[test]
fn checkov_passes_and_every_skip_says_why() {
    let out = Command::new(CHECKOV)
        .args(["-d", "terraform", "--quiet", "--compact", "--skip-download", "-o", "json"])
        .current_dir(repo_root())
        .output()
        .expect("checkov (scripts/install-deps.sh installs it)");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("checkov output: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
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
