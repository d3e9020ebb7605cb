#!/usr/bin/env bash
# Every verb interrupted anywhere, under every fault the test shim models
# (issue 36): the suite's interrupt sweeps run with POINTS kill points per
# verb (default 20: 10 verbs, 200 runs; the suite runs 20, 8 for AWS).
# Each point kills (kill -9) or interrupts (Ctrl-C) the CLI at a seeded
# fraction of a clean run, runs the same command again, and checks the end
# state against a clean run's:
#   create, start, up (a change each time),         tests/tests/interrupts.rs
#     destroy --purge
#   seed --reset, sync --once, upgrade              tests/tests/interrupts.rs
#   preview up (a new commit each time)             tests/tests/interrupts.rs
#   intercept                                       tests/tests/intercept.rs
#   create on AWS: moto behind the shim, with 2 s   tests/tests/faults.rs
#     of eventual consistency for everything made,
#     DescribeInstances throttled in bursts (a
#     4-token bucket, 4/s), no capacity in the
#     first zone
# plus the fault tests themselves (a lost RunInstances answer, capacity
# and Unsupported fallback by zone and type, a fallback type refused). converged counts re-runs that gave a clean
# run's state; leaked counts instances, volumes, key pairs, boxes or laptop
# processes left behind; lost counts data gone (a key or file that was
# there before). The sweeps run on the debug build the suite uses: they
# measure outcomes, not speed. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
POINTS=${POINTS:-20}
bash scripts/install-deps.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
WORKSTATION_KILL_POINTS=$POINTS cargo test --quiet --locked -p workstation-tests --test e2e -- \
    interrupts:: intercept::intercept_interrupted faults:: --nocapture >"$out" 2>&1 || status=$?
grep -oE "interrupts: verb=.*|[a-z-]+: [0-9]+ of [0-9]+ runs signalled mid-way.*|test result.*|panicked.*" "$out" || true
awk -v status=$status '
    match($0, /interrupts: verb=.*/) {
        n = split(substr($0, RSTART), f, " ")
        for (i = 2; i <= n; i++) { split(f[i], kv, "="); sum[kv[1]] += kv[2] }
        verbs++
    }
    END {
        if (verbs == 0) { print "faults: no sweep ran (see above)"; exit 1 }
        printf "faults: verbs=%d runs=%d signalled=%d converged=%d leaked=%d lost=%d tests_passed=%s\n",
            verbs, sum["runs"], sum["signalled"], sum["converged"], sum["leaked"], sum["lost"], (status == 0 ? "yes" : "no")
    }' "$out"
