#!/usr/bin/env bash
# `workstation upgrade` against the only way onto a new image before it:
# destroy + create (which reseeds), on one local box running the example
# stack (examples/local's services) with 100k redis keys, 100k postgres
# rows and 1,000 files in src/.
#
#   ours:    workstation upgrade   (a new root; the data volume kept: home,
#            src/ and the stores as they were, nothing reseeded)
#   rebuild: workstation destroy --purge + workstation create (a fresh box,
#            both stores seeded from the snapshots; src/ is gone)
#
# After each upgrade the data is checked: the keys, the rows, a row and a
# key written by hand, and the files. ratio = upgrade / rebuild (goal <= 0.5).
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3} KEYS=${KEYS:-100000} ROWS=${ROWS:-100000} FILES=${FILES:-1000}
PROFILE=${PROFILE:-release}
source bench/common.sh
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 0755 "$work"
cleanup() {
    "$bin" destroy bench --purge --yes >/dev/null 2>&1 || true
    ip link del $bridge 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

bench_bridge
export WORKSTATION_HOSTS_SOCKET=$work/none.sock
bench_home "$work/home"
echo "generating $KEYS redis keys and $ROWS rows" >&2
bench_seeds "$work/seeds" "$KEYS" "$ROWS"
# examples/local's services, with the bench's stores.
export WORKSTATION_MANIFEST=$work/workstation.toml
{
    sed -n '/^\[box\]/,/^# Seeded once/p' examples/local/workstation.toml | grep -v '^# Seeded once'
    printf '[stores.cache]\nkind = "redis"\nseed = "seeds/cache.resp"\n'
    printf '[stores.main]\nkind = "postgres"\ndatabase = "shop"\nseed = "seeds/main"\n'
} > "$WORKSTATION_MANIFEST"

box() { ssh -F "$HOME/.ssh/config" -o BatchMode=yes ws-bench "$@"; }
psql_box="psql -X -At -h 127.0.0.1 -U postgres -d shop"
# The engineer's work: files in src/, a key and a row of their own.
work_on_box() {
    box "mkdir -p \$WORKSTATION_BOX_ROOT/src/app && cd \$WORKSTATION_BOX_ROOT/src/app && for i in \$(seq $FILES); do echo \"file \$i\" > f\$i.txt; done" &&
        box "redis-cli -h 127.0.0.1 set mine kept >/dev/null && $psql_box -c \"INSERT INTO items VALUES (-1, 'mine', 1) ON CONFLICT DO NOTHING\" >/dev/null"
}
# Prints 1 when everything work_on_box and the seeds made is there.
intact() {
    local got
    got=$(box "redis-cli -h 127.0.0.1 dbsize; redis-cli -h 127.0.0.1 get mine; $psql_box -c 'SELECT count(*) FROM items'; ls \$WORKSTATION_BOX_ROOT/src/app | wc -l")
    [ "$(echo $got)" = "$((KEYS + 1)) kept $((ROWS + 1)) $FILES" ] && echo 1 || { echo "data not intact: $(echo $got)" >&2; echo 0; }
}

echo "creating the box (first seed)" >&2
"$bin" create bench >/dev/null
declare -a U R
data_intact=1
for round in $(seq "$RUNS"); do
    work_on_box
    U+=("$(ms_of "$bin" upgrade bench)")
    [ "$(intact)" = 1 ] || data_intact=0
    R+=("$(ms_of sh -c "'$bin' destroy bench --purge --yes && '$bin' create bench")")
    echo "round $round: upgrade ${U[-1]} ms, destroy + create + reseed ${R[-1]} ms" >&2
done
u=$(printf '%s\n' "${U[@]}" | median)
r=$(printf '%s\n' "${R[@]}" | median)
echo "runs: $RUNS (medians), $KEYS redis keys, $ROWS postgres rows, $FILES files in src/"
printf 'upgrade (new root, data volume kept)       %6d ms\n' "$u"
printf 'destroy --purge + create (reseed)          %6d ms\n' "$r"
echo "upgrade: ratio=$(awk -v u="$u" -v r="$r" 'BEGIN { printf "%.2f", u / r }') upgrade_ms=$u rebuild_ms=$r data_intact=$data_intact"
