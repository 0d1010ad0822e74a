#!/usr/bin/env bash
# The E2B SDK's commands.run and create beside SandBase's REST exec and
# create and a bare fork+exec, in one run (bench/e2b.mjs; issue 10).
# Usage: bench/e2b.sh [N execs] [M creates]   (as root; builds first;
#        loopback only; SANDBASE=path/to/sandbase for another binary; needs
#        node and the SDK in tests/e2b/node_modules, scripts/install-deps)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${SANDBASE:-}" ] || make -s build
work=$(mktemp -d /tmp/sandbase-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/spawn" bench/spawn_baseline.c
SANDBASE_BIN="${SANDBASE:-$PWD/build/sandbase}" SPAWN="$work/spawn" /usr/bin/python3 - "$@" <<'PY'
import os, subprocess, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "integration"))
from conftest import private_server
with private_server("bench-e2b", pool_size=2) as srv:
    secret = srv.client.key[len("sk-sb-"):]
    env = dict(os.environ, E2B_API_URL=srv.url, E2B_SANDBOX_URL=srv.url, E2B_API_KEY="e2b_" + secret,
               SANDBASE_KEY=srv.client.key)
    sys.exit(subprocess.run(["node", "bench/e2b.mjs", *sys.argv[1:]], env=env).returncode)
PY
