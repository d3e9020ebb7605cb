#!/usr/bin/env bash
# Activity reports at 10,000 boxes in one account and region: a simulated
# day of every box's minute check (report rule: provisioner/src/idle/report.rs)
# through the box's real client to moto behind the throttling shim holding
# EC2's default CreateTags and StopInstances buckets on a simulated clock.
# Prints the report rate against the bucket's refill and the old rule's
# (a tag every 5 minutes in use), reports lost, and stops reap would have
# decided on stale tags (tests/tests/activity.rs; an ignored test so that it
# builds with the rest). Takes 45 minutes here, mostly moto (launching
# 10,000 instances, one DescribeInstances over them, 63,000 calls).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --quiet --locked --test e2e activity::ten_thousand_boxes -- --ignored --nocapture 2>&1 | grep -E "boxes,|old rule|shim:|^activity:"
