#!/usr/bin/env bash
# `workstation image publish` throughput against moto's EBS direct APIs, on
# a 1 GiB sparse disk (10% of its blocks hold data, like a fresh NixOS
# image) and a 1 GiB dense one (random bytes): disk MiB/s, the fraction of
# blocks skipped as zero, and the speed-up of 32 blocks in flight over one
# at a time. moto is a single Python process: on EC2 the per-block latency
# is higher and concurrency matters more.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/moto-env.sh

printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_tag = "bench"\n' > "$work/workstation.toml"
export WORKSTATION_MANIFEST=$work/workstation.toml

# Sparse: every tenth 512 KiB block written, the rest holes.
python3 - "$work/sparse.raw" <<'PY'
import os, sys
block, blocks = 512 * 1024, 2048
with open(sys.argv[1], "wb") as f:
    f.truncate(block * blocks)
    for i in range(0, blocks, 10):
        f.seek(i * block)
        f.write(os.urandom(block))
PY
head -c 1G /dev/urandom > "$work/dense.raw"

run() { # disk, concurrency, image line
    "$bin" image publish "$work/$1.raw" --arch x86_64 --image "$3" \
        --concurrency "$2" --output json > "$work/$1-$2.json"
}
for disk in sparse dense; do
    run "$disk" 32 "bench-$disk-32"
    run "$disk" 1 "bench-$disk-1"
done

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
print(f"{'disk':8} {'blocks':>7} {'sent':>6} {'zero skipped':>13} {'MiB/s (32)':>11} {'MiB/s (1)':>10} {'speed-up':>9}")
for disk in ("sparse", "dense"):
    a = json.load(open(f"{w}/{disk}-32.json"))["upload"]
    b = json.load(open(f"{w}/{disk}-1.json"))["upload"]
    print(f"{disk:8} {a['blocks']:7} {a['uploaded']:6} {a['skipped_zero'] / a['blocks']:12.1%} "
          f"{a['mib_per_s']:11.0f} {b['mib_per_s']:10.0f} {a['mib_per_s'] / b['mib_per_s']:8.2f}x")
r = {d: (json.load(open(f"{w}/{d}-32.json"))["upload"], json.load(open(f"{w}/{d}-1.json"))["upload"]) for d in ("sparse", "dense")}
print(f"publish: sparse_mib_s={r['sparse'][0]['mib_per_s']:.0f} dense_mib_s={r['dense'][0]['mib_per_s']:.0f} "
      f"dense_speedup={r['dense'][0]['mib_per_s'] / r['dense'][1]['mib_per_s']:.2f}")
PY
