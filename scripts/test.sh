#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end suite (moto's EC2 API plus
# real boxes: network namespaces with sshd on the bridge wstest0, which owns
# all of 10.78.0.0/16 so no test packet leaves this machine).
# Needs root for network namespaces. Extra arguments go to `cargo test`
# (e.g. `bash scripts/test.sh --test e2e stack::`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# One cargo invocation builds every binary (the reaper Lambda included: it
# is a workspace crate, not a feature) and every test with one feature set,
# so the SDK is compiled once; `cargo test` then only runs them.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
