#!/usr/bin/env bash
# `workstation reap` over N (default 10,000) instances in moto's EC2 API:
# API calls made (counted by an SDK interceptor) against the minimum, and
# the wall time. 60% of the boxes were active ten minutes ago, 40% idle.
#
# minimum: DescribeInstances pages (1,000 per page on EC2; moto answers in
# one) + StopInstances batches (100 ids each) + one CreateTags per batch for
# the stopped-by reason.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
source bench/moto-env.sh

at=$(python3 - "$N" <<'PY'
import sys, datetime, boto3
n = int(sys.argv[1])
ec2 = boto3.client("ec2", region_name="us-east-1")
at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=3)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
ids = []
for call in range((n + 499) // 500):
    count = min(500, n - call * 500)
    out = ec2.run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "workstation:owner", "Value": f"u{call}"}, {"Key": "workstation:name", "Value": "dev"}]}])
    ids += [i["InstanceId"] for i in out["Instances"]]
active = ids[: n * 6 // 10]
for i in range(0, len(active), 500):
    ec2.create_tags(Resources=active[i:i + 500], Tags=[{"Key": "workstation:last-active", "Value": fmt(at - datetime.timedelta(minutes=10))}])
print(fmt(at))
PY
)
printf '[box]\ninstance_type = "t3.medium"\ndisk_gib = 30\nimage_id = "ami-12c6146b"\n' > "$work/workstation.toml"
export WORKSTATION_MANIFEST=$work/workstation.toml
t0=$(date +%s%3N)
"$bin" reap --at "$at" --output json > "$work/reap.json"
t1=$(date +%s%3N)
python3 - "$work/reap.json" "$N" $((t1 - t0)) <<'PY'
import json, sys, math
r = json.load(open(sys.argv[1])); n = int(sys.argv[2]); ms = int(sys.argv[3])
rep, calls = r["report"], r["api_calls"]
stopped = len(rep["stopped"])
batches = math.ceil(stopped / 100)
# One more DescribeInstances for preview boxes (any state) to expire.
minimum = {"DescribeInstances": math.ceil(n / 1000) + 1, "StopInstances": batches, "CreateTags": batches}
total, least = sum(calls.values()), sum(minimum.values())
print(f"instances: {rep['examined']} examined, {stopped} stopped, {len(rep['gone'])} gone, {len(rep['failed'])} failed")
for op in sorted(set(calls) | set(minimum)):
    print(f"  {op:<18} {calls.get(op, 0):>4} calls (minimum {minimum.get(op, 0)})")
print(f"API calls: {total} vs minimum {least} (EC2 paging; moto returns one page): ratio {total / least:.2f}")
print(f"wall time: {ms / 1000:.1f} s ({ms / max(n, 1):.2f} ms per instance, moto included)")
print(f"reap: instances={n} api_calls={total} minimum={least} calls_over_minimum={total / least:.2f} wall_s={ms / 1000:.1f}")
PY
