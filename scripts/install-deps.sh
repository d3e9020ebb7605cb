#!/usr/bin/env bash
# Installs what builds and tests need beyond the Rust toolchain: Debian's
# sshd/ssh/iproute2 (boxes are network namespaces running real sshd), the
# box stack (supervisor, redis, postgresql, mariadb for mysql stores, curl, nginx: the front of services;
# python3-venv for the SQS server of sqs stores), dnsmasq (a real DNS server
# on loopback for the hosts agent's re-resolution test), nftables (the idle
# check counts connections to service ports), nix-bin (parses the .nix files
# and evaluates images/lib.nix; too old for nixpkgs itself), moto's EC2/S3 server
# from PyPI, checkov and python-hcl2 for terraform/, and the IAM simulator
# (@cloud-copilot/iam-simulate, from npm, pinned by tests/support/iam/
# package-lock.json). Quick no-op when everything is present.
set -euo pipefail

DEBS=(openssh-server openssh-client iproute2 util-linux procps supervisor redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client python3-venv curl rsync dnsmasq-base nftables nix-bin nginx-light)
# `--bench`: what the benchmarks (bench/) use beyond the tests' set: ab
# (apache2-utils) loads services in bench/intercept.sh; wrk (keep-alive
# connections, sub-millisecond percentiles) in bench/team-intercept.sh.
if [ "${1:-}" = --bench ]; then
    DEBS+=(apache2-utils wrk)
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get, and boxes need network namespaces)" >&2
    exit 1
fi

missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}" >&2
    apt-get update -qq
    # policy-rc.d: the packages must not start their own servers on this
    # machine; boxes run them under their own supervisord.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd

# checkov and python-hcl2 (terraform checks) and dist each get a virtualenv: checkov
# pins library versions that moto's server does not accept.
venv() {
    local dir=/opt/workstation-ci/$1; shift
    if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/pip" show -q "${1%%=*}" >/dev/null 2>&1; then
        echo "install-deps: $dir: pip install $*" >&2
        python3 -m venv "$dir"
        "$dir/bin/pip" install -q "$@"
    fi
}
venv checkov "checkov==3.3.30"
venv hcl2 "python-hcl2==8.1.4"
# dist (cargo-dist), the release tool, as Astral's PyPI build of the same
# version dist-workspace.toml names: `dist plan` and `dist generate --check`.
venv dist "astral-dev-toolchain-cargo-dist==0.33.0"

# The IAM simulator, exactly the lockfile's versions (its AWS service data
# decides which condition keys exist): again when the lockfile changed.
iam=$(cd "$(dirname "$0")/../tests/support/iam" && pwd)
if ! cmp -s "$iam/package-lock.json" "$iam/node_modules/.installed-lock.json" 2>/dev/null; then
    echo "install-deps: npm ci in $iam" >&2
    (cd "$iam" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && cp package-lock.json node_modules/.installed-lock.json)
fi

if ! python3 -c "import moto.server, flask, flask_cors" 2>/dev/null; then
    echo "install-deps: pip install moto[server]" >&2
    python3 -m pip install -q "moto[server]>=5,<6"
fi

# A local box's sqs store runs moto's server as nobody (stack/stores.rs),
# who cannot reach the toolchain's Python under /root: a virtualenv of
# Debian's, on boxes' PATH as moto_server.
sqs=/opt/workstation-ci/sqs
if [ ! -x "$sqs/bin/moto_server" ]; then
    echo "install-deps: $sqs: pip install moto[server]" >&2
    /usr/bin/python3 -m venv "$sqs"
    "$sqs/bin/pip" install -q "moto[server]>=5,<6"
fi
ln -sfn "$sqs/bin/moto_server" /usr/local/bin/moto_server
