#!/usr/bin/env bash
# `workstation preview up` on local boxes (release build) against the same
# steps done by hand, same run, for a 10,000-file git repository:
#   first:  `preview up --pr N --ref C1` (box launched, tree uploaded, stack
#           healthy) versus `workstation create` (stack healthy) plus
#           `git archive C1 | ssh ws-box 'tar -x'` over the pinned config;
#   update: a one-file commit, `preview up --pr 1 --ref Ck` versus
#           `git diff --name-only | rsync -a --files-from=-` over the same SSH.
# The service (an HTTP server with a health check) serves the box root, so
# both paths reach healthy whether or not the tree is there yet. Rounds
# alternate which path goes first; medians. Goal: up_ratio <= 1.1,
# update_ratio <= 1.0. Last line: preview: up_ratio=R update_ratio=U.
# Needs root.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
source bench/common.sh
ROUNDS=${ROUNDS:-3}
UPDATES=${UPDATES:-7}
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
hostnames = ["api.dev.bench"]

[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"

[services.web]
command = "sh -c 'exec python3 -m http.server 8080 --bind 0.0.0.0 --directory \"$WORKSTATION_BOX_ROOT\"'"
ports = [8080]
health = { http = "/", port = 8080 }
restart_on = ["web/**"]
TOML

repo=$work/repo
mkdir -p "$repo"
git -C "$repo" init -q -b main
git -C "$repo" config user.email bench@example.com
git -C "$repo" config user.name bench
bench_tree "$repo"
git -C "$repo" add -A && git -C "$repo" commit -qm one
c1=$(git -C "$repo" rev-parse HEAD)
cfg=$HOME/.local/state/workstation/ssh_config
ssh_to() { ssh -F "$cfg" -o BatchMode=yes "$@"; }
root_of() { "$bin" ssh "$1" -- 'printf %s "$WORKSTATION_BOX_ROOT"'; }

# By hand: create, then the archive over the pinned SSH.
by_hand_first() {
    "$bin" create "h$1" >/dev/null 2>&1
    local dir
    dir="$(root_of "h$1")/src/app"
    git -C "$repo" archive --format=tar "$c1" | ssh_to "ws-h$1" "mkdir -p '$dir' && tar -x -f - -C '$dir'"
}
ours_first() { "$bin" preview up --pr "$1" --ref "$c1" --repo "$repo" >/dev/null 2>"$work/up.err" || { cat "$work/up.err" >&2; return 1; }; }

ours_up=() hand_up=()
for i in $(seq 1 "$ROUNDS"); do
    if [ $((i % 2)) = 1 ]; then
        a=$(ms_of ours_first "$i"); b=$(ms_of by_hand_first "$i")
    else
        b=$(ms_of by_hand_first "$i"); a=$(ms_of ours_first "$i")
    fi
    ours_up+=("$a") hand_up+=("$b")
done
tree_of() { (cd "$(root_of "$1")/src/app" && find . -path ./.git -prune -o -print | sort); }
[ "$(tree_of pr-1)" = "$(tree_of h1)" ] || { echo "the two paths left different trees" >&2; exit 1; }

# Updates: one file per commit; ours updates pr-1, the hand path h1.
hand_dir="$(root_of h1)/src/app"
prev=$c1 ours_upd=() hand_upd=()
for k in $(seq 1 "$UPDATES"); do
    echo "edit $k" > "$repo/d7/f7.txt"
    git -C "$repo" commit -qam "edit $k"
    next=$(git -C "$repo" rev-parse HEAD)
    ours() { "$bin" preview up --pr 1 --ref "$next" --repo "$repo" >/dev/null 2>"$work/up.err" || { cat "$work/up.err" >&2; return 1; }; }
    hand() { git -C "$repo" diff --name-only "$prev" "$next" | rsync -a --files-from=- -e "ssh -F $cfg -o BatchMode=yes" "$repo/" "ws-h1:$hand_dir/"; }
    if [ $((k % 2)) = 1 ]; then a=$(ms_of ours); b=$(ms_of hand); else b=$(ms_of hand); a=$(ms_of ours); fi
    ours_upd+=("$a") hand_upd+=("$b")
    prev=$next
done
[ "$(cat "$(root_of pr-1)/src/app/d7/f7.txt")" = "edit $UPDATES" ] || { echo "the update did not reach pr-1" >&2; exit 1; }

m() { printf '%s\n' "$@" | median; }
ou=$(m "${ours_up[@]}") hu=$(m "${hand_up[@]}") od=$(m "${ours_upd[@]}") hd=$(m "${hand_upd[@]}")
echo "first (ms): preview up ${ours_up[*]}; create + git archive | ssh tar x ${hand_up[*]}" >&2
echo "update (ms): preview up ${ours_upd[*]}; git diff | rsync ${hand_upd[*]}" >&2
python3 -c "print(f'preview: up_ratio={$ou/$hu:.2f} update_ratio={$od/$hd:.2f} up_ms={$ou} hand_up_ms={$hu} update_ms={$od} hand_update_ms={$hd} files=10000')"
