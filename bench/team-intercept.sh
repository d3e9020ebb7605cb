#!/usr/bin/env bash
# Personal intercepts on a shared box: what the box's nginx front (stack/
# front.rs) costs, on one local box (release build), same run, for two
# services behind fronts:
#   api:  a Python HTTP server (http.server, threads, keep-alive), as in
#         bench/intercept.sh: a service doing little work per request;
#   fast: nginx answering a fixed body, the proxy's ceiling: the front's
#         own cost with nothing behind it to hide it.
# For each, with the laptop's server of the same kind:
#   passthrough: requests without the header through the front versus
#                straight to the service's own port;
#   matched:     requests with `x-dev: bench` through the front while
#                `intercept S --header x-dev=bench` routes them to the
#                laptop, versus `intercept S` without a header today
#                (the service's port reaches the laptop; requests straight to it);
# and branch_db: `--branch-db main` of a 100,000-row postgres database,
# the copy time the box reports (TEMPLATE; with a session on the source,
# by dump, printed before).
# Load: wrk on the box, 8 keep-alive connections, SECONDS_EACH s; rounds
# alternate which side goes first; medians over rounds.
# The box and the laptop are one machine here; for the matched pair they
# get a core each (taskset: the box's processes on CPU 0, the laptop's
# servers and the intercept's ssh on CPU 1), as two machines would, so
# the box's proxy is not charged for the laptop's CPU. Without that, on 2
# shared cores, matched_rps_ratio was 0.66: every process of both sides
# is busy (top: laptop python 69%, ssh 31%, sshd 25%, nginx 25%).
# Goals (api): passthrough_rps_ratio >= 0.9 and p50 within 0.3 ms of
# direct; matched_rps_ratio >= 0.9. Last line (api's, then fast's):
# team-intercept: passthrough_rps_ratio=R passthrough_p50_extra_ms=E matched_rps_ratio=M branch_db_ms=B fast_passthrough_rps_ratio=.. fast_passthrough_p50_extra_ms=.. fast_matched_rps_ratio=..
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECONDS_EACH=${SECONDS_EACH:-5}
PROFILE=${PROFILE:-release}
source bench/common.sh
bench_one_box_run

# Ports: the front, the service's own, the laptop's server.
api_F=18500 api_T=18501 api_L=18502 fast_F=18510 fast_T=18511 fast_L=18512
cat > "$work/server.py" <<'PY'
import http.server, sys
word, port = sys.argv[1], int(sys.argv[2])
body = (word + "\n").encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this, Nagle and delayed
    # ACKs hold every keep-alive answer for 40 ms.
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
chmod 644 "$work/server.py"
# nginx answering WORD on PORT, in the foreground, its files under DIR.
nginx_conf() {
    mkdir -p "$3"
    cat > "$3/nginx.conf" <<CONF
daemon off;
worker_processes 1;
user nobody nogroup;
pid $3/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $3/body; proxy_temp_path $3/proxy; fastcgi_temp_path $3/fcgi; uwsgi_temp_path $3/uwsgi; scgi_temp_path $3/scgi;
  server { listen 127.0.0.1:$2; keepalive_requests 1000000; location / { return 200 "$1\n"; } }
}
CONF
}
nginx_conf box $fast_T "$work/box"
nginx_conf laptop $fast_L "$work/laptop"

bench_bridge
export WORKSTATION_HOSTS_SOCKET=$work/none.sock
bench_home "$work/home"
export WORKSTATION_MANIFEST=$work/workstation.toml
cat > "$WORKSTATION_MANIFEST" <<TOML
[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"
[stores.main]
kind = "postgres"
database = "app"
[services.api]
command = "python3 $work/server.py box $api_T"
ports = [$api_T]
front = { port = $api_F }
health = { http = "/", port = $api_T }
[services.fast]
command = "nginx -c $work/box/nginx.conf"
ports = [$fast_T]
front = { port = $fast_F }
health = { http = "/", port = $fast_T }
TOML
"$bin" create b1 >/dev/null 2>&1

# The laptop's side on CPU 1 (see the top); the box's, while the
# intercepts are measured, on CPU 0.
laptop_cpu=""
if [ "$(nproc)" -ge 2 ]; then laptop_cpu="taskset -c 1"; else echo "one CPU: the box and the laptop share it" >&2; fi
$laptop_cpu python3 "$work/server.py" laptop $api_L & pids+=($!)
$laptop_cpu nginx -c "$work/laptop/nginx.conf" & pids+=($!)
# The box's network namespace: the one holding its address.
address=$("$bin" list --output json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["address"])')
box_ns=$(for ns in $(ip netns list | awk '{print $1}'); do ip -n "$ns" -4 -o addr | grep -q " $address/" && echo "$ns"; done)
[ -n "$box_ns" ] || { echo "no namespace holds box b1's address $address" >&2; exit 1; }
pin_box() { # CPUS
    [ -n "$laptop_cpu" ] || return 0
    for p in $(ip netns pids "$box_ns"); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}

on_box() { "$bin" ssh b1 -- "$1"; }
answers() { [ "$(on_box "curl -s --max-time 2 $2 http://127.0.0.1:$1/")" = "$3" ]; }
wait_answer() { for _ in $(seq 200); do answers "$@" && return 0; sleep 0.1; done; echo "port $1 ($2) never answered $3" >&2; return 1; }
# load PORT [HEADER]: "rps p50_ms" with 8 keep-alive connections.
load() {
    local header=""
    if [ -n "${2:-}" ]; then header="-H '$2'"; fi
    on_box "wrk -t 2 -c 8 -d ${SECONDS_EACH}s --latency $header http://127.0.0.1:$1/" | awk '
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                      ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
        END { printf "%s %.4f\n", rps, ms }'
}
# Results by "<service>_<measure>", space-separated over rounds.
declare -A got
add() { got[$1]="${got[$1]:-} $2"; }

passthrough() { # SERVICE
    local F T; F=$(eval echo "\$${1}_F") T=$(eval echo "\$${1}_T")
    read -r r p <<< "$(load "$T")"; add "$1_direct_rps" "$r"; add "$1_direct_p50" "$p"
    read -r r p <<< "$(load "$F")"; add "$1_front_rps" "$r"; add "$1_front_p50" "$p"
}
personal() { # SERVICE
    local F T L; F=$(eval echo "\$${1}_F") T=$(eval echo "\$${1}_T") L=$(eval echo "\$${1}_L")
    pin_box 0
    $laptop_cpu "$bin" intercept "$1" --box b1 --header x-dev=bench --port "$T:$L" -- sleep 600 2>"$work/personal.err" & ic=$!
    wait_answer "$F" "-H x-dev:bench" laptop || { cat "$work/personal.err" >&2; exit 1; }
    read -r r _ <<< "$(load "$F" "x-dev: bench")"; add "$1_matched_rps" "$r"
    answers "$F" "" box || { echo "requests without the header left the box" >&2; exit 1; }
    kill $ic; wait $ic 2>/dev/null || true
}
classic() { # SERVICE
    local T L; T=$(eval echo "\$${1}_T") L=$(eval echo "\$${1}_L")
    pin_box 0
    $laptop_cpu "$bin" intercept "$1" --box b1 --port "$T:$L" -- sleep 600 2>"$work/classic.err" & ic=$!
    wait_answer "$T" "" laptop || { cat "$work/classic.err" >&2; exit 1; }
    read -r r _ <<< "$(load "$T")"; add "$1_classic_rps" "$r"
    kill $ic; wait $ic 2>/dev/null || true
    wait_answer "$T" "" box
}
# The passthrough pair is the box's alone: all cores.
unpin() { pin_box 0-$(($(nproc) - 1)); }
for round in $(seq "$ROUNDS"); do
    for svc in api fast; do
        unpin
        passthrough $svc
        if [ $((round % 2)) = 1 ]; then personal $svc; classic $svc; else classic $svc; personal $svc; fi
    done
done

# A data branch of a 100,000-row database (about 15 MB).
psql_box() { on_box "psql -X -q -At -h 127.0.0.1 -U postgres -d $1 -c \"$2\""; }
psql_box postgres "CREATE DATABASE app" >/dev/null
psql_box app "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref, now() - g * interval '1 minute' AS at FROM generate_series(1, 100000) g; CREATE INDEX ON orders(ref)" >/dev/null
branch_ms() { "$bin" intercept api --box b1 --header x-dev=bench --branch-db main --port "$api_T:$api_L" -- true 2>&1 | sed -n 's/.*data branch of main: .* (\([a-z]*\) in \([0-9]*\) ms).*/\1 \2/p'; }
read -r how_t template_ms <<< "$(branch_ms)"
on_box "psql -X -h 127.0.0.1 -U postgres -d app -c 'SELECT pg_sleep(120)' >/dev/null" 2>/dev/null & holder=$!
for _ in $(seq 100); do [ "$(psql_box postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'")" != 0 ] && break; sleep 0.1; done
read -r how_d dump_ms <<< "$(branch_ms)"
kill $holder 2>/dev/null || true

med() { printf '%s\n' $1 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "rounds: $ROUNDS, ${SECONDS_EACH}s each, wrk with 8 keep-alive connections on the box"
line="team-intercept:"
for svc in api fast; do
    dr=$(med "${got[${svc}_direct_rps]}") fr=$(med "${got[${svc}_front_rps]}") mr=$(med "${got[${svc}_matched_rps]}") cr=$(med "${got[${svc}_classic_rps]}")
    dp=$(med "${got[${svc}_direct_p50]}") fp=$(med "${got[${svc}_front_p50]}")
    echo "$svc: direct $dr req/s p50 $dp ms (all:${got[${svc}_direct_rps]}); through the front $fr req/s p50 $fp ms (all:${got[${svc}_front_rps]})"
    echo "$svc: matched, personal $mr req/s (all:${got[${svc}_matched_rps]}); intercept without a header $cr req/s (all:${got[${svc}_classic_rps]})"
    prefix=""; [ $svc = fast ] && prefix="fast_"
    line+=$(awk -v p="$prefix" -v fr="$fr" -v dr="$dr" -v fp="$fp" -v dp="$dp" -v mr="$mr" -v cr="$cr" \
        'BEGIN { printf " %spassthrough_rps_ratio=%.2f %spassthrough_p50_extra_ms=%.3f %smatched_rps_ratio=%.2f", p, fr / dr, p, fp - dp, p, mr / cr }')
    [ $svc = api ] && line+=" branch_db_ms=$template_ms"
done
echo "branch of 100,000 rows: $how_t $template_ms ms; with a session on the source: $how_d $dump_ms ms"
echo "$line"
