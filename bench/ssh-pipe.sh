#!/usr/bin/env bash
# `workstation ssh NAME -- CMD` as a pipe: 1 GiB from stdin through
# `workstation ssh b1 -- cat > /dev/null` versus OpenSSH through the
# generated config (`ssh -F ... ws-b1 cat > /dev/null`), same box, same run,
# median of $RUNS each (goal: ratio >= 1.0, native time / ours). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
source bench/common.sh
RUNS=${RUNS:-3}
MIB=${MIB:-1024}
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
cleanup() { "$bin" destroy b1 --purge --yes >/dev/null 2>&1 || true; ip link del $bridge 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
bench_one_box "$work"
"$bin" ssh-config --no-include >/dev/null
config=$HOME/.local/state/workstation/ssh_config

# The same bytes every run, from a file in the page cache.
head -c "${MIB}M" /dev/urandom > "$work/payload"
timed() { local t0 t1; t0=$(now_ms); "$@" < "$work/payload" > /dev/null; t1=$(now_ms); echo $((t1 - t0)); }
native=() ours=()
for _ in $(seq "$RUNS"); do
    native+=("$(timed ssh -F "$config" -o BatchMode=yes ws-b1 'cat > /dev/null')")
    ours+=("$(timed "$bin" ssh b1 -- 'cat > /dev/null')")
done
n=$(printf '%s\n' "${native[@]}" | median)
o=$(printf '%s\n' "${ours[@]}" | median)
echo "1 GiB pipe ($RUNS runs, median): ssh ${n} ms ($(( MIB * 1000 / n )) MiB/s), workstation ssh ${o} ms ($(( MIB * 1000 / o )) MiB/s)"
echo "ssh-pipe: ratio=$(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.2f", a / b }') native_ms=$n workstation_ms=$o mib=$MIB"
