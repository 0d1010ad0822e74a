#!/usr/bin/env bash
# Streamed output against baselines measured in the same run (issue 8):
#   stdout throughput of `head -c SIZE /dev/zero` through SSE beside the same
#   command into a raw pipe (target: at least 0.5x), the same for printable
#   bytes, time to the first byte of a streamed `echo` beside a synchronous
#   exec of it, and serve's RSS and threads with 500 open streams.
# Usage: bench/stream.sh [SIZE]   (as root; builds first; loopback only;
#        SIZE for head -c, default 1G; SANDBASE=path/to/sandbase for another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
work=$(mktemp -d /tmp/sandbase-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 bench/stream_bench.py --bin "${SANDBASE:-$PWD/build/sandbase}" --work "$work" --size "${1:-1G}"
