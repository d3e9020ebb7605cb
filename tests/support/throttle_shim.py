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

Usage: throttle_shim.py UPSTREAM_URL THROTTLE_COUNT [ACTION=CAPACITY/REFILL]...
"""

import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
LIMIT = int(sys.argv[2])
STATE = {"throttled": 0, "forwarded": 0, "actions": {}}
REQUESTS = []
LOCK = threading.Lock()
CLOCK = {"now": None}


def parse_bucket(arg):
    action, spec = arg.split("=")
    capacity, refill = spec.split("/")
    return action, {"capacity": float(capacity), "refill": float(refill), "tokens": float(capacity), "at": None}


BUCKETS = dict(parse_bucket(a) for a in sys.argv[3:])

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
        self.forward()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
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
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = UPSTREAM.netloc
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        passthrough = [(k, v) for k, v in resp.getheaders() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        self.reply(resp.status, data, passthrough)


server = ThreadingHTTPServer((UPSTREAM.hostname, 0), Shim)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
