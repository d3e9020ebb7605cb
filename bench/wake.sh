#!/usr/bin/env bash
# Wake on connect against starting by hand, on one local box (release
# build), same run:
#   wake:    the box stopped; `ssh ws-b1 true` through the generated config
#            (its ProxyCommand starts the box, waits for SSH with the pinned
#            key, hands the connection to ssh), until the command answered.
#   by hand: the box stopped; `workstation start b1` then `workstation ssh
#            b1 -- true`.
# ratio = wake / by hand; goal <= 1.05 (the wake path adds no waiting of
# its own). Last line: wake: ratio=R. Needs root.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
PROFILE=${PROFILE:-release}
source bench/common.sh
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
trap '"$bin" destroy b1 --purge --yes >/dev/null 2>&1; ip link del $bridge 2>/dev/null || true; rm -rf "$work"' EXIT
bench_one_box "$work"
config=$HOME/.local/state/workstation/ssh_config

wake() { ssh -F "$config" -o BatchMode=yes ws-b1 true; }
by_hand() { "$bin" start b1 && "$bin" ssh b1 -- true; }

wake_ms=() hand_ms=()
for _ in $(seq "$RUNS"); do
    "$bin" stop b1 >/dev/null 2>&1
    wake_ms+=("$(ms_of wake)")
    "$bin" stop b1 >/dev/null 2>&1
    hand_ms+=("$(ms_of by_hand)")
done
w=$(printf '%s\n' "${wake_ms[@]}" | median)
h=$(printf '%s\n' "${hand_ms[@]}" | median)
echo "runs:                        $RUNS"
echo "wake on connect (ssh ws-b1): ${w} ms (median; all: ${wake_ms[*]})"
echo "start, then ssh, by hand:    ${h} ms (median; all: ${hand_ms[*]})"
awk -v w="$w" -v h="$h" 'BEGIN { printf "wake: ratio=%.2f wake_ms=%d by_hand_ms=%d\n", w / h, w, h }'
