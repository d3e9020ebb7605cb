#!/usr/bin/env bash
# The whole story on one machine with the local provider: build, create a
# box (a network namespace with its own sshd), pin its host key, bring up its
# services under supervisord and seed redis and postgres from
# examples/local/seeds, then use them over SSH. Needs root (network
# namespaces).
#
#   bash scripts/demo-local.sh          run the demo
#   bash scripts/demo-local.sh --clean  destroy the demo box
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# The demo keeps its own HOME so your real settings and ~/.ssh stay untouched.
demo_home="$repo/../target/demo-home"
bin="$repo/../target/debug/workstation"
ws() { HOME="$demo_home" WORKSTATION_MANIFEST="$repo/examples/local/workstation.toml" "$bin" "$@"; }

if [ "${1:-}" = "--clean" ]; then
    ws destroy demo --yes || true
    exit 0
fi

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "installing dependencies (Debian: openssh-server, iproute2, supervisor, redis, postgresql; PyPI: moto[server])"
bash scripts/install-deps.sh

say "building workstation"
cargo build --workspace --bins --locked

say "preparing a demo HOME in $demo_home (key + settings: provider = local)"
mkdir -p "$demo_home/.ssh" "$demo_home/.config/workstation"
[ -f "$demo_home/.ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C demo@laptop -f "$demo_home/.ssh/id_ed25519"
cat > "$demo_home/.config/workstation/config.toml" <<'TOML'
owner = "demo"
provider = "local"
TOML

say "workstation create --name demo   (box, pinned key, services under supervisord, seeded stores)"
ws create --name demo

say "workstation services --box demo   (state and health of every program)"
ws services --box demo

say "the seeded data, read on the box"
ws ssh demo -- redis-cli -h 127.0.0.1 hgetall session:ada
ws ssh demo -- psql -X -h 127.0.0.1 -U postgres -d shop -c 'SELECT u.email, count(*) AS orders, sum(o.total) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.email'

say "workstation logs app --box demo -n 3"
ws logs app --box demo -n 3

say "workstation list"
ws list

say "workstation ssh demo -- hostname; ip -4 -brief addr   (over SSH, pinned host key)"
ws ssh demo -- sh -c 'echo "hostname: $(hostname)"; ip -4 -brief addr show dev eth0'

say "plain OpenSSH works too, through the generated config and the pinned key"
HOME="$demo_home" ssh -F "$demo_home/.ssh/config" -o BatchMode=yes ws-demo uptime

say "done. Clean up with: bash scripts/demo-local.sh --clean"
