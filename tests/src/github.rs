//! A stand-in for GitHub's REST API on loopback, for `preview up --github`:
//! it answers the deployment and check-run calls and refuses (422) any
//! body that does not match GitHub's documented request shape ("Create a
//! deployment", "Create a deployment status", "Create a check run",
//! docs.github.com/en/rest), so a request GitHub would reject fails here
//! too. Every request is recorded for the test to read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    /// Deployments made: id, environment, ref.
    deployments: Vec<(u64, String, String)>,
    /// Deployments are numbered from 1000, statuses and check runs from
    /// 5000 (a test can name the deployments).
    next_deployment: u64,
    next_id: u64,
}

pub struct GitHubStandIn {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl GitHubStandIn {
    /// Serves repository `owner/repo` on a free loopback port until the
    /// test process ends.
    pub fn start(repository: &str) -> GitHubStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State { next_deployment: 1000, next_id: 5000, ..Default::default() }));
        let (shared, prefix) = (state.clone(), format!("/repos/{repository}/"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, prefix) = (shared.clone(), prefix.clone());
                std::thread::spawn(move || serve(stream, &state, &prefix));
            }
        });
        GitHubStandIn { url, state }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, prefix: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let (method, path) = (words.next().unwrap_or_default().to_owned(), words.next().unwrap_or_default().to_owned());
        let (mut length, mut authorization) = (0usize, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => authorization = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(json!({"unparsable": true})) };
        let (status, reply) = answer(state, prefix, Request { method, path, authorization, body });
        let reply = reply.to_string();
        let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", reply.len());
        if stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(reply.as_bytes())).is_err() {
            return;
        }
    }
}

fn answer(state: &Mutex<State>, prefix: &str, request: Request) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    state.requests.push(request.clone());
    if !request.authorization.starts_with("Bearer ") && !request.authorization.starts_with("token ") {
        return (401, json!({"message": "Requires authentication"}));
    }
    let Some(rest) = request.path.strip_prefix(prefix) else { return (404, json!({"message": "Not Found"})) };
    let (route, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = route.split('/').collect();
    let body = &request.body;
    let invalid = |why: String| (422, json!({"message": "Validation Failed", "errors": [why]}));
    match (request.method.as_str(), parts.as_slice()) {
        ("POST", ["deployments"]) => {
            if let Err(why) = shape(
                body,
                &["ref"],
                &["task", "auto_merge", "required_contexts", "payload", "environment", "description", "transient_environment", "production_environment"],
            ) {
                return invalid(why);
            }
            let id = state.next_deployment;
            state.next_deployment += 1;
            let environment = body["environment"].as_str().unwrap_or("production").to_owned();
            state.deployments.push((id, environment.clone(), body["ref"].as_str().unwrap_or_default().to_owned()));
            (201, json!({"id": id, "environment": environment, "ref": body["ref"]}))
        }
        ("GET", ["deployments"]) => {
            let wanted = query.split('&').find_map(|kv| kv.strip_prefix("environment="));
            let list: Vec<Value> = state
                .deployments
                .iter()
                .rev()
                .filter(|(_, env, _)| wanted.is_none_or(|w| w == env))
                .map(|(id, env, r)| json!({"id": id, "environment": env, "ref": r}))
                .collect();
            (200, Value::Array(list))
        }
        ("POST", ["deployments", id, "statuses"]) => {
            if !state.deployments.iter().any(|(d, _, _)| d.to_string() == *id) {
                return (404, json!({"message": "Not Found"}));
            }
            if let Err(why) = shape(body, &["state"], &["target_url", "log_url", "description", "environment", "environment_url", "auto_inactive"]) {
                return invalid(why);
            }
            let states = ["error", "failure", "inactive", "in_progress", "queued", "pending", "success"];
            if !states.contains(&body["state"].as_str().unwrap_or_default()) {
                return invalid(format!("state {} is not one of {states:?}", body["state"]));
            }
            let id = state.next_id;
            state.next_id += 1;
            (201, json!({"id": id, "state": body["state"]}))
        }
        ("POST", ["check-runs"]) => {
            let optional = ["details_url", "external_id", "status", "started_at", "conclusion", "completed_at", "output", "actions"];
            if let Err(why) = shape(body, &["name", "head_sha"], &optional) {
                return invalid(why);
            }
            let conclusions = ["action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"];
            if body["status"] == "completed" && !conclusions.contains(&body["conclusion"].as_str().unwrap_or_default()) {
                return invalid("a completed check run needs a conclusion".into());
            }
            if let Some(output) = body.get("output") {
                if let Err(why) = shape(output, &["title", "summary"], &["text", "annotations", "images"]) {
                    return invalid(format!("output: {why}"));
                }
            }
            let id = state.next_id;
            state.next_id += 1;
            (201, json!({"id": id, "name": body["name"]}))
        }
        _ => (404, json!({"message": "Not Found"})),
    }
}

/// The body is an object with every `required` field and no field outside
/// `required` and `optional`.
fn shape(body: &Value, required: &[&str], optional: &[&str]) -> Result<(), String> {
    let object = body.as_object().ok_or("the body is not a JSON object")?;
    if let Some(missing) = required.iter().find(|f| !object.contains_key(**f)) {
        return Err(format!("{missing} is required"));
    }
    if let Some(unknown) = object.keys().find(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str())) {
        return Err(format!("{unknown} is not a parameter"));
    }
    Ok(())
}
