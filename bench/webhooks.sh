#!/usr/bin/env bash
# The webhook fan-out (release build) against sending the same callbacks
# to each box directly, same run: 10 local previews, each running an HTTP
# server that takes POST /hooks/stripe; 100 callbacks (a Stripe-like JSON
# body with a signature header).
#   ours:   `workstation webhooks deliver --event E1 ... --event E100`: the
#           endpoint's handler (the Lambda's code) in one process, as a warm
#           Lambda runs it: per callback, the box list and a fan-out to all
#           10 boxes at once;
#   native: per callback, one `curl --parallel` POSTing the same bytes and
#           header to the 10 boxes at once.
# Rounds alternate which goes first; medians. ratio = ours / native (goal
# <= 1.2). p50_ms: the median callback's slowest box, from ours' report.
# Last line: webhooks: fanout_ratio=R p50_ms=P. Needs root.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
source bench/common.sh
ROUNDS=${ROUNDS:-3} BOXES=${BOXES:-10} CALLBACKS=${CALLBACKS:-100}
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
cleanup() {
    for b in $("$bin" list -o json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(b["name"] for b in json.load(sys.stdin)))' 2>/dev/null); do
        "$bin" destroy "$b" --purge --yes >/dev/null 2>&1 || true
    done
    ip link del $bridge 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
bench_bridge
export WORKSTATION_HOSTS_SOCKET=$work/none.sock
bench_home "$work/home"
export WORKSTATION_MANIFEST=$work/workstation.toml
cat > "$WORKSTATION_MANIFEST" <<'TOML'
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
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
http.server.ThreadingHTTPServer(("0.0.0.0", 8090), H).serve_forever()
''' }
ports = [8090]
health = { tcp = 8090 }
TOML
repo=$work/repo
mkdir -p "$repo"
git -C "$repo" init -q -b main
git -C "$repo" config user.email bench@example.com
git -C "$repo" config user.name bench
echo bench > "$repo/README"
git -C "$repo" add -A && git -C "$repo" commit -qm one

echo "bringing up $BOXES previews" >&2
for n in $(seq "$BOXES"); do
    "$bin" preview up --pr "$n" --ref main --repo "$repo" >/dev/null 2>&1
done
addresses=$("$bin" list -o json | python3 -c 'import json,sys; print(" ".join(b["address"] for b in json.load(sys.stdin) if b.get("preview")))')

echo "writing $CALLBACKS callbacks" >&2
python3 - "$work" "$CALLBACKS" <<'PY'
import base64, json, sys
work, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    body = json.dumps({"id": f"evt_{i}", "type": "invoice.paid", "data": {"object": {"amount": 1000 + i, "lines": ["x" * 40] * 20}}}, indent=2).encode()
    open(f"{work}/body-{i}.json", "wb").write(body)
    sig = f"t=1733480000,v1={i:064x}"
    open(f"{work}/sig-{i}", "w").write(sig)
    event = {"version": "2.0", "rawPath": "/stripe", "rawQueryString": "", "isBase64Encoded": True,
             "headers": {"stripe-signature": sig, "content-type": "application/json"},
             "body": base64.b64encode(body).decode(), "requestContext": {"http": {"method": "POST", "path": "/stripe"}}}
    json.dump(event, open(f"{work}/event-{i}.json", "w"))
PY
events=()
for i in $(seq 0 $((CALLBACKS - 1))); do events+=(--event "$work/event-$i.json"); done

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A T
timed() { # name command...
    local name=$1; shift
    local t0 t1; t0=$(now); "$@" >"$work/$name.out" 2>"$work/err" || { echo "$name failed:" >&2; cat "$work/err" >&2; exit 1; }; t1=$(now)
    T[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') "
}
ours() { timed ours "$bin" -o json webhooks deliver "${events[@]}"; }
native_all() {
    for i in $(seq 0 $((CALLBACKS - 1))); do
        args=()
        for a in $addresses; do args+=(-o /dev/null "http://$a:8090/hooks/stripe"); done
        curl -fsS --parallel --parallel-immediate -H "stripe-signature: $(cat "$work/sig-$i")" -H 'content-type: application/json' \
            --data-binary "@$work/body-$i.json" "${args[@]}"
    done
}
native() { timed native native_all; }
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 0 ]; then ours; native; else native; ours; fi
done
# Every callback reached every box.
python3 - "$work/ours.out" "$BOXES" <<'PY'
import json, sys
results, boxes = json.load(open(sys.argv[1])), int(sys.argv[2])
bad = [r for r in results if r["status"] != 200 or sum(d["status"] == 200 for d in r["deliveries"]) != boxes]
assert not bad, bad[:2]
PY
m() { printf '%s\n' ${T[$1]} | median; }
p50=$(python3 -c '
import json, sys
results = json.load(open(sys.argv[1]))
worst = sorted(max(d["ms"] for d in r["deliveries"]) for r in results)
print(worst[len(worst) // 2])' "$work/ours.out")
echo
echo "$CALLBACKS callbacks to $BOXES boxes, $ROUNDS rounds (medians)"
awk -v o="$(m ours)" -v n="$(m native)" 'BEGIN { printf "ours (handler, one process)   %6.2f s\nnative (curl --parallel each) %6.2f s\nratio ours/native              %.2f\n", o, n, o / n }'
echo "webhooks: fanout_ratio=$(awk -v o="$(m ours)" -v n="$(m native)" 'BEGIN { printf "%.2f", o / n }') p50_ms=$p50"
