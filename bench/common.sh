# Sourced by every benchmark, from the repository root: builds the binaries
# and sets $bin and $agent (in $PROFILE, debug unless set), and offers the
# setup most benchmarks share. Each benchmark keeps its own cleanup trap.
source scripts/lib.sh
# A failing command inside $(...) fails the benchmark: a side that failed
# must never be timed and printed as a ratio.
shopt -s inherit_errexit
PROFILE=${PROFILE:-debug}
# Every tool a benchmark runs (the tests' set plus --bench's: ab), so a
# fresh machine runs any of them; a quick no-op once installed.
bash scripts/install-deps.sh --bench
bridge=wsbench0 net=10.79.0.0/16 gw=10.79.0.1

if [ "$PROFILE" = release ]; then
    cargo build --quiet --workspace --bins --locked --release
else
    cargo build --quiet --workspace --bins --locked
fi
bin=$(target_dir)/$PROFILE/workstation
agent=$(target_dir)/$PROFILE/workstation-hosts

# The bench network: a bridge that owns all of 10.79.0.0/16, so no packet
# to a box leaves this machine; sshd's privilege-separation directory.
bench_bridge() {
    ip link add $bridge type bridge 2>/dev/null || true
    ip addr replace $gw/16 dev $bridge && ip link set $bridge up
    mkdir -p /run/sshd
}

# bench_home DIR: HOME=DIR with an SSH key and settings for local boxes on
# the bench network, owned by "bench".
bench_home() {
    export HOME=$1
    mkdir -p "$HOME/.ssh" "$HOME/.config/workstation"
    ssh-keygen -q -t ed25519 -N "" -f "$HOME/.ssh/id_ed25519"
    printf 'owner = "bench"\nprovider = "local"\n[local]\nbridge = "%s"\nnetwork = "%s"\nsubnet = "10.79.1.0/24"\n' $bridge $net \
        > "$HOME/.config/workstation/config.toml"
}

# bench_one_box_run: for a benchmark on local box b1 with servers of its
# own: $work (readable by the box's users, removed at exit), $pids
# (background processes, killed at exit), and at exit box b1 destroyed
# and the bench network removed.
bench_one_box_run() {
    work=$(mktemp -d /var/lib/workstation-bench-XXXX)
    chmod 755 "$work"
    pids=()
    trap bench_one_box_cleanup EXIT
}
bench_one_box_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$bin" destroy b1 --purge --yes >/dev/null 2>&1
    ip link del $bridge 2>/dev/null || true
    rm -rf "$work"
}

# bench_one_box DIR: the bench network, a HOME in DIR and a manifest with
# an empty stack, and the local box b1 created from it.
bench_one_box() {
    bench_bridge
    export WORKSTATION_HOSTS_SOCKET=$1/none.sock
    bench_home "$1/home"
    export WORKSTATION_MANIFEST=$1/workstation.toml
    printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-0123456789abcdef0"\n' > "$WORKSTATION_MANIFEST"
    "$bin" create b1 >/dev/null 2>&1
}

# bench_tree DIR: 10,000 small files in 100 directories (sync, preview).
bench_tree() {
    python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(10000):
    d = os.path.join(root, f"d{i % 100}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"file {i}\n" * 20)
PY
}

# bench_seeds DIR KEYS ROWS: a redis snapshot of KEYS keys (DIR/cache.resp),
# a postgres one of ROWS rows (DIR/main: schema.sql, 01-items.csv) and a
# mysql one of the same rows (DIR/shop: MySQL's schema.sql, 01-items.csv).
bench_seeds() {
    mkdir -p "$1/main" "$1/shop"
    python3 - "$1" "$2" "$3" <<'PY'
import sys
out, keys, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f"{out}/cache.resp", "wb") as f:
    for i in range(keys):
        k, v = f"key:{i}".encode(), f"bench-value-{i}".encode()
        f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
with open(f"{out}/main/schema.sql", "w") as f:
    f.write("CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL);\n")
with open(f"{out}/main/01-items.csv", "w") as f:
    f.write("id,name,price\n")
    for i in range(rows):
        f.write(f"{i},item number {i},{i % 1000}.{i % 100:02}\n")
with open(f"{out}/shop/schema.sql", "w") as f:
    f.write("CREATE TABLE items (id int PRIMARY KEY, name varchar(100) NOT NULL, price decimal(10,2) NOT NULL);\n")
PY
    cp "$1/main/01-items.csv" "$1/shop/01-items.csv"
}

now_ms() { date +%s%3N; }
# ms_of CMD...: how long CMD takes, in ms (its output dropped; its stderr
# shown, and the caller failed, if it fails).
ms_of() {
    local t0 t1 err
    err=$(mktemp)
    t0=$(now_ms)
    "$@" >/dev/null 2>"$err" || { cat "$err" >&2; rm -f "$err"; return 1; }
    t1=$(now_ms)
    rm -f "$err"
    echo $((t1 - t0))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
