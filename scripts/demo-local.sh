#!/usr/bin/env bash
# The whole story on one machine with the local provider (a box is a network
# namespace with its own sshd): a new hire's `workstation init`, services
# healthy and stores seeded, the laptop's hostnames resolving to the box,
# sharing a colleague's box for a demo and back, `doctor`, and a kept box
# that later stops itself when idle. Needs root (network namespaces).
#
#   bash scripts/demo-local.sh          run the demo
#   bash scripts/demo-local.sh --clean  remove the demo's boxes, agent and HOME
#
# Nothing of yours is touched: the demo has its own HOME, and its hosts
# agent edits a copy of /etc/hosts that only the demo's mount namespace sees.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
source scripts/lib.sh
target=$(target_dir)

# The demo's HOME: one directory outside the checkout, which --clean removes.
demo_home=/var/lib/workstation-demo
agent_dir="$demo_home/agent"
bin="$target/debug/workstation"
hosts_bin="$target/debug/workstation-hosts"
manifest="$repo/examples/local/workstation.toml"
ws() { HOME="$demo_home" WORKSTATION_MANIFEST="$manifest" WORKSTATION_HOSTS_SOCKET="$agent_dir/agent.sock" "$bin" "$@"; }
# Inside the agent's mount namespace: its /etc/hosts, the OS resolver.
laptop() { nsenter -t "$(cat "$agent_dir/agent.pid")" -m -- "$@"; }

clean() {
    if [ -x "$bin" ]; then
        WORKSTATION_OWNER=alice ws destroy dev --purge --yes 2>/dev/null || true
        ws destroy dev --purge --yes 2>/dev/null || true
    fi
    if [ -f "$agent_dir/agent.pid" ]; then
        kill "$(cat "$agent_dir/agent.pid")" 2>/dev/null || true
    fi
    rm -rf "$demo_home"
}

if [ "${1:-}" = "--clean" ]; then
    clean
    echo "removed the demo boxes, the demo hosts agent and $demo_home"
    exit 0
fi

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "installing dependencies (Debian: openssh, iproute2, supervisor, redis, postgresql, rsync; PyPI: moto[server])"
bash scripts/install-deps.sh

say "building workstation and workstation-hosts"
cargo build --workspace --bins --locked

clean
mkdir -p "$agent_dir"

say "starting the hosts agent on a private copy of /etc/hosts (a mount namespace of its own)"
cp /etc/hosts "$agent_dir/hosts"
cat > "$agent_dir/hosts-agent.toml" <<TOML
allowed_names = ["app.demo.test", "api.demo.test"]
socket = "$agent_dir/agent.sock"
state_dir = "$agent_dir/state"
TOML
unshare --mount --propagation slave sh -c 'mount --bind "$1" /etc/hosts && exec "$2" run --config "$3"' \
    sh "$agent_dir/hosts" "$hosts_bin" "$agent_dir/hosts-agent.toml" > "$agent_dir/agent.log" 2>&1 &
echo $! > "$agent_dir/agent.pid"
for _ in $(seq 100); do [ -S "$agent_dir/agent.sock" ] && break; sleep 0.1; done

say "workstation init --yes --owner demo --provider local   (what a new hire runs)"
ws init --yes --owner demo --provider local

say "workstation services   (state and health of every program)"
ws services

say "the seeded data, read on the box"
ws ssh dev -- redis-cli -h 127.0.0.1 hgetall session:ada
# As with ssh, the words after -- are one command line for the box's shell.
ws ssh dev -- "psql -X -h 127.0.0.1 -U postgres -d shop -c 'SELECT u.email, count(*) AS orders, sum(o.total) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.email'"

mine=$(ws status dev --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])')
say "the laptop's hostnames resolve to the box ($mine), through the OS resolver"
laptop getent hosts app.demo.test api.demo.test
laptop curl -s -o /dev/null -w 'GET http://api.demo.test:8081/ → %{http_code}\n' http://api.demo.test:8081/

say "alice creates her box (a second owner on this machine)"
WORKSTATION_OWNER=alice ws create dev > /dev/null
ws share --off > /dev/null   # her create pointed this shared laptop at her box
ws list --all

say "workstation share alice   (a demo on alice's box)"
ws share alice
laptop getent hosts app.demo.test

say "workstation share --off   (back to mine)"
ws share --off
laptop getent hosts app.demo.test

say "workstation doctor   (every piece, with a fix for each failure)"
laptop env HOME="$demo_home" WORKSTATION_MANIFEST="$manifest" WORKSTATION_HOSTS_SOCKET="$agent_dir/agent.sock" "$bin" doctor

say "idle: the demo manifest stops a box 5 minutes after its last activity"
ws keep --for 10m
id=$(ws status dev --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# The box's root (outside HOME, in /var/lib/workstation-local), as its
# sessions see it.
root=$(ws ssh dev -- 'echo "$WORKSTATION_BOX_ROOT"')
check() { # minutes from now: what the box's own check (its timer) decides then
    at=$(date -u -d "+$1 minutes" +%Y-%m-%dT%H:%M:%SZ)
    echo "-- box idle-check as of $at (+$1 min)"
    ip netns exec "ws-${id#lb-}" env HOME="$demo_home" WORKSTATION_MANIFEST="$manifest" \
        "$bin" box idle-check --root "$root" --at "$at"
}
check 0
check 7    # idle past 5m, but kept for 10m
check 16   # keep over and idle: the box stops itself
ws status dev

say "workstation start   (the disk was kept; seeded data is still there)"
ws start
ws ssh dev -- redis-cli -h 127.0.0.1 hgetall session:ada

say "done. Clean up with: bash scripts/demo-local.sh --clean"
