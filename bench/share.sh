#!/usr/bin/env bash
# `workstation share alice` until `getent hosts` returns alice's address.
#
# share:  the whole CLI: settings, the local provider's lookup of alice's box,
#         the agent request (allowlist, CAS write, fsync, rename, cache flush),
#         then getent polled until glibc sees the new address.
# agent:  the same without the box lookup: `workstation-hosts point`.
# native: `sed -i` on the same /etc/hosts (what people do by hand: not atomic,
#         no lock, no check), then getent.
# 100 switches each, alternating alice's box and ours; median and p95 in ms
# (goal: share under 100 ms). Runs in a private mount namespace whose /etc
# is a throwaway overlay; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-100}
source bench/common.sh
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
holder= agent_pid=
cleanup() {
    [ -z "$agent_pid" ] || kill "$agent_pid" 2>/dev/null || true
    "$bin" destroy b1 --purge --yes >/dev/null 2>&1 || true
    WORKSTATION_OWNER=alice "$bin" destroy b1 --purge --yes >/dev/null 2>&1 || true
    [ -z "$holder" ] || kill "$holder" 2>/dev/null || true
    ip link del $bridge 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

bench_bridge
mkdir -p "$work/upper" "$work/ovl"

# The mount namespace: /etc is an overlay, so the real /etc/hosts is untouched.
unshare --mount --propagation private sh -c "mount -t overlay overlay -o lowerdir=/etc,upperdir=$work/upper,workdir=$work/ovl /etc && exec sleep 3600" &
holder=$!
until [ "$(readlink /proc/$holder/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] && grep -q " /etc overlay" /proc/$holder/mounts; do sleep 0.01; done
inns() { nsenter -t "$holder" -m -- "$@"; }

export WORKSTATION_HOSTS_SOCKET=$work/agent.sock
bench_home "$work/home"
export WORKSTATION_MANIFEST=$work/workstation.toml
printf 'hostnames = ["api.bench.test", "web.bench.test"]\n[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-0123456789abcdef0"\n' > "$WORKSTATION_MANIFEST"
printf 'allowed_names = ["api.bench.test", "web.bench.test"]\nsocket = "%s"\nstate_dir = "%s/state"\n' "$WORKSTATION_HOSTS_SOCKET" "$work" > "$work/agent.toml"
inns "$agent" run --config "$work/agent.toml" >/dev/null 2>"$work/agent.log" &
agent_pid=$!
until [ -S "$WORKSTATION_HOSTS_SOCKET" ]; do sleep 0.01; done

"$bin" create b1 >/dev/null 2>&1
WORKSTATION_OWNER=alice "$bin" create b1 >/dev/null 2>&1
mine=$("$bin" list --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
alice=$("$bin" list --all --output json | python3 -c 'import json,sys; print([b for b in json.load(sys.stdin) if b["owner"]=="alice"][0]["address"])')

now_us() { date +%s%6N; }
wait_for() { until [ "$(inns getent hosts api.bench.test | awk '{print $1}')" = "$1" ]; do :; done; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.1f ms  p95 %.1f ms", a[int((NR+1)/2)]/1000, a[int(NR*0.95+0.5)]/1000}'; }

measure() {  # name, then a function taking the target address and label
    local out=() t0 t1 i to who
    for i in $(seq 1 "$RUNS"); do
        if [ $((i % 2)) = 1 ]; then to=$alice who=alice; else to=$mine who=me; fi
        t0=$(now_us); "$2" "$to" "$who"; wait_for "$to"; t1=$(now_us)
        out+=($((t1 - t0)))
    done
    printf '%s\n' "${out[@]}" | stats
}
via_share() { if [ "$2" = alice ]; then "$bin" share alice --box b1 >/dev/null; else "$bin" share --off --box b1 >/dev/null; fi; }
via_agent() { "$agent" point --socket "$WORKSTATION_HOSTS_SOCKET" --to "$1" api.bench.test web.bench.test >/dev/null; }
via_sed() { inns sed -i -E "s/^[0-9.]+(\t| )api\.bench\.test.*/$1\tapi.bench.test web.bench.test/" /etc/hosts; }

s=$(measure share via_share)
a=$(measure agent via_agent)
"$agent" clear --socket "$WORKSTATION_HOSTS_SOCKET" >/dev/null
printf '%s\tapi.bench.test web.bench.test\n' "$mine" | inns sh -c 'cat >> /etc/hosts'
n=$(measure native via_sed)
echo "switches: $RUNS each, alternating alice ($alice) and ours ($mine)"
echo "share  (workstation share, incl. local box lookup): $s"
echo "agent  (workstation-hosts point):                   $a"
echo "native (sed -i /etc/hosts, unsafe):                 $n"
med() { echo "$1" | awk '{print $2}'; }
awk -v s="$(med "$s")" -v a="$(med "$a")" -v n="$(med "$n")" 'BEGIN { printf "share: share_ms=%s agent_ms=%s native_ms=%s native_over_ours=%.2f\n", s, a, n, n / s }'
