#!/usr/bin/env bash
# Webhook delivery: events delivered per second to a loopback receiver, and
# the API's latency (GET /sandboxes) idle beside the same while 1,000
# deliveries are in flight to a receiver that holds each for 10 s.
# Usage: bench/webhooks.sh   (as root; builds first; loopback only; bounded;
#        SANDBASE=path/to/sandbase to measure another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
work=$(mktemp -d /tmp/sandbase-bench-webhooks.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 bench/webhooks_bench.py --bin "${SANDBASE:-$PWD/build/sandbase}" --work "$work"
