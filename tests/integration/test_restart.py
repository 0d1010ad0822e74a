"""A kill -9 of `sandbase serve` loses nothing: sandboxes and their
processes carry on, and the restarted server re-adopts them. Sandboxes
whose shim died meanwhile are marked killed."""
import os
import signal
import sqlite3
import time

import pytest

from conftest import private_server


@pytest.fixture
def own_server():
    with private_server("restart", pool_size=1) as srv:
        yield srv


def test_kill_9_keeps_sandboxes_and_processes(own_server):
    c = own_server.client
    sid = c.create()
    paused = c.create()
    counter = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"
    c.run(sid, "/bin/sh", "-c", f"setsid sh -c '{counter}' >/dev/null 2>&1 &")
    c.sh(sid, "echo kept > /workspace/file")
    assert c.post(f"/sandboxes/{paused}/pause").status_code == 204
    own_server.stop(signal.SIGKILL)
    time.sleep(0.5)
    own_server.start()
    assert c.get(f"/sandboxes/{sid}").json()["status"] == "running"
    assert c.get(f"/sandboxes/{paused}").json()["status"] == "paused"
    first = int(c.sh(sid, "cat /tmp/count")["stdout"])
    time.sleep(0.4)
    assert int(c.sh(sid, "cat /tmp/count")["stdout"]) > first
    assert c.sh(sid, "cat /workspace/file")["stdout"] == "kept\n"
    assert c.post(f"/sandboxes/{paused}/connect", json={}).status_code == 200
    assert c.sh(paused, "echo back")["stdout"] == "back\n"


def test_exec_in_flight_during_kill_9_does_not_kill_the_sandbox(own_server):
    c = own_server.client
    sid = c.create()
    import threading
    import requests

    def run_and_lose_the_answer():
        try:
            c.run(sid, "sleep", "2")
        except requests.ConnectionError:
            pass  # the server died under the request: expected
    t = threading.Thread(target=run_and_lose_the_answer)
    t.start()
    time.sleep(0.5)
    own_server.stop(signal.SIGKILL)
    t.join()
    own_server.start()
    assert c.sh(sid, "echo alive")["stdout"] == "alive\n"


def test_dead_shims_are_marked_killed(own_server):
    c = own_server.client
    sid = c.create()
    own_server.stop(signal.SIGKILL)
    pid_file = os.path.join(own_server.data_dir, "run", "sandboxes", sid, "shim.pid")
    os.kill(int(open(pid_file).read().strip()), signal.SIGKILL)
    time.sleep(0.5)
    own_server.start()
    got = c.get(f"/sandboxes/{sid}").json()
    assert got["status"] == "stopped" and got["stopReason"] == "lost"
    db = sqlite3.connect(os.path.join(own_server.data_dir, "sandbase.db"))
    status = db.execute("SELECT status FROM sandboxes WHERE id = ?", (sid,)).fetchone()[0]
    assert status == "stopped"
    types = [r[0] for r in db.execute("SELECT type FROM events WHERE sandbox_id = ?", (sid,))]
    assert "sandbox.lifecycle.killed" in types
    for ctl in ("memory", "pids", "freezer"):
        assert not os.path.exists(f"/sys/fs/cgroup/{ctl}/sandbase/{sid}")


def test_graceful_stop_leaves_sandboxes_running(own_server):
    c = own_server.client
    sid = c.create()
    assert own_server.stop(signal.SIGTERM) == 0
    own_server.start()
    assert c.sh(sid, "echo still")["stdout"] == "still\n"
