"""The unmodified npm `e2b` SDK (tests/e2b/, pinned with its lockfile and
installed by `npm ci`, see scripts/install-deps) against a real server with
real sandboxes: tests/e2b/*.test.mjs under node's own test runner, with the
SDK pointed at this server by E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY
(one port for the control plane and envd)."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, private_server

E2B_DIR = os.path.join(ROOT, "tests", "e2b")
CAP = 12


def sdk_env(srv, cap_key):
    key = srv.client.key
    return dict(os.environ, E2B_API_URL=srv.url, E2B_SANDBOX_URL=srv.url,
                E2B_API_KEY="e2b_" + key[len("sk-sb-"):], SANDBASE_KEY=key,
                E2B_CAP_KEY="e2b_" + cap_key[len("sk-sb-"):], E2B_CAP=str(CAP))


@pytest.mark.parametrize("script", ["control_plane.test.mjs", "metrics.test.mjs", "commands.test.mjs",
                                    "files.test.mjs", "snapshots.test.mjs"])
def test_e2b_sdk(script):
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/install-deps"
    assert os.path.isdir(os.path.join(E2B_DIR, "node_modules", "e2b")), \
        "the e2b SDK is not installed: run scripts/install-deps (npm ci in tests/e2b)"
    with private_server("e2b-sdk", pool_size=1, org_sandbox_cap=CAP) as srv:
        cap_key = srv.new_key("e2b-capped")
        proc = subprocess.run([node, "--test", "--test-reporter=spec", script], cwd=E2B_DIR,
                              env=sdk_env(srv, cap_key), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:] + srv.log()[-5000:]
