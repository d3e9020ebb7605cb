#!/usr/bin/env bash
# Personal intercepts on a shared box: what the box's nginx front (stack/
# front.rs) costs, on one local box (release build), same run. The box's
# api and the laptop's server are both nginx answering a fixed body, so
# the proxy's and forward's costs are not hidden behind a slow server.
#   passthrough: requests without the header through the front (port F)
#                versus straight to the api's own port (T);
#   matched:     requests with `x-dev: bench` through the front while
#                `intercept api --header x-dev=bench` routes them to the
#                laptop, versus `intercept api` without a header today
#                (the box's T reaches the laptop; requests straight to T);
#   branch_db:   `--branch-db main` of a 100,000-row postgres database,
#                the time the box reports for the copy (TEMPLATE; and with
#                a session on the source, by dump, printed before).
# Load: wrk on the box, 8 keep-alive connections, SECONDS_EACH s; rounds
# alternate which side goes first; medians over rounds.
# Goals: passthrough_rps_ratio >= 0.9 and p50 within 0.3 ms of direct;
# matched_rps_ratio >= 0.9. Last line:
# team-intercept: passthrough_rps_ratio=R passthrough_p50_extra_ms=E matched_rps_ratio=M branch_db_ms=B
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
PROFILE=${PROFILE:-release}
source bench/common.sh
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$bin" destroy b1 --purge --yes >/dev/null 2>&1
    ip link del $bridge 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

F=18500 T=18501 L=18502
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
nginx_conf box $T "$work/box"
nginx_conf laptop $L "$work/laptop"

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
command = "nginx -c $work/box/nginx.conf"
ports = [$T]
front = { port = $F }
health = { http = "/", port = $T }
TOML
"$bin" create b1 >/dev/null 2>&1

nginx -c "$work/laptop/nginx.conf" & pids+=($!)

on_box() { "$bin" ssh b1 -- "$1"; }
answers() { [ "$(on_box "curl -s --max-time 2 $2 http://127.0.0.1:$1/")" = "$3" ]; }
wait_answer() { for _ in $(seq 200); do answers "$@" && return 0; sleep 0.1; done; echo "port $1 ($2) never answered $3" >&2; return 1; }
# wrk PORT [HEADER]: "rps p50_ms" with 8 keep-alive connections.
load() {
    local header=""
    if [ -n "${2:-}" ]; then header="-H '$2'"; fi
    on_box "wrk -t 2 -c 8 -d ${SECONDS_EACH}s --latency $header http://127.0.0.1:$1/" | awk '
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                      ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
        END { printf "%s %.4f\n", rps, ms }'
}

direct_rps=() direct_p50=() front_rps=() front_p50=() matched_rps=() classic_rps=()
passthrough() {
    read -r r p <<< "$(load $T)"; direct_rps+=("$r"); direct_p50+=("$p")
    read -r r p <<< "$(load $F)"; front_rps+=("$r"); front_p50+=("$p")
}
personal() {
    "$bin" intercept api --box b1 --header x-dev=bench --port "$T:$L" -- sleep 600 2>"$work/personal.err" & ic=$!
    wait_answer $F "-H x-dev:bench" laptop || { cat "$work/personal.err" >&2; exit 1; }
    read -r r _ <<< "$(load $F "x-dev: bench")"; matched_rps+=("$r")
    answers $F "" box || { echo "requests without the header left the box" >&2; exit 1; }
    kill $ic; wait $ic 2>/dev/null || true
    pkill -f "sleep 600" 2>/dev/null || true
}
classic() {
    "$bin" intercept api --box b1 --port "$T:$L" -- sleep 600 2>"$work/classic.err" & ic=$!
    wait_answer $T "" laptop || { cat "$work/classic.err" >&2; exit 1; }
    read -r r _ <<< "$(load $T)"; classic_rps+=("$r")
    kill $ic; wait $ic 2>/dev/null || true
    pkill -f "sleep 600" 2>/dev/null || true
    wait_answer $T "" box
}
for round in $(seq "$ROUNDS"); do
    passthrough
    if [ $((round % 2)) = 1 ]; then personal; classic; else classic; personal; fi
done

# A data branch of a 100,000-row database (about 15 MB).
psql_box() { on_box "psql -X -q -At -h 127.0.0.1 -U postgres -d $1 -c \"$2\""; }
psql_box postgres "CREATE DATABASE app" >/dev/null
psql_box app "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref, now() - g * interval '1 minute' AS at FROM generate_series(1, 100000) g; CREATE INDEX ON orders(ref)" >/dev/null
branch_ms() { "$bin" intercept api --box b1 --header x-dev=bench --branch-db main --port "$T:$L" -- true 2>&1 | sed -n 's/.*data branch of main: .* (\([a-z]*\) in \([0-9]*\) ms).*/\1 \2/p'; }
read -r how_t template_ms <<< "$(branch_ms)"
on_box "psql -X -h 127.0.0.1 -U postgres -d app -c 'SELECT pg_sleep(120)' >/dev/null" & holder=$!
for _ in $(seq 100); do [ "$(psql_box postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'")" != 0 ] && break; sleep 0.1; done
read -r how_d dump_ms <<< "$(branch_ms)"
kill $holder 2>/dev/null || true

med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "rounds: $ROUNDS, ${SECONDS_EACH}s each, wrk with 8 keep-alive connections on the box"
echo "direct to api:        $(med "${direct_rps[@]}") req/s (all: ${direct_rps[*]}), p50 $(med "${direct_p50[@]}") ms"
echo "through the front:    $(med "${front_rps[@]}") req/s (all: ${front_rps[*]}), p50 $(med "${front_p50[@]}") ms"
echo "matched, personal:    $(med "${matched_rps[@]}") req/s (all: ${matched_rps[*]})"
echo "intercept, no header: $(med "${classic_rps[@]}") req/s (all: ${classic_rps[*]})"
echo "branch of 100,000 rows: $how_t $template_ms ms; with a session on the source: $how_d $dump_ms ms"
awk -v fr="$(med "${front_rps[@]}")" -v dr="$(med "${direct_rps[@]}")" -v fp="$(med "${front_p50[@]}")" -v dp="$(med "${direct_p50[@]}")" \
    -v mr="$(med "${matched_rps[@]}")" -v cr="$(med "${classic_rps[@]}")" -v b="$template_ms" \
    'BEGIN { printf "team-intercept: passthrough_rps_ratio=%.2f passthrough_p50_extra_ms=%.3f matched_rps_ratio=%.2f branch_db_ms=%d\n", fr / dr, fp - dp, mr / cr, b }'
