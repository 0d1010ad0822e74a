#!/usr/bin/env bash
# Sandbox hot paths against baselines measured in the same run:
#   create (cold, and from the warm pool) vs `bwrap --unshare-all ... true`,
#   exec of `true` vs a bare fork+exec of /bin/true, execs/s at 1/8/64 clients,
#   host memory per idle sandbox, and a pooled create with egress (veth +
#   nftables attached at claim) beside one without; the uplink is a veth into
#   a namespace the bench creates, so nothing leaves the machine.
# Usage: bench/sandbox.sh   (as root; builds first; loopback only; bounded;
#        SANDBASE=path/to/sandbase to measure another binary, as bench/http.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
work=$(mktemp -d /tmp/sandbase-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/spawn" bench/spawn_baseline.c
/usr/bin/python3 bench/sandbox_bench.py --bin "${SANDBASE:-$PWD/build/sandbase}" --spawn "$work/spawn" --work "$work"
