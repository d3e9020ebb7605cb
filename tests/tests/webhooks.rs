//! Webhooks fanned out: the endpoint's handler (`workstation webhooks
//! deliver`, the code the Lambda runs) given a function URL event sends
//! the callback to every running preview, byte for byte with its signature
//! header; a stopped preview is not a target, a slow one costs only its own
//! timeout.

use std::time::{Duration, Instant};

use base64::Engine as _;
use workstation_tests::repo::{commit, init, write};
use workstation_tests::TestEnv;

/// Each preview records what reached /hooks/stripe; preview 3 answers only
/// after 10 s.
const MANIFEST: &str = r#"
[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"

[webhooks]
port = 8090
stripe = "/hooks/stripe"

[services.hooks]
command = "python3 -c \"$HOOKS\""
environment = { HOOKS = '''
import http.server, os, time
root = os.environ["WORKSTATION_BOX_ROOT"]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(root + "/hook.body", "wb") as f:
            f.write(body)
        with open(root + "/hook.meta", "w") as f:
            f.write(self.path + " " + self.headers["Stripe-Signature"] + "\n")
        if os.environ.get("WORKSTATION_PREVIEW") == "3":
            time.sleep(10)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
http.server.ThreadingHTTPServer(("0.0.0.0", 8090), H).serve_forever()
''' }
ports = [8090]
health = { tcp = 8090 }
"#;

#[test]
fn a_callback_reaches_every_running_preview_byte_for_byte_and_a_slow_one_delays_nobody() {
    let env = TestEnv::local();
    env.write_manifest(MANIFEST);
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("README"), "hooks\n");
    let c1 = commit(&repo, &["."], "one");
    for pr in ["1", "2", "3", "4"] {
        let up = env.json(&["preview", "up", "--pr", pr, "--ref", &c1, "--repo", repo.to_str().unwrap()]);
        assert_eq!(up["healthy"], true, "{up:#}");
    }
    env.ok(&["stop", "pr-4"]);

    let listed = env.json(&["webhooks", "--endpoint", "https://hooks.example/"]);
    let stripe = &listed["callbacks"][0];
    assert_eq!(
        (stripe["name"].as_str(), stripe["url"].as_str(), stripe["path"].as_str()),
        (Some("stripe"), Some("https://hooks.example/stripe"), Some("/hooks/stripe")),
        "{listed:#}"
    );
    let targets: Vec<&str> = stripe["targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().split(' ').next().unwrap()).collect();
    assert_eq!(targets, ["pr-1", "pr-2", "pr-3"], "running previews only: {listed:#}");

    // Stripe's signature covers the exact bytes: odd spacing, a non-UTF-8 byte.
    let body: &[u8] = b"{\n  \"id\": \"evt_1\",   \"type\": \"invoice.paid\", \"note\": \"\xff\xfe\"\n}";
    let signature = "t=1733480000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd";
    let event = serde_json::json!({
        "version": "2.0",
        "rawPath": "/stripe",
        "rawQueryString": "",
        "headers": {"stripe-signature": signature, "content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws", "x-forwarded-for": "203.0.113.9"},
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true,
        "requestContext": {"http": {"method": "POST", "path": "/stripe", "sourceIp": "203.0.113.9"}},
    });
    let event_file = env.root.path().join("event.json");
    std::fs::write(&event_file, event.to_string()).unwrap();

    let started = Instant::now();
    let out = env.json(&["webhooks", "deliver", "--event", event_file.to_str().unwrap(), "--timeout", "2s"])[0].clone();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(4500), "the slow box cost more than its timeout: {took:?}");
    assert_eq!(out["status"], 200, "{out:#}");
    let deliveries = out["deliveries"].as_array().unwrap();
    let outcome = |b: &str| deliveries.iter().find(|d| d["box"] == b).unwrap_or_else(|| panic!("{b}: {out:#}")).clone();
    assert_eq!((outcome("pr-1")["status"].as_u64(), outcome("pr-2")["status"].as_u64()), (Some(200), Some(200)), "{out:#}");
    assert!(outcome("pr-3")["error"].as_str().unwrap().contains("no answer within 2s"), "{out:#}");
    assert!(deliveries.iter().all(|d| d["box"] != "pr-4"), "a stopped box is not a target");
    for pr in ["pr-1", "pr-2", "pr-3"] {
        let root = env.box_root(pr);
        assert_eq!(std::fs::read(root.join("hook.body")).unwrap(), body, "{pr}: the body, byte for byte");
        assert_eq!(std::fs::read_to_string(root.join("hook.meta")).unwrap(), format!("/hooks/stripe {signature}\n"), "{pr}");
    }
    assert!(!env.box_root("pr-4").join("hook.body").exists());

    // A name the manifest does not have: 404, nothing sent.
    std::fs::write(&event_file, event.to_string().replace("/stripe", "/github")).unwrap();
    let err = env.cmd(&["webhooks", "deliver", "--event", event_file.to_str().unwrap()]).output().unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stdout).contains(": 404 "), "{}", String::from_utf8_lossy(&err.stdout));
}
