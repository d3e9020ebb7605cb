#!/usr/bin/env bash
# create-to-SSH-ready on the local provider versus what the box itself needs.
#
# native: the same work done by hand with the native tools: host key
#         generation, namespace + veth on the bridge, sshd started in its own
#         UTS namespace, polled until it accepts TCP on port 22.
# workstation: `workstation create` end to end: all of the above plus
#         state, address allocation, host-key publish + pin, a full russh
#         connection verifying the pinned key, and bring-up of an empty
#         stack (directories, configuration upload, supervisord start).
# Prints medians, the ratio and the overhead (goal: under 1 s). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
source bench/common.sh
# Not under /tmp: sshd (StrictModes) refuses keys below a world-writable directory.
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
trap 'for n in $(ip netns list | awk "/^bn-/{print \$1}"); do ip netns pids $n | xargs -r kill -9; ip netns del $n; done; ip link del $bridge 2>/dev/null || true; rm -rf "$work"' EXIT

bench_bridge

native() {
    local i=$1 ns=bn-$1 ip=10.79.2.$((10 + $1)) d=$work/native-$1
    mkdir -p "$d"
    ssh-keygen -q -t ed25519 -N "" -f "$d/key"
    printf 'ListenAddress %s:22\nHostKey %s/key\nPidFile %s/pid\nUsePAM no\n' "$ip" "$d" "$d" > "$d/cfg"
    ip netns add $ns
    ip link add bv$i type veth peer name eth0 netns $ns
    ip link set bv$i master $bridge up
    ip -n $ns addr add $ip/16 dev eth0
    ip -n $ns link set lo up && ip -n $ns link set eth0 up
    ip netns exec $ns unshare --uts -- sh -c "hostname n$i && exec /usr/sbin/sshd -f $d/cfg"
    until (exec 3<>/dev/tcp/$ip/22) 2>/dev/null; do sleep 0.002; done
}

bench_home "$work/home"
# A manifest with no services or stores: this measures the box and SSH
# (bench/seed.sh measures seeding).
export WORKSTATION_MANIFEST=$work/workstation.toml
printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-0123456789abcdef0"\n' > "$WORKSTATION_MANIFEST"

native_ms=() ws_ms=()
for i in $(seq 1 "$RUNS"); do
    t0=$(now_ms); native "$i"; t1=$(now_ms)
    native_ms+=($((t1 - t0)))
    t0=$(now_ms); "$bin" create "b$i" >/dev/null 2>"$work/create.err" || { cat "$work/create.err" >&2; exit 1; }; t1=$(now_ms)
    ws_ms+=($((t1 - t0)))
    "$bin" destroy "b$i" --yes >/dev/null 2>&1
done

n=$(printf '%s\n' "${native_ms[@]}" | median)
w=$(printf '%s\n' "${ws_ms[@]}" | median)
echo "runs:                 $RUNS"
echo "native box ready:     ${n} ms (median; all: ${native_ms[*]})"
echo "workstation create:   ${w} ms (median; all: ${ws_ms[*]})"
awk -v n="$n" -v w="$w" 'BEGIN { printf "ratio:                %.2fx\noverhead:             %d ms (goal < 1000 ms)\n", w / n, w - n }'
awk -v n="$n" -v w="$w" 'BEGIN { printf "create-to-ssh: native_ms=%d workstation_ms=%d native_over_ours=%.2f overhead_ms=%d\n", n, w, n / w, w - n }'
