"""HTTP shim in front of the EC2 API (moto) that throttles like EC2.

Two modes, combinable:
- the first N requests are answered with EC2's RequestLimitExceeded (HTTP
  503): proves the SDK's retry configuration handles throttling;
- token buckets per action (ACTION=CAPACITY/REFILL, REFILL tokens a second,
  as EC2's request throttling works), refilled by the wall clock or by a
  simulated one that POST /__clock (body: epoch seconds) sets, so a
  simulation can run hours of a fleet in minutes.
Everything not throttled is forwarded to the upstream. Listens on the
upstream's host (a box reaches it as it reaches moto); prints its port on
stdout once listening. GET /__stats returns {"throttled": n, "forwarded": m,
"actions": {ACTION: {"throttled": n, "forwarded": m}}}; GET /__requests the
forwarded requests' parameters, in order (what the API was asked).

Faults: POST /__fail {"action": A, "code": C, "count": n} answers the next
n calls of A with EC2's error C (HTTP 400, not retried); {"task": "fail"}
makes the next root volume replacement task fail;
- {"action": A, "lose": n}: the next n calls of A reach moto and take
  effect, then the connection drops before the answer (the client cannot
  tell whether it happened);
- {"invisible": S}: instances, volumes, key pairs and tags made from now
  on are not visible for S seconds, as AWS documents (shim_lag.py);
- {"capacity": {"zones": [Z...], "types": [T...]}}: RunInstances into a
  subnet of zone Z, or of type T, and StartInstances of an instance of
  type T, answer InsufficientInstanceCapacity as EC2 does (HTTP 500,
  which the SDK retries; EC2 User Guide, "Insufficient instance
  capacity": "wait a few minutes ... or try a different Availability Zone
  or instance type"). The SDK's retries get the same answer.
RunInstances with a ClientToken seen before answers what the first call
did, launching nothing, whatever the capacity now ("Ensuring idempotency
in Amazon EC2 API requests"); with other parameters it answers
IdempotentParameterMismatch, and once the instance is terminated
IdempotentInstanceTerminated (EC2's answer since 2025, boto/boto3#4406).
moto does not deduplicate.

Root volume replacement, which moto lacks, in EC2's shapes
(API_CreateReplaceRootVolumeTask, API_DescribeReplaceRootVolumeTasks):
CreateReplaceRootVolumeTask checks the instance runs and the image exists
(asking moto), deduplicates by ClientToken, and answers a task "pending";
DescribeReplaceRootVolumeTasks filters by instance-id or task id. The
test fleet does the replacement (a new root for the box) and reports the
end state: GET /__root_tasks lists tasks, POST /__root_tasks/ID {"state": S}
sets one's state.

The Price List API's GetProducts, which moto lacks (shim_pricing.py):
POST /__prices sets the catalogue. JSON-protocol calls (X-Amz-Target, e.g.
Cost Explorer's, which moto answers) are counted and failed by their
target's action name, with JSON errors.

Usage: throttle_shim.py UPSTREAM_URL THROTTLE_COUNT [ACTION=CAPACITY/REFILL]...
"""

import datetime
import http.client
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shim_lag import Lag
from shim_pricing import Catalogue

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
LIMIT = int(sys.argv[2])
STATE = {"throttled": 0, "forwarded": 0, "actions": {}}
REQUESTS = []
LOCK = threading.Lock()
CLOCK = {"now": None}
PRICES = Catalogue()


def parse_bucket(arg):
    action, spec = arg.split("=")
    capacity, refill = spec.split("/")
    return action, {"capacity": float(capacity), "refill": float(refill), "tokens": float(capacity), "at": None}


BUCKETS = dict(parse_bucket(a) for a in sys.argv[3:])
# Injected failures: action -> [code, remaining]; and whether the next task fails.
FAULTS = {}
TASK_FAULT = {"next": False}
LOSE = {}  # action -> calls whose answer is lost
LAG = Lag()  # EC2's eventual consistency
CAPACITY = {"zones": set(), "types": set()}  # none left there
TOKENS = {}  # RunInstances ClientToken -> the first answer
TASKS = {}  # task id -> task (dict)
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>shim</RequestID></Response>"
)


def now():
    return CLOCK["now"] if CLOCK["now"] is not None else time.monotonic()


def take(action):
    """One token from the action's bucket; False if it is empty."""
    bucket = BUCKETS.get(action)
    if bucket is None:
        return True
    t = now()
    if bucket["at"] is not None and t > bucket["at"]:
        bucket["tokens"] = min(bucket["capacity"], bucket["tokens"] + (t - bucket["at"]) * bucket["refill"])
    bucket["at"] = t if bucket["at"] is None else max(t, bucket["at"])
    if bucket["tokens"] < 1:
        return False
    bucket["tokens"] -= 1
    return True


class Shim(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and the
        # client's delayed ACK hold the body 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__root_tasks":
            with LOCK:
                body = json.dumps(list(TASKS.values())).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        if self.path in ("/__stats", "/__requests"):
            with LOCK:
                body = json.dumps(STATE if self.path == "/__stats" else REQUESTS).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        self.forward()

    def do_POST(self):
        if self.path == "/__clock":
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with LOCK:
                CLOCK["now"] = float(body)
            return self.reply(204, b"")
        if self.path == "/__fail":
            fault = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with LOCK:
                if "task" in fault:
                    TASK_FAULT["next"] = True
                elif "lose" in fault:
                    LOSE[fault["action"]] = int(fault["lose"])
                elif "invisible" in fault:
                    LAG.seconds = float(fault["invisible"])
                elif "capacity" in fault:
                    CAPACITY["zones"] = set(fault["capacity"].get("zones", []))
                    CAPACITY["types"] = set(fault["capacity"].get("types", []))
                else:
                    FAULTS[fault["action"]] = [fault["code"], int(fault.get("count", 1))]
            return self.reply(204, b"")
        if self.path == "/__prices":
            products = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["products"]
            with LOCK:
                PRICES.set(products)
            return self.reply(204, b"")
        if self.path.startswith("/__root_tasks/"):
            update = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with LOCK:
                task = TASKS[self.path.rsplit("/", 1)[1]]
                task["taskState"] = update["state"]
                if update["state"] in ("succeeded", "failed", "failed-detached"):
                    task["completeTime"] = stamp()
            return self.reply(204, b"")
        self.forward()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers.get("X-Amz-Target")
        if target:
            # JSON 1.1 services: the action is the target's last word.
            params = {"Action": target.rsplit(".", 1)[-1], **json.loads(body or b"{}")}
        else:
            params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        action = params.get("Action", "")
        with LOCK:
            throttle = STATE["throttled"] < LIMIT or not take(action)
            key = "throttled" if throttle else "forwarded"
            STATE[key] += 1
            counts = STATE["actions"].setdefault(action, {"throttled": 0, "forwarded": 0})
            counts[key] += 1
            if not throttle and not BUCKETS:
                REQUESTS.append(params)
        if throttle:
            return self.reply(503, THROTTLED, [("Content-Type", "text/xml")])
        with LOCK:
            fault = FAULTS.get(action)
            if fault and fault[1] > 0:
                fault[1] -= 1
                if target:
                    error = json.dumps({"__type": fault[0], "message": "injected by the test shim"}).encode()
                    return self.reply(400, error, [("Content-Type", "application/x-amz-json-1.1")])
                return self.reply(400, error_xml(fault[0], "injected by the test shim"), [("Content-Type", "text/xml")])
        if target and action == "GetProducts":
            with LOCK:
                answer = PRICES.answer(params)
            return self.reply(200, json.dumps(answer).encode(), [("Content-Type", "application/x-amz-json-1.1")])
        if action == "CreateReplaceRootVolumeTask":
            return self.reply(*create_root_task(params, self.headers))
        if action == "DescribeReplaceRootVolumeTasks":
            return self.reply(*describe_root_tasks(params))
        token = params.get("ClientToken") if action == "RunInstances" else None
        with LOCK:
            seen = TOKENS.get(token)
        if seen:
            return self.reply(*replay(seen, params, self.headers))
        if action in ("RunInstances", "StartInstances") and no_capacity(action, params, self.headers):
            return self.reply(500, error_xml("InsufficientInstanceCapacity", "We currently do not have sufficient capacity in the Availability Zone you requested."), [("Content-Type", "text/xml")])
        refused = LAG.refusal(action, params)
        if refused:
            return self.reply(400, error_xml(*refused), [("Content-Type", "text/xml")])
        status, data, passthrough = upstream(self.command, self.path, body, self.headers)
        if status == 200:
            LAG.note(action, params, data)
            data = LAG.filtered(action, params, data)
        if action == "RunInstances" and status == 200 and token:
            with LOCK:
                TOKENS[token] = {"params": params, "answer": (status, data, passthrough)}
        with LOCK:
            lose = LOSE.get(action, 0) > 0
            if lose:
                LOSE[action] -= 1
        if lose:
            # It happened; the caller never hears.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.reply(status, data, passthrough)


def upstream(method, path, body, headers):
    """One request to moto; its status, body and headers to pass on."""
    conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    headers["Host"] = UPSTREAM.netloc
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    passthrough = [(k, v) for k, v in resp.getheaders() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
    return resp.status, data, passthrough


def replay(seen, params, headers):
    """A RunInstances token seen before, as EC2 answers it: the first
    call's answer; IdempotentParameterMismatch with other parameters;
    IdempotentInstanceTerminated once its instance is terminated."""
    if seen["params"] != params:
        return 400, error_xml("IdempotentParameterMismatch", "The client token you have provided is associated with a resource that is already deleted, or with different parameters."), [("Content-Type", "text/xml")]
    status, data, passthrough = seen["answer"]
    instance = re.search(rb"<instanceId>(i-[0-9a-f]+)</instanceId>", data)
    if instance:
        _, text = ask_moto({"Action": "DescribeInstances", "InstanceId.1": instance.group(1).decode()}, headers)
        if re.search(r"<name>(terminated|shutting-down)</name>", text):
            return 400, error_xml("IdempotentInstanceTerminated", "The client token you have provided is associated with a terminated instance."), [("Content-Type", "text/xml")]
    return status, data, passthrough


def no_capacity(action, params, headers):
    """Whether the CAPACITY rule refuses this launch or start."""
    with LOCK:
        zones, types = set(CAPACITY["zones"]), set(CAPACITY["types"])
    if not zones and not types:
        return False
    if action == "RunInstances":
        if params.get("InstanceType") in types:
            return True
        subnet = params.get("SubnetId")
        if zones and subnet:
            _, text = ask_moto({"Action": "DescribeSubnets", "SubnetId.1": subnet}, headers)
            zone = re.search(r"<availabilityZone>([\w-]+)</availabilityZone>", text)
            return bool(zone and zone.group(1) in zones)
        return False
    _, text = ask_moto({"Action": "DescribeInstances", "InstanceId.1": params.get("InstanceId.1", "")}, headers)
    kind = re.search(r"<instanceType>([\w.]+)</instanceType>", text)
    return bool(kind and kind.group(1) in types)


def stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error_xml(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message>"
        "</Error></Errors><RequestID>shim</RequestID></Response>"
    ).encode()


def ask_moto(params, headers):
    """moto's answer to a query of our own (signed as the caller's was)."""
    body = urllib.parse.urlencode({"Version": "2016-11-15", **params}).encode()
    plain = {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-amz-date", "user-agent")}
    plain["Content-Type"] = "application/x-www-form-urlencoded"
    status, data, _ = upstream("POST", "/", body, plain)
    return status, data.decode("utf-8", "replace")


def task_xml(t):
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in t.items() if k not in ("clientToken", "fail") and v is not None)
    return f"{fields}<tagSet/>"


def create_root_task(params, headers):
    instance, image = params.get("InstanceId", ""), params.get("ImageId")
    status, text = ask_moto({"Action": "DescribeInstances", "InstanceId.1": instance}, headers)
    if status != 200 or "<instanceId>" not in text:
        return 400, error_xml("InvalidInstanceID.NotFound", f"The instance ID '{instance}' does not exist"), [("Content-Type", "text/xml")]
    state = re.search(r"<instanceState>\s*<code>\d+</code>\s*<name>(\w[\w-]*)</name>", text)
    if not state or state.group(1) != "running":
        return 400, error_xml("IncorrectInstanceState", f"The instance '{instance}' is not in a valid state for this operation."), [("Content-Type", "text/xml")]
    if image:
        status, text = ask_moto({"Action": "DescribeImages", "ImageId.1": image}, headers)
        if status != 200 or "<imageId>" not in text:
            return 400, error_xml("InvalidAMIID.NotFound", f"The image id '[{image}]' does not exist"), [("Content-Type", "text/xml")]
    with LOCK:
        token = params.get("ClientToken")
        task = next((t for t in TASKS.values() if token and t["clientToken"] == token), None)
        if task is None:
            task = {
                "replaceRootVolumeTaskId": "replacevol-" + uuid.uuid4().hex[:17],
                "instanceId": instance,
                "taskState": "pending",
                "startTime": stamp(),
                "completeTime": None,
                "imageId": image,
                "deleteReplacedRootVolume": params.get("DeleteReplacedRootVolume", "false").lower(),
                "clientToken": token,
                "fail": TASK_FAULT["next"],
            }
            TASK_FAULT["next"] = False
            TASKS[task["replaceRootVolumeTaskId"]] = task
        body = task_xml(task)
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<CreateReplaceRootVolumeTaskResponse xmlns="{EC2_NS}"><requestId>shim</requestId><replaceRootVolumeTask>{body}</replaceRootVolumeTask></CreateReplaceRootVolumeTaskResponse>'
    return 200, xml.encode(), [("Content-Type", "text/xml")]


def describe_root_tasks(params):
    ids = {v for k, v in params.items() if k.startswith("ReplaceRootVolumeTaskId.")}
    filters = {}
    for k, v in params.items():
        m = re.match(r"Filter\.(\d+)\.Name$", k)
        if m:
            filters[v] = {pv for pk, pv in params.items() if pk.startswith(f"Filter.{m.group(1)}.Value.")}
    with LOCK:
        tasks = [
            t for t in TASKS.values()
            if (not ids or t["replaceRootVolumeTaskId"] in ids) and ("instance-id" not in filters or t["instanceId"] in filters["instance-id"])
        ]
        items = "".join(f"<item>{task_xml(t)}</item>" for t in tasks)
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeReplaceRootVolumeTasksResponse xmlns="{EC2_NS}"><requestId>shim</requestId><replaceRootVolumeTaskSet>{items}</replaceRootVolumeTaskSet></DescribeReplaceRootVolumeTasksResponse>'
    return 200, xml.encode(), [("Content-Type", "text/xml")]


server = ThreadingHTTPServer((UPSTREAM.hostname, 0), Shim)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
