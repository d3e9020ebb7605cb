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
# Prints medians, the ratio and the overhead (goal: under 0.5 s).
#
# Then the example stack (two Python HTTP services, redis, postgres without
# seeds): `workstation create` until every program is healthy, against the
# same programs started by hand in a box made the native way (initdb,
# postgres, redis-server, two http.servers, polled until their ports
# answer). Last line: create: empty_overhead_ms=N stack_ratio=R (native
# time / ours). Needs root.
set -euo pipefail
# The timed steps run in command substitutions: a failure there still stops.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7} STACK_RUNS=${STACK_RUNS:-6}
PROFILE=${PROFILE:-release}
source bench/common.sh
# Not under /tmp: sshd (StrictModes) refuses keys below a world-writable directory.
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 755 "$work"
trap 'for n in $(ip netns list | awk "/^bn-/{print \$1}"); do ip netns pids $n | xargs -r kill -9; ip netns del $n; done; for s in $(seq 1 "$STACK_RUNS"); do "$bin" destroy "s$s" --purge --yes >/dev/null 2>&1 || true; done; ip link del $bridge 2>/dev/null || true; rm -rf "$work"' EXIT

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

# create_ms NAME: `workstation create NAME` timed, then destroyed.
create_ms() {
    local ms
    ms=$(ms_of "$bin" create "$1")
    "$bin" destroy "$1" --purge --yes >/dev/null 2>&1
    echo "$ms"
}

native_ms=() ws_ms=()
for i in $(seq 1 "$RUNS"); do
    native_ms+=("$(ms_of native "$i")")
    ws_ms+=("$(create_ms "b$i")")
done

n=$(printf '%s\n' "${native_ms[@]}" | median)
w=$(printf '%s\n' "${ws_ms[@]}" | median)
echo "runs:                 $RUNS"
echo "native box ready:     ${n} ms (median; all: ${native_ms[*]})"
echo "workstation create:   ${w} ms (median; all: ${ws_ms[*]})"
awk -v n="$n" -v w="$w" 'BEGIN { printf "ratio:                %.2fx\noverhead:             %d ms (goal < 500 ms)\n", w / n, w - n }'

# The stack by hand, in native box $1 (already up): what supervisord and
# the stores' first start do, then wait for every port.
native_stack() {
    local i=$1 ns=bn-$1 d=$work/native-$1
    local pgbin; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    mkdir -p "$d/redis" "$d/pg" && chown postgres "$d/pg"
    ip netns exec $ns bash -c "
        redis-server --bind 127.0.0.1 --port 6379 --dir $d/redis --daemonize yes --save '' >/dev/null
        runuser -u postgres -- $pgbin/initdb --pgdata=$d/pg/data --username=postgres --auth-host=trust --no-sync >/dev/null
        runuser -u postgres -- sh -c 'nohup $pgbin/postgres -D $d/pg/data -c listen_addresses=127.0.0.1 -c unix_socket_directories= >/dev/null 2>&1 &'
        nohup python3 -m http.server 8080 --bind 127.0.0.1 >/dev/null 2>&1 &
        nohup python3 -m http.server 8081 >/dev/null 2>&1 &
        for port in 6379 5432 8080 8081; do
            until (exec 3<>/dev/tcp/127.0.0.1/\$port) 2>/dev/null; do sleep 0.005; done
        done"
}
stack_manifest() {
    printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-0123456789abcdef0"\n'
    printf '[services.app]\ncommand = "python3 -m http.server 8080 --bind 127.0.0.1"\nports = [8080]\nhealth = { tcp = 8080 }\n'
    printf '[services.api]\ncommand = "python3 -m http.server 8081"\nports = [8081]\nhealth = { tcp = 8081 }\n'
    printf '[stores.cache]\nkind = "redis"\n[stores.main]\nkind = "postgres"\n'
}
stack_manifest > "$WORKSTATION_MANIFEST"
chmod 0755 "$work"
nstack_ms=() wstack_ms=()
native_with_stack() { native "$1" && native_stack "$1"; }
# A native box is taken down once timed, as `create_ms` destroys ours: no
# round runs beside the idle stacks of earlier rounds.
native_down() { ip netns pids "bn-$1" | xargs -r kill -9; ip netns del "bn-$1"; ip link del "bv$1" 2>/dev/null || true; }
# The two sides alternate which goes first, round by round.
for i in $(seq 1 "$STACK_RUNS"); do
    if [ $((i % 2)) = 1 ]; then
        nstack_ms+=("$(ms_of native_with_stack $((50 + i)))"); native_down $((50 + i))
        wstack_ms+=("$(create_ms "s$i")")
    else
        wstack_ms+=("$(create_ms "s$i")")
        nstack_ms+=("$(ms_of native_with_stack $((50 + i)))"); native_down $((50 + i))
    fi
done
ns=$(printf '%s\n' "${nstack_ms[@]}" | median)
ws=$(printf '%s\n' "${wstack_ms[@]}" | median)
echo "example stack by hand: ${ns} ms (median; all: ${nstack_ms[*]})"
echo "workstation create:    ${ws} ms (median; all: ${wstack_ms[*]})"
# The spread of the stack ratio: the rounds' own ratios, lowest and highest.
spread=$(paste <(printf '%s\n' "${nstack_ms[@]}") <(printf '%s\n' "${wstack_ms[@]}") |
    awk '{ r = $1 / $2; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r } END { printf "stack_ratio_min=%.2f stack_ratio_max=%.2f", lo, hi }')
awk -v n="$n" -v w="$w" -v ns="$ns" -v ws="$ws" -v spread="$spread" 'BEGIN { printf "create: empty_overhead_ms=%d stack_ratio=%.2f %s native_ms=%d workstation_ms=%d stack_native_ms=%d stack_workstation_ms=%d\n", w - n, ns / ws, spread, n, w, ns, ws }'
