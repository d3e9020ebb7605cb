#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end suite (moto's EC2 API plus
# real boxes: network namespaces with sshd on the bridge wstest0, which owns
# all of 10.78.0.0/16 so no test packet leaves this machine).
# Needs root for network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --workspace --all-targets --locked
# The reaper Lambda (terraform/reaper.tf) is behind a feature: compile it.
cargo build --workspace --locked --features workstation/lambda --bin workstation-reaper
cargo test --workspace --locked "$@"
