#!/usr/bin/env bash
# A month of synthetic activity for 50 engineers through our idle policy,
# for boxes that boot when woken and boxes that hibernate, and through "stop
# after 30 minutes without an SSH connection": billed hours per active
# hour, stops while the engineer was at the box, wakes (cold ones: a boot,
# not a resume). One `idle-month:` line per default the table chooses; the
# last is the hibernating default's.
# (tests/tests/idle_month.rs; an ignored test so that it builds with the rest.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --quiet --locked --test e2e idle_month:: -- --ignored --nocapture 2>&1 | grep -E "engineers|^\||naive|idle-month:"
