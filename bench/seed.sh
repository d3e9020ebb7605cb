#!/usr/bin/env bash
# `workstation seed` against the native loaders, on one local box with real
# redis-server, PostgreSQL and MariaDB: 1M redis keys, a 1M-row postgres
# table and the same rows in mysql (a CSV directory and a mysqldump file).
#
# (b) snapshot streamed from the laptop over SSH:
#       ours:   workstation seed --reset (local file: RESP checked while
#               streaming; CSV through \copy FROM STDIN; mysql through
#               box mysql-load, on several sessions; staged, swapped in)
#       native: OpenSSH piping the same file: ssh box redis-cli --pipe < file,
#               ssh box psql -c '\copy ... FROM STDIN' < file,
#               ssh box mariadb -e 'LOAD DATA LOCAL INFILE ...' < file,
#               ssh box mariadb < dump                              goal >= 1.0x
# (a) snapshot fetched on the box (S3, served by moto on the bridge):
#       ours:   workstation seed --reset (s3:// RESP, pg_dump -Fc and SQL
#               objects: presigned, curl | redis-cli --pipe; pg_restore -j;
#               curl | box mysql-load)
#       native: the loader run on the box on a file already there:
#               redis-cli --pipe < file, \copy FROM file, pg_restore -j,
#               mariadb < dump                                      goal >= 0.9x
# ratio = native time / our time (above 1: we are faster). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-6} KEYS=${KEYS:-1000000} ROWS=${ROWS:-1000000}
# What users run: the release build.
PROFILE=${PROFILE:-release}
source bench/common.sh
work=$(mktemp -d /var/lib/workstation-bench-XXXX)
chmod 0755 "$work"
moto_pid=
cleanup() {
    [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null
    "$bin" destroy bench --purge --yes >/dev/null 2>&1 || true
    ip link del $bridge 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

bench_home "$work/home"

echo "generating $KEYS redis keys and $ROWS rows" >&2
bench_seeds "$work/seeds" "$KEYS" "$ROWS"

manifest() { # redis postgres mysql seeds
    printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-0123456789abcdef0"\n'
    printf '[stores.cache]\nkind = "redis"\nseed = "%s"\n' "$1"
    printf '[stores.main]\nkind = "postgres"\ndatabase = "app"\nseed = "%s"\n' "$2"
    printf '[stores.shop]\nkind = "mysql"\nseed = "%s"\n' "$3"
}
export WORKSTATION_MANIFEST=$work/workstation.toml
manifest "seeds/cache.resp" "seeds/main" "seeds/shop" > "$WORKSTATION_MANIFEST"

echo "creating the box (first seed)" >&2
"$bin" create bench >/dev/null
box() { ssh -F "$HOME/.ssh/config" -o BatchMode=yes ws-bench "$@"; }
psql_box="psql -X -q -h 127.0.0.1 -U postgres"
fresh_db() { box "$psql_box -d postgres -c 'DROP DATABASE IF EXISTS $1' -c 'CREATE DATABASE $1' && $psql_box -d $1 -f $work/seeds/main/schema.sql"; }
mysql_box="mariadb --no-defaults -h 127.0.0.1 -u root"
# fresh_mysql DB [schema]: an empty database, with the CSV's table.
fresh_mysql() { box "$mysql_box -e 'DROP DATABASE IF EXISTS $1; CREATE DATABASE $1' ${2:+&& $mysql_box $1 < $work/seeds/shop/schema.sql}"; }
# LOAD DATA by hand, as `seed` runs it: stdin into table items of DB $1.
cat > "$work/load-data.sh" <<'SH'
exec mariadb --no-defaults -h 127.0.0.1 -u root --local-infile=1 "$1" -e "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE items CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\n' IGNORE 1 LINES"
SH

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A T
timed() { # name command...
    local name=$1; shift
    local t0 t1; t0=$(now); "$@" >"$work/$name.out" 2>"$work/err" || { echo "$name failed:" >&2; cat "$work/err" >&2; exit 1; }; t1=$(now)
    T[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') "
}

# Each pair's two sides alternate which goes first, round by round, so a
# machine that gets slower (or faster) during the run weighs on both alike.
both() { # round ours_fn native_fn
    if [ $(($1 % 2)) = 0 ]; then "$2"; "$3"; else "$3"; "$2"; fi
}
ours_redis_stream() { timed ours_redis_stream "$bin" -o json seed cache --reset --box bench; }
native_redis_stream() {
    box "redis-cli -h 127.0.0.1 -n 1 flushdb" >/dev/null
    timed native_redis_stream sh -c "ssh -F '$HOME/.ssh/config' -o BatchMode=yes ws-bench 'redis-cli -h 127.0.0.1 -n 1 --pipe' < '$work/seeds/cache.resp'"
}
ours_pg_stream() { timed ours_pg_stream "$bin" -o json seed main --reset --box bench; }
native_pg_stream() {
    fresh_db native_stream >/dev/null
    timed native_pg_stream sh -c "ssh -F '$HOME/.ssh/config' -o BatchMode=yes ws-bench \"$psql_box -d native_stream -c '\\\\copy items FROM STDIN WITH (FORMAT csv, HEADER true)'\" < '$work/seeds/main/01-items.csv'"
}
ours_mysql_csv_stream() {
    manifest "seeds/cache.resp" "seeds/main" "seeds/shop" > "$WORKSTATION_MANIFEST"
    timed ours_mysql_csv_stream "$bin" -o json seed shop --reset --box bench
}
native_mysql_csv_stream() {
    fresh_mysql native_stream schema >/dev/null
    timed native_mysql_csv_stream sh -c "ssh -F '$HOME/.ssh/config' -o BatchMode=yes ws-bench 'sh $work/load-data.sh native_stream' < '$work/seeds/shop/01-items.csv'"
}
ours_mysql_dump_stream() {
    manifest "seeds/cache.resp" "seeds/main" "seeds/shop.sql" > "$WORKSTATION_MANIFEST"
    timed ours_mysql_dump_stream "$bin" -o json seed shop --reset --box bench
}
native_mysql_dump_stream() {
    fresh_mysql native_stream >/dev/null
    timed native_mysql_dump_stream sh -c "ssh -F '$HOME/.ssh/config' -o BatchMode=yes ws-bench '$mysql_box native_stream' < '$work/seeds/shop.sql'"
}
# mysqldump's own output (extended INSERTs) of the table the CSV loaded.
box "mariadb-dump --no-defaults -h 127.0.0.1 -u root shop > $work/seeds/shop.sql"
echo "(b) streamed from the laptop, $RUNS rounds" >&2
for round in $(seq "$RUNS"); do
    both "$round" ours_redis_stream native_redis_stream
    timed ours_noop "$bin" seed cache --box bench
    both "$round" ours_pg_stream native_pg_stream
    both "$round" ours_mysql_csv_stream native_mysql_csv_stream
    both "$round" ours_mysql_dump_stream native_mysql_dump_stream
done

echo "(a) on the box: moto S3 on $gw, pg_dump of the loaded table" >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H $gw -p "$port" >"$work/moto.log" 2>&1 & moto_pid=$!
export AWS_ENDPOINT_URL=http://$gw:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
until curl -fs "$AWS_ENDPOINT_URL/moto-api/" >/dev/null; do sleep 0.1; done
box "pg_dump -Fc -h 127.0.0.1 -U postgres -d app -f $work/seeds/main.dump"
# Prints a presigned URL of the RESP object, as `seed` fetches it (moto
# refuses anonymous reads).
cache_url=$(python3 - "$work/seeds" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
s3.create_bucket(Bucket="bench")
for name in ("cache.resp", "main.dump", "shop.sql"):
    s3.upload_file(f"{sys.argv[1]}/{name}", "bench", name)
print(s3.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": "cache.resp"}, ExpiresIn=3600))
PY
)
manifest "s3://bench/cache.resp" "s3://bench/main.dump" "s3://bench/shop.sql" > "$WORKSTATION_MANIFEST"
ours_redis_box() { timed ours_redis_box "$bin" -o json seed cache --reset --box bench; }
native_redis_box() {
    box "redis-cli -h 127.0.0.1 -n 1 flushdb" >/dev/null
    timed native_redis_box box "redis-cli -h 127.0.0.1 -n 1 --pipe < $work/seeds/cache.resp"
}
ours_pg_box() { timed ours_pg_box "$bin" -o json seed main --reset --box bench; }
native_pg_box() {
    fresh_db native_box >/dev/null
    timed native_pg_copy_box box "$psql_box -d native_box -c \"\\copy items FROM '$work/seeds/main/01-items.csv' WITH (FORMAT csv, HEADER true)\""
    box "$psql_box -d postgres -c 'DROP DATABASE IF EXISTS native_restore' -c 'CREATE DATABASE native_restore'"
    timed native_pg_restore_box box "pg_restore -j \$(nproc) -h 127.0.0.1 -U postgres -d native_restore --no-owner --no-privileges $work/seeds/main.dump"
}
ours_mysql_box() { timed ours_mysql_box "$bin" -o json seed shop --reset --box bench; }
native_mysql_box() {
    fresh_mysql native_box >/dev/null
    timed native_mysql_box box "$mysql_box native_box < $work/seeds/shop.sql"
}
for round in $(seq "$RUNS"); do
    timed moto_download box "curl -fsS -o /dev/null '$cache_url'"
    both "$round" ours_redis_box native_redis_box
    both "$round" ours_pg_box native_pg_box
    both "$round" ours_mysql_box native_mysql_box
done

m() { printf '%s\n' ${T[$1]} | median; }
row() { # label ours native
    local o n; o=$(m "$2"); n=$(m "$3")
    # The label through the environment: -v would take \copy's backslash as an escape.
    L="$1" awk -v o="$o" -v n="$n" 'BEGIN { printf "%-44s ours %6.2f s   native %6.2f s   ratio %.2fx\n", ENVIRON["L"], o, n, n / o }'
}
echo
echo "runs: $RUNS (medians), $KEYS redis keys ($(du -h "$work/seeds/cache.resp" | cut -f1)), $ROWS postgres and mysql rows ($(du -h "$work/seeds/main/01-items.csv" | cut -f1) CSV, $(du -h "$work/seeds/shop.sql" | cut -f1) mysqldump)"
row "(b) redis, streamed vs ssh | redis-cli --pipe" ours_redis_stream native_redis_stream
row "(b) postgres, streamed vs ssh | psql \\copy" ours_pg_stream native_pg_stream
printf '%-44s %6.2f s (hash the RESP snapshot, connect, read the marker)\n' "    no-op seed (already loaded)" "$(m ours_noop)"
row "(a) redis, S3 on box vs redis-cli --pipe" ours_redis_box native_redis_box
printf '%-44s %6.2f s (moto, a Python server, serving the RESP object: part of "ours" above)\n' "    S3 download alone" "$(m moto_download)"
row "(a) postgres, S3 dump vs \\copy on box" ours_pg_box native_pg_copy_box
row "(a) postgres, S3 dump vs pg_restore -j on box" ours_pg_box native_pg_restore_box
row "(b) mysql CSV, streamed vs ssh | LOAD DATA" ours_mysql_csv_stream native_mysql_csv_stream
row "(b) mysql dump, streamed vs ssh | mariadb" ours_mysql_dump_stream native_mysql_dump_stream
row "(a) mysql, S3 dump vs mariadb < dump on box" ours_mysql_box native_mysql_box
# Where our time goes: the steps of each load (last run), from the JSON report.
for name in ours_redis_stream ours_pg_stream ours_redis_box ours_pg_box ours_mysql_csv_stream ours_mysql_dump_stream ours_mysql_box; do
    python3 - "$work/$name.out" "$name" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))[0]
steps = ", ".join(f"{p['step']} {p['seconds']:.2f}" for p in report["phases"])
print(f"    {sys.argv[2]:<20} {report['seconds']:.2f} s on the box: {steps}")
PY
done
ratio() { awk -v o="$(m "$1")" -v n="$(m "$2")" 'BEGIN { printf "%.2f", n / o }'; }
# The spread: the lowest and highest of the rounds' own ratios (native /
# ours of the same round), so a change can be told from noise.
spread() { # key ours native
    paste <(printf '%s\n' ${T[$2]}) <(printf '%s\n' ${T[$3]}) |
        awk -v k="$1" '{ r = $2 / $1; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r } END { printf "%s_min=%.2f %s_max=%.2f", k, lo, k, hi }'
}
pairs=(redis_stream:ours_redis_stream:native_redis_stream pg_stream:ours_pg_stream:native_pg_stream
    redis_box:ours_redis_box:native_redis_box pg_box_copy:ours_pg_box:native_pg_copy_box pg_box_restore:ours_pg_box:native_pg_restore_box
    mysql_stream_csv:ours_mysql_csv_stream:native_mysql_csv_stream mysql_stream_dump:ours_mysql_dump_stream:native_mysql_dump_stream
    mysql_box:ours_mysql_box:native_mysql_box)
line="seed: rounds=$RUNS"
for p in "${pairs[@]}"; do
    IFS=: read -r key ours native <<<"$p"
    line+=" $key=$(ratio "$ours" "$native") $(spread "$key" "$ours" "$native")"
done
# mysql_stream: the lower of the two streamed paths (CSV, dump).
line+=" mysql_stream=$(awk -v a="$(ratio ours_mysql_csv_stream native_mysql_csv_stream)" -v b="$(ratio ours_mysql_dump_stream native_mysql_dump_stream)" 'BEGIN { printf "%.2f", a < b ? a : b }')"
echo "$line"
