#!/usr/bin/env bash
# workstation intercept against a plain OpenSSH `ssh -R` forward to the same
# local server, on one local box (release build), same run:
#   ours:    `workstation intercept api --box b1 --port P:L -- sleep`: the box's api
#            port P reaches the laptop's server on L;
#   ssh -R:  `ssh -N -R Q:127.0.0.1:L ws-b1` (Q: another box port, since api
#            holds P while it is not intercepted).
# On the box: requests per second with 8 concurrent clients for 10 s
# (ab, a new connection per request: TIME_WAIT piles up over rounds, which
# drift), and single requests' latency (300
# sequential connect-request-answer rounds, p50/p99). Rounds alternate
# which goes first; medians over rounds.
# Goal: rps_ratio = ours / ssh -R >= 1.0 and p50 within 0.5 ms. Last line:
# intercept: rps_ratio=R p50_ours_ms=A p50_ssh_ms=B. Needs root and ab
# (Debian: apache2-utils).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-4}
SECONDS_EACH=${SECONDS_EACH:-10}
PROFILE=${PROFILE:-release}
source bench/common.sh
bench_one_box_run

P=18400 Q=18401 L=18402
cat > "$work/server.py" <<'PY'
import http.server, sys
word, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = (word + "\n").encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer((host, port), H).serve_forever()
PY
cat > "$work/latency.py" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
lat = []
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"{lat[len(lat) // 2]:.3f} {lat[int(len(lat) * 0.99)]:.3f}")
PY
chmod 644 "$work/server.py" "$work/latency.py"

bench_bridge
export WORKSTATION_HOSTS_SOCKET=$work/none.sock
bench_home "$work/home"
export WORKSTATION_MANIFEST=$work/workstation.toml
printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-0123456789abcdef0"\n[services.api]\ncommand = "python3 %s box 0.0.0.0 %d"\nports = [%d]\nhealth = { http = "/", port = %d }\n' \
    "$work/server.py" $P $P $P > "$WORKSTATION_MANIFEST"
"$bin" create b1 >/dev/null 2>&1
config=$HOME/.local/state/workstation/ssh_config

python3 "$work/server.py" laptop 127.0.0.1 $L & pids+=($!)

on_box() { "$bin" ssh b1 -- "$1"; }
# rps PORT, latency PORT: measured on the box, answers checked first.
answers_laptop() { [ "$(on_box "curl -s --max-time 2 http://127.0.0.1:$1/")" = laptop ]; }
rps() { on_box "ab -q -c 8 -t $SECONDS_EACH -n 10000000 http://127.0.0.1:$1/ 2>&1" | awk '/^Requests per second/ {print $4}'; }
latency() { on_box "python3 $work/latency.py $1 300"; }
wait_laptop() { for _ in $(seq 200); do answers_laptop "$1" && return 0; sleep 0.1; done; echo "port $1 on the box never answered laptop" >&2; return 1; }

ours_rps=() ssh_rps=() ours_p50=() ssh_p50=() ours_p99=() ssh_p99=()
with_ssh_r() {
    ssh -F "$config" -o ProxyCommand=none -N -o ExitOnForwardFailure=yes -R "0.0.0.0:$Q:127.0.0.1:$L" ws-b1 & sshr=$!
    wait_laptop $Q
    ssh_rps+=("$(rps $Q)")
    read -r p50 p99 <<< "$(latency $Q)"; ssh_p50+=("$p50"); ssh_p99+=("$p99")
    kill $sshr; wait $sshr 2>/dev/null || true
}
with_intercept() {
    "$bin" intercept api --box b1 --port "$P:$L" -- sleep 600 2>"$work/intercept.err" & ours=$!
    wait_laptop $P || { cat "$work/intercept.err" >&2; exit 1; }
    ours_rps+=("$(rps $P)")
    read -r p50 p99 <<< "$(latency $P)"; ours_p50+=("$p50"); ours_p99+=("$p99")
    kill $ours; wait $ours 2>/dev/null || true
    pkill -f "sleep 600" 2>/dev/null || true
}
# Alternating which goes first: a round's second half runs after the
# first half's connections (TIME_WAIT, warm caches).
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then with_ssh_r; with_intercept; else with_intercept; with_ssh_r; fi
done

med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
r_ours=$(med "${ours_rps[@]}") r_ssh=$(med "${ssh_rps[@]}")
l_ours=$(med "${ours_p50[@]}") l_ssh=$(med "${ssh_p50[@]}")
echo "rounds: $ROUNDS, ${SECONDS_EACH}s each, 8 clients on the box"
echo "intercept: ${r_ours} req/s (all: ${ours_rps[*]}), p50 ${l_ours} ms, p99 $(med "${ours_p99[@]}") ms"
echo "ssh -R:    ${r_ssh} req/s (all: ${ssh_rps[*]}), p50 ${l_ssh} ms, p99 $(med "${ssh_p99[@]}") ms"
awk -v a="$r_ours" -v b="$r_ssh" -v la="$l_ours" -v lb="$l_ssh" \
    'BEGIN { printf "intercept: rps_ratio=%.2f p50_ours_ms=%.2f p50_ssh_ms=%.2f\n", a / b, la, lb }'
