#!/usr/bin/env bash
# `workstation sync` on a local box: (1) single-file edit on the laptop until
# it is visible on the box, median and p95 over 50 edits (goal < 300 ms);
# (2) initial sync of a 10,000-file tree versus plain `rsync -a` over the
# same SSH (pinned config): ratio. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
RUNS=${RUNS:-3}
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
sync_pid=
cleanup() { [ -z "$sync_pid" ] || kill "$sync_pid" 2>/dev/null || true; "$bin" destroy b1 --purge --yes >/dev/null 2>&1 || true; ip link del $bridge 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
bench_one_box "$work"

big=$work/big
bench_tree "$big"
# Initial syncs into fresh directories, alternating ours and plain rsync
# ($RUNS rounds, medians): on this machine one copy of 10,000 small files
# takes from 0.4 s to 2 s depending on the filesystem's writeback of the
# previous one, so a single pair would compare the disk, not the tools.
"$bin" ssh-config >/dev/null
ws_runs=() plain_runs=()
for i in $(seq 1 "$RUNS"); do
    cp -a "$big" "$work/big$i"
    t0=$(now_ms); "$bin" sync b1 --once --dir "$work/big$i" >/dev/null 2>"$work/sync.err"; t1=$(now_ms)
    ws_runs+=($((t1 - t0)))
    remote=$(grep -o 'b1:[^ ]*' "$work/sync.err" | head -1 | cut -d: -f2)
    t0=$(now_ms); rsync -a -e "ssh -F $HOME/.local/state/workstation/ssh_config -o BatchMode=yes" "$big/" "ws-b1:${remote}-plain/"; t1=$(now_ms)
    plain_runs+=($((t1 - t0)))
done
ws=$(printf '%s\n' "${ws_runs[@]}" | median)
plain=$(printf '%s\n' "${plain_runs[@]}" | median)
echo "initial syncs (ms): workstation ${ws_runs[*]}; rsync -a ${plain_runs[*]}" >&2
remote=${remote%big$RUNS}big

"$bin" sync b1 --dir "$big" 2>"$work/watch.err" &
sync_pid=$!
until grep -q watching "$work/watch.err"; do sleep 0.05; done
lat=()
for i in $(seq 1 50); do
    f=d7/f7.txt
    t0=$(now_ms); echo "edit $i" > "$big/$f"
    until [ "$(cat "$remote/$f" 2>/dev/null)" = "edit $i" ]; do :; done
    t1=$(now_ms); lat+=($((t1 - t0)))
    sleep 0.1
done
printf '%s\n' "${lat[@]}" | sort -n | awk '{a[NR]=$1} END {printf "edit -> visible on the box: median %d ms, p95 %d ms (50 edits)\n", a[int((NR+1)/2)], a[int(NR*0.95+0.5)]}'
echo "initial sync of 10,000 files: workstation sync ${ws} ms, rsync -a ${plain} ms, ratio $(python3 -c "print(f'{$ws/$plain:.2f}')")"
printf '%s\n' "${lat[@]}" | sort -n | awk -v ws="$ws" -v plain="$plain" '{a[NR]=$1} END {printf "sync: initial_ratio=%.2f edit_p50_ms=%d edit_p95_ms=%d initial_ms=%d rsync_ms=%d\n", ws / plain, a[int((NR+1)/2)], a[int(NR*0.95+0.5)], ws, plain}'
