"""HTTP shim in front of the EC2 API (moto) that throttles the first N calls.

Answers the first N requests with EC2's RequestLimitExceeded (HTTP 503),
then forwards everything to the upstream. Proves the SDK's retry
configuration handles throttling. Listens on the upstream's host (a box
reaches it as it reaches moto); prints its port on stdout once listening.
GET /__stats returns {"throttled": n, "forwarded": m}; GET /__requests the
forwarded requests' parameters, in order (what the API was asked).

Usage: throttle_shim.py UPSTREAM_URL THROTTLE_COUNT
"""

import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
LIMIT = int(sys.argv[2])
STATE = {"throttled": 0, "forwarded": 0}
REQUESTS = []
LOCK = threading.Lock()

THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>shim</RequestID></Response>"
)


class Shim(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

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
        self.forward()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with LOCK:
            throttle = STATE["throttled"] < LIMIT
            STATE["throttled" if throttle else "forwarded"] += 1
            if not throttle:
                REQUESTS.append(dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"))))
        if throttle:
            return self.reply(503, THROTTLED, [("Content-Type", "text/xml")])
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = UPSTREAM.netloc
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        passthrough = [(k, v) for k, v in resp.getheaders() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        self.reply(resp.status, data, passthrough)


server = ThreadingHTTPServer((UPSTREAM.hostname, 0), Shim)
print(server.server_address[1], flush=True)
server.serve_forever()
