"""The shim as its own small executable (issue 7): every sandbox is served
by `sandbase-shim`, found beside the `sandbase` binary that runs serve (or
where `shim_path` says), which maps no HTTP server, TLS or SQLite; a dead
shim's leftovers are cleaned by `sandbase-shim --cleanup ID`."""
import os
import shutil
import signal
import tempfile
import time

import pytest

from conftest import BIN, private_server

SERVER_ONLY_LIBS = ("libmicrohttpd", "libgnutls", "libsqlite3", "libsodium")


def shim_pid(srv, sid):
    with open(os.path.join(srv.data_dir, "run", "sandboxes", sid, "shim.pid")) as f:
        return int(f.read())


@pytest.fixture
def own_server():
    with private_server("shim-binary", pool_size=1) as srv:
        yield srv


def test_sandboxes_are_served_by_the_small_shim(own_server):
    c = own_server.client
    sid = c.create()
    pid = shim_pid(own_server, sid)
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe == os.path.join(os.path.dirname(os.path.realpath(BIN)), "sandbase-shim")
    with open(f"/proc/{pid}/cmdline") as f:
        argv = f.read().split("\0")
    assert argv[:3] == ["sandbase-shim", "--id", sid] and "--spec" in argv
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert "libseccomp" in maps                # the control: its own libraries are mapped
    for lib in SERVER_ONLY_LIBS:
        assert lib not in maps, lib
    assert c.sh(sid, "echo hi")["stdout"] == "hi\n"


def sandbox_cgroups(sid):
    """The cgroup dirs of sid (v2, or each v1 controller's)."""
    roots = ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", c) for c in ("cpu", "freezer", "memory", "pids")]
    return [p for p in (os.path.join(r, "sandbase", sid) for r in roots) if os.path.isdir(p)]


def test_a_dead_shims_cgroups_are_cleaned_by_the_shim_binary(own_server):
    c = own_server.client
    sid = c.create()
    c.sh(sid, "sleep 300 & echo started")
    assert sandbox_cgroups(sid) != []
    os.kill(shim_pid(own_server, sid), signal.SIGKILL)
    # the sandbox is lost, and destroy ran `sandbase-shim --cleanup`: no cgroup is left
    deadline = time.time() + 15
    while time.time() < deadline and c.get(f"/sandboxes/{sid}").json().get("status") != "stopped":
        time.sleep(0.1)
    assert c.get(f"/sandboxes/{sid}").json()["status"] == "stopped"
    assert sandbox_cgroups(sid) == []
    assert not os.path.exists(os.path.join(own_server.data_dir, "run", "sandboxes", sid))


def test_shim_path_overrides_where_the_shim_is_found():
    elsewhere = tempfile.mkdtemp(prefix="sandbase-shimdir-")
    try:
        copy = os.path.join(elsewhere, "sandbase-shim")
        shutil.copy2(os.path.join(os.path.dirname(os.path.realpath(BIN)), "sandbase-shim"), copy)
        with private_server("shim-path", pool_size=0, shim_path=copy) as srv:
            sid = srv.client.create()
            assert os.readlink(f"/proc/{shim_pid(srv, sid)}/exe") == copy
        missing = os.path.join(elsewhere, "no-such-shim")
        with private_server("shim-path", pool_size=0, shim_path=missing) as srv:
            r = srv.client.post("/sandboxes", json={"templateID": "base"})
            assert r.status_code == 500, r.text
            assert missing in r.json()["message"] and "shim_path" in r.json()["message"]
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
