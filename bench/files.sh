#!/usr/bin/env bash
# The file API against baselines measured in the same run, on the same disk:
#   upload (octet-stream and multipart) and download MiB/s of a 1 GiB file,
#   also through E2B's envd routes (POST/GET /files, as the e2b SDK sends them),
#   beside `cp` of the same file, latency of a small write and read beside a
#   synchronous `cat`, and serve's RSS growth during the transfers.
# Usage: bench/files.sh   (as root; builds first; loopback only; needs ~4 GiB
#        free in /tmp; SANDBASE=path/to/sandbase to measure another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
work=$(mktemp -d /tmp/sandbase-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 bench/files_bench.py --bin "${SANDBASE:-$PWD/build/sandbase}" --work "$work"
