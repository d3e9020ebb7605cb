//! SQS stores, through the `workstation` binary. On a local preview: the
//! SQS server beside the services (moto's, as nobody) with the manifest's
//! queues and a dead-letter queue each, their URLs in every service's
//! environment, a message one service sends received by another, and the
//! queues made again when the server restarts. On AWS (moto behind the
//! SDK, boxes as namespaces): real queues per box, named after owner and
//! box, tagged, encrypted, redriven; gone after `destroy`, and after `reap`
//! ends an expired preview, while a queue that only looks like a box's is
//! left.
//!
//! Services talk SQS with curl's SigV4 (`--aws-sigv4`), as an SDK would.

use std::time::Duration;

use workstation_tests::repo::{commit, init, read, write};
use workstation_tests::{moto, wait_until, TestEnv};

/// A producer sends one message to `emails`; a consumer receives it. Both
/// retry (bounded) until the queue answers.
const SERVICES: &str = r#"
[services.producer]
command = '''sh -c 'cd "$DIR" && env | grep -E "^(WORKSTATION_SQS|AWS_ENDPOINT_URL_SQS)" | sort > urls.env; for i in $(seq 150); do curl -fsS --aws-sigv4 aws:amz:us-east-1:sqs --user "$KEY:$KEY" -d Action=SendMessage --data-urlencode "QueueUrl=$WORKSTATION_SQS_JOBS_EMAILS_URL" -d MessageBody=hello-from-producer "$WORKSTATION_SQS_JOBS_URL/" > sent.xml && break; sleep 0.2; done; exec sleep 100000' '''

[services.consumer]
command = '''sh -c 'cd "$DIR" && for i in $(seq 150); do curl -fsS --aws-sigv4 aws:amz:us-east-1:sqs --user "$KEY:$KEY" -d Action=ReceiveMessage -d WaitTimeSeconds=1 --data-urlencode "QueueUrl=$WORKSTATION_SQS_JOBS_EMAILS_URL" "$WORKSTATION_SQS_JOBS_URL/" > got.xml 2>/dev/null && grep -q hello-from-producer got.xml && cp got.xml received.xml && break; sleep 0.2; done; exec sleep 100000' '''

[stores.jobs]
kind = "sqs"
queues = ["emails", "payments.fifo"]
"#;

fn received(dir: &std::path::Path) -> String {
    wait_until(Duration::from_secs(60), || dir.join("received.xml").exists(), || format!("the consumer's message in {}", dir.display()));
    read(dir.join("received.xml"))
}

#[test]
fn a_local_box_runs_its_queues_beside_its_services() {
    let env = TestEnv::local();
    let manifest = format!(
        "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n[sync]\npath = \"src/app\"\n{}",
        SERVICES.replace("$DIR", "$WORKSTATION_BOX_ROOT/src/app").replace("$KEY", "local")
    );
    env.write_manifest(&manifest);
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("README"), "jobs\n");
    let c1 = commit(&repo, &["."], "one");

    let up = env.json(&["preview", "up", "--pr", "1", "--ref", &c1, "--repo", repo.to_str().unwrap()]);
    assert_eq!(up["healthy"], true, "{up:#}");
    let tree = std::path::PathBuf::from(up["path"].as_str().unwrap());
    assert!(received(&tree).contains("hello-from-producer"));
    let endpoint = "http://127.0.0.1:9324";
    let urls = read(tree.join("urls.env"));
    for line in [
        format!("AWS_ENDPOINT_URL_SQS={endpoint}"),
        format!("WORKSTATION_SQS_JOBS_URL={endpoint}"),
        format!("WORKSTATION_SQS_JOBS_EMAILS_URL={endpoint}/123456789012/emails"),
        format!("WORKSTATION_SQS_JOBS_EMAILS_DLQ_URL={endpoint}/123456789012/emails_dlq"),
        format!("WORKSTATION_SQS_JOBS_PAYMENTS_URL={endpoint}/123456789012/payments.fifo"),
        format!("WORKSTATION_SQS_JOBS_PAYMENTS_DLQ_URL={endpoint}/123456789012/payments_dlq.fifo"),
    ] {
        assert!(urls.lines().any(|l| l == line), "{line} not in\n{urls}");
    }

    // The server (moto, in memory) restarted: its start makes the queues
    // again, and the store is healthy only once they are there.
    let healthy = || {
        let services = env.json(&["services", "--box", "pr-1"]);
        let jobs = services.as_array().unwrap().iter().find(|p| p["name"] == "jobs").cloned().unwrap_or_else(|| panic!("{services:#}"));
        (jobs["kind"].as_str() == Some("store") && jobs["health"]["status"].as_str() == Some("healthy"), jobs)
    };
    assert!(healthy().0, "{}", healthy().1);
    env.ok(&["restart", "jobs", "--box", "pr-1"]);
    wait_until(Duration::from_secs(60), || healthy().0, || format!("the restarted store: {}", healthy().1));
    let redrive = env.ok(&[
        "ssh",
        "pr-1",
        "--",
        "curl -fsS --aws-sigv4 aws:amz:us-east-1:sqs --user local:local -d Action=GetQueueAttributes -d AttributeName.1=RedrivePolicy \
         --data-urlencode QueueUrl=http://127.0.0.1:9324/123456789012/payments.fifo http://127.0.0.1:9324/",
    ]);
    assert!(redrive.contains("payments_dlq.fifo") && redrive.contains("maxReceiveCount"), "{redrive}");

    env.ok(&["preview", "down", "1"]);
}

/// The queues' names, tags and attributes in moto, by name.
fn queues(client: &aws_sdk_sqs::Client) -> Vec<(String, std::collections::HashMap<String, String>)> {
    moto::block_on(async {
        let urls = client.list_queues().send().await.unwrap().queue_urls.unwrap_or_default();
        let mut out = Vec::new();
        for url in urls {
            let tags = client.list_queue_tags().queue_url(&url).send().await.unwrap().tags.unwrap_or_default();
            out.push((url.rsplit('/').next().unwrap().to_string(), tags));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    })
}

#[test]
fn a_box_in_aws_gets_its_own_tagged_queues_and_destroy_deletes_them() {
    let env = TestEnv::aws();
    let moto = env.moto.as_ref().unwrap();
    let sqs = moto.sqs_client();
    // The box shares this machine's filesystem: its services write here.
    let dir = env.root.path().join("services");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    env.write_manifest(&format!("{manifest}\n{}", SERVICES.replace("$DIR", dir.to_str().unwrap()).replace("$KEY", "testing")));
    // A queue that only looks like the box's (made by hand, other tags).
    moto::block_on(sqs.create_queue().queue_name("ws_tester_dev_lookalike").tags("workstation:owner", "mallory").send()).unwrap();

    // A queue with the box's name but someone else's tags is refused.
    let squat = moto::block_on(sqs.create_queue().queue_name("ws_tester_dev_emails_dlq").tags("workstation:owner", "mallory").send()).unwrap();
    let err = env.fails(&["create", "dev"]);
    assert!(err.contains("queue ws_tester_dev_emails_dlq exists but is not this box's") && err.contains("\"mallory\""), "{err}");
    moto::block_on(sqs.delete_queue().queue_url(squat.queue_url.unwrap()).send()).unwrap();
    let created = env.json(&["up", "dev"]);
    assert_eq!(created["healthy"], true, "{created:#}");
    let made = queues(&sqs);
    let names: Vec<&str> = made.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["ws_tester_dev_emails", "ws_tester_dev_emails_dlq", "ws_tester_dev_lookalike", "ws_tester_dev_payments.fifo", "ws_tester_dev_payments_dlq.fifo"]
    );
    for (name, tags) in made.iter().filter(|(n, _)| !n.contains("lookalike")) {
        assert_eq!(
            (tags.get("workstation:owner").map(String::as_str), tags.get("workstation:name").map(String::as_str)),
            (Some("tester"), Some("dev")),
            "{name}"
        );
    }
    let attributes = moto::block_on(
        sqs.get_queue_attributes()
            .queue_url(format!("{}/123456789012/ws_tester_dev_payments.fifo", moto.url))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send(),
    )
    .unwrap()
    .attributes
    .unwrap();
    let attribute = |k: &str| attributes.get(&aws_sdk_sqs::types::QueueAttributeName::from(k)).cloned().unwrap_or_default();
    assert_eq!((attribute("SqsManagedSseEnabled").as_str(), attribute("FifoQueue").as_str()), ("true", "true"));
    let redrive: serde_json::Value = serde_json::from_str(&attribute("RedrivePolicy")).unwrap();
    assert!(redrive["deadLetterTargetArn"].as_str().unwrap().ends_with(":ws_tester_dev_payments_dlq.fifo"), "{redrive}");
    assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), "5");

    // A second `up` finds them; the services sent and received through
    // the real (moto's) endpoint the box was given.
    let up = env.json(&["up", "dev"]);
    assert_eq!(up["healthy"], true, "{up:#}");
    assert_eq!(queues(&sqs).len(), 5);
    assert!(received(&dir).contains("hello-from-producer"));
    let urls = read(dir.join("urls.env"));
    let queue = format!("WORKSTATION_SQS_JOBS_EMAILS_URL={}/123456789012/ws_tester_dev_emails", moto.url);
    assert!(urls.lines().any(|l| l == queue) && !urls.contains("AWS_ENDPOINT_URL_SQS"), "{queue} not in\n{urls}");

    env.ok(&["destroy", "dev", "--yes"]);
    let left: Vec<String> = queues(&sqs).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["ws_tester_dev_lookalike"], "only the look-alike is left");
}

#[test]
fn reap_deletes_the_queues_of_a_preview_it_ends() {
    let env = TestEnv::aws_api_only();
    let moto = env.moto.as_ref().unwrap();
    let (ec2, sqs) = (moto.client(), moto.sqs_client());
    let id = workstation_tests::moto::launch_fleet(&ec2, 1).remove(0);
    let expired = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    moto::block_on(
        ec2.create_tags()
            .resources(&id)
            .tags(tag("workstation:owner", "tester"))
            .tags(tag("workstation:name", "pr-9"))
            .tags(tag("workstation:preview", "9"))
            .tags(tag("workstation:expires", &expired))
            .send(),
    )
    .unwrap();
    // The preview's queues, as `up` made them, and one of another box.
    for (name, box_name) in [("ws_tester_pr-9_emails", "pr-9"), ("ws_tester_pr-9_emails_dlq", "pr-9"), ("ws_tester_pr-9_x", "pr-99")] {
        moto::block_on(sqs.create_queue().queue_name(name).tags("workstation:owner", "tester").tags("workstation:name", box_name).send()).unwrap();
    }

    let done = env.json(&["reap", "--preview-owner", "tester"]);
    assert_eq!(done["report"]["terminated"], serde_json::json!([id]), "{done:#}");
    let left: Vec<String> = queues(&sqs).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["ws_tester_pr-9_x"]);
}
