#!/usr/bin/env bash
# What reading secrets adds to a program's start (release build), same run:
#   launch: `workstation box launch --from laptop` with 3 secrets from a
#           local box's holder (a root-only socket; what every start and
#           restart of a program with secrets runs), exec'ing /bin/true;
#   native: `env A=... B=... C=... /bin/true`, the values already at hand.
# STARTS starts each (default 200). Per-start milliseconds, and their
# ratio. Reading from Systems Manager adds the network round trips of
# GetParameter on top (not measured here: no AWS). Needs root (the holder
# answers only root). Last line: secrets: ratio=R launch_ms=A native_ms=B.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
STARTS=${STARTS:-200}
PROFILE=${PROFILE:-release}
source bench/common.sh

work=$(mktemp -d)
sock=$work/secrets.sock
trap 'pkill -f -- "hold-secrets --serve --socket $sock" 2>/dev/null || true; rm -rf "$work"' EXIT

printf '{"values":{"ssm:/workstation/shared/a":"value-a","ssm:/workstation/shared/b":"value-b","ssm:/workstation/{owner}/c":"value-c"},"missing":{}}' \
    | "$bin" box hold-secrets --socket "$sock" >/dev/null

launch() {
    for _ in $(seq "$STARTS"); do
        "$bin" box launch --from laptop --socket "$sock" --secret A=ssm:/workstation/shared/a --secret B=ssm:/workstation/shared/b \
            --secret 'C=ssm:/workstation/{owner}/c' -- /bin/true
    done
}
native() {
    for _ in $(seq "$STARTS"); do
        env A=value-a B=value-b C=value-c /bin/true
    done
}
# The values really arrive (and a wrong reference fails, naming it).
[ "$("$bin" box launch --from laptop --socket "$sock" --secret A=ssm:/workstation/shared/a -- /bin/sh -c 'printf %s "$A"')" = value-a ]
! "$bin" box launch --from laptop --socket "$sock" --secret A=ssm:/workstation/shared/none -- /bin/true 2>/dev/null

l=$(ms_of launch)
n=$(ms_of native)
echo "starts:        $STARTS each"
echo "box launch:    ${l} ms in all"
echo "env (native):  ${n} ms in all"
awk -v l="$l" -v n="$n" -v s="$STARTS" 'BEGIN { printf "secrets: ratio=%.2f launch_ms=%.2f native_ms=%.2f\n", l / n, l / s, n / s }'
