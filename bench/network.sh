#!/usr/bin/env bash
# Sandbox egress throughput: a sandbox (veth, NAT, its nftables tables)
# sending to a test host in a network namespace the bench creates, beside
# the host itself sending to the same receiver, same run (target: the
# sandbox at least 0.8x the host); and the port proxy: HTTP requests/s and
# latency through it to a server inside a sandbox beside the same client
# talking to that server directly in the sandbox's namespace (target: at
# least 0.5x), same run.
# Usage: bench/network.sh [--only proxy|egress] [--runs N] [--seconds S] [--connections C]
#        (as root; builds first; nothing leaves the machine:
#        the uplink is a veth into the bench's namespace, TEST-NET-2 addresses;
#        SANDBASE=path/to/sandbase to measure another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SANDBASE:-}" ] || make -s build
work=$(mktemp -d /tmp/sandbase-bench-net.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 bench/network_bench.py --bin "${SANDBASE:-$PWD/build/sandbase}" --work "$work" "$@"
