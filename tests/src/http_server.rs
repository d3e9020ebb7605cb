//! The HTTP server the intercept tests run on the box and on the laptop.

/// A server answering `word` on `port`; with a third argument, it appends
/// each request's path to that file (the mirror's copy). It answers /quit
/// by exiting 7, /slow after 3 s, and a POST with the body's length.
pub const SERVER: &str = r#"
import http.server, os, sys, time
word, port = sys.argv[1], int(sys.argv[2])
log = sys.argv[3] if len(sys.argv) > 3 else None
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(3)
        if log:
            with open(log, "a") as f:
                f.write(self.path + "\n")
        body = (word + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.path == "/quit":
            os._exit(7)
    def do_POST(self):
        n = len(self.rfile.read(int(self.headers["Content-Length"])))
        body = ("%s %d\n" % (word, n)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;
