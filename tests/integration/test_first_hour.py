"""The first hour as a new user: the README's flow from a working directory
with a relative --data-dir, one server per data dir, pooled sandboxes that
lost their shim, rebuilding a template in use, and the errors a newcomer
meets. Each test drives a real `sandbase serve` through the HTTP API."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import BIN, Client, cli, free_port, private_server


def wait_health(url, proc, deadline_s=60):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return True
        except (requests.ConnectionError, requests.Timeout):
            pass        # not listening yet, or listening but still bootstrapping
        time.sleep(0.05)
    return False


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="sandbase-cwd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Bootstrapped:
    """`sandbase serve --bootstrap --data-dir ./data` started from workdir,
    as the README's `make run` does (host templates, so it takes a second)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out_path = os.path.join(workdir, "serve.out")
        env = dict(os.environ, SANDBASE_TEMPLATE_SOURCE="host")
        env.pop("SANDBASE_DATA_DIR", None)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--bootstrap", "--data-dir", "./data", "--listen", f"127.0.0.1:{self.port}",
             "--log-format", "text"],
            cwd=workdir, env=env, stdout=open(self.out_path, "wb"), stderr=subprocess.STDOUT)
        assert wait_health(self.url, self.proc), self.output()
        self.key = self.wait_key()

    def output(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def wait_key(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"export SANDBASE_API_KEY=(sk-sb-[0-9a-f]{40})", self.output())
            if m:
                return m.group(1)
            time.sleep(0.05)
        raise AssertionError("no key printed:\n" + self.output())

    def client(self):
        c = Client(self, self.key)
        return c

    def stop(self):
        """Deletes every sandbox (a graceful stop leaves live ones to their
        shims), then stops the server."""
        c = self.client()
        for sb in c.get("/sandboxes?status=running,paused").json():
            c.delete(f"/sandboxes/{sb['sandboxID']}")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def test_readme_flow_with_a_relative_data_dir(workdir):
    srv = Bootstrapped(workdir)
    try:
        assert os.path.exists(os.path.join(workdir, "data", "sandbase.db"))
        c = srv.client()
        # create, the seed example, list, get, timeout, pause, connect, delete
        r = c.post("/sandboxes", json={"templateID": "code_interpreter"})
        assert r.status_code == 201, r.text
        sid = r.json()["sandboxID"]
        r = c.post(f"/sandboxes/{sid}/processes", json={"cmd": "python3", "args": ["-c", "print(1+1)"]})
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == "2\n" and r.json()["exitCode"] == 0
        # the default cwd is the template's workdir, and it exists
        r = c.post(f"/sandboxes/{sid}/processes", json={"cmd": "pwd"})
        assert r.json()["stdout"] == "/workspace\n", r.text
        assert sid in [s["sandboxID"] for s in c.get("/sandboxes").json()]
        got = c.get(f"/sandboxes/{sid}").json()
        assert got["status"] == got["state"] == "running"
        assert c.post(f"/sandboxes/{sid}/timeout", json={"timeout": 600}).status_code == 204
        assert c.post(f"/sandboxes/{sid}/pause").status_code == 204
        assert c.get(f"/sandboxes/{sid}").json()["state"] == "paused"
        r = c.post(f"/sandboxes/{sid}/connect", json={"timeout": 300})
        assert r.status_code == 200 and r.json()["status"] == "running"
        assert c.delete(f"/sandboxes/{sid}").status_code == 204
        # a killed sandbox is still readable, with its reason
        got = c.get(f"/sandboxes/{sid}")
        assert got.status_code == 200, got.text
        assert got.json()["status"] == got.json()["state"] == "stopped"
        assert got.json()["stopReason"] == "deleted" and got.json()["stoppedAt"]
        # the pool pre-builds both templates without complaint
        assert "could not pre-build" not in srv.output()
    finally:
        srv.stop()


def test_a_second_server_on_the_same_data_dir_touches_nothing(workdir):
    srv = Bootstrapped(workdir)
    try:
        c = srv.client()
        sid = c.create("base")
        time.sleep(0.5)     # let the pool fill
        shims_before = sorted(os.listdir(os.path.join(workdir, "data", "run", "sandboxes")))
        for listen in ("3006", f"127.0.0.1:{srv.port}", f"127.0.0.1:{free_port()}"):
            p = subprocess.run([BIN, "serve", "--listen", listen, "--data-dir", "./data"],
                               cwd=workdir, capture_output=True, text=True, timeout=30)
            assert p.returncode != 0
            assert f"already used by pid {srv.proc.pid}" in p.stderr, p.stderr
        assert sorted(os.listdir(os.path.join(workdir, "data", "run", "sandboxes"))) == shims_before
        # the first server's sandboxes, pooled ones included, still work
        assert c.sh(sid, "echo alive")["stdout"] == "alive\n"
        for _ in range(3):
            new = c.create("base")
            assert c.sh(new, "echo fresh")["stdout"] == "fresh\n"
    finally:
        srv.stop()


def test_bind_and_flag_errors_come_before_anything_else(workdir):
    data = os.path.join(workdir, "d")
    os.makedirs(data)
    p = subprocess.run([BIN, "serve", "--listen", "3006", "--data-dir", data],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "expected ADDR:PORT" in p.stderr, p.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in p.stderr, p.stderr
    assert "reconcile" not in p.stderr
    # a data dir that does not exist is an error without --bootstrap
    p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
                        os.path.join(workdir, "missing")], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "does not exist" in p.stderr and "--bootstrap" in p.stderr
    assert not os.path.exists(os.path.join(workdir, "missing"))


@pytest.fixture
def own_server():
    with private_server("first-hour", pool_size=2) as srv:
        yield srv


def pooled_shim_pids(srv):
    """host pids of the shims of pooled (never handed out) sandboxes."""
    owned = {s["sandboxID"] for s in srv.client.get("/sandboxes?status=running,paused,stopped").json()}
    pids = {}
    for path in glob.glob(os.path.join(srv.data_dir, "run", "sandboxes", "*", "shim.pid")):
        sid = os.path.basename(os.path.dirname(path))
        if sid not in owned:
            pids[sid] = int(open(path).read().strip())
    return pids


def wait_pool(srv, n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(pooled_shim_pids(srv)) >= n:
            return
        time.sleep(0.1)
    raise AssertionError("the pool did not fill")


def test_a_pooled_sandbox_whose_shim_died_is_never_handed_out(own_server):
    c = own_server.client
    wait_pool(own_server, 2)
    for pid in pooled_shim_pids(own_server).values():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    sid = c.create()
    r = c.run(sid, "echo", "works")
    assert r.status_code == 200 and r.json()["stdout"] == "works\n", r.text


def test_rebuilding_a_template_in_use(own_server):
    c = own_server.client
    tpl_dir = os.path.join(own_server.data_dir, "templates", "base")
    # a marker in the current tree: sandboxes of this version see it
    with open(os.path.join(tpl_dir, "rootfs", "marker-old"), "w") as f:
        f.write("old\n")
    wait_pool(own_server, 2)
    sid = c.create()
    assert c.sh(sid, "cat /marker-old")["stdout"] == "old\n"

    p = cli(own_server.data_dir, "template", "build", "base", "--from", "host", check=False)
    assert p.returncode != 0 and "already exists" in p.stderr and "--force" in p.stderr
    assert os.path.exists(os.path.join(tpl_dir, "rootfs", "marker-old"))

    cli(own_server.data_dir, "template", "build", "base", "--from", "host", "--force")
    assert not os.path.exists(os.path.join(tpl_dir, "rootfs", "marker-old"))
    # the running sandbox keeps the tree it started from
    out = c.sh(sid, "cat /marker-old; ls / | wc -l; ls /usr/bin | head -1")
    lines = out["stdout"].split("\n")
    assert lines[0] == "old" and int(lines[1]) > 5 and lines[2], out
    # new sandboxes, pooled ones included, get the new tree
    for _ in range(3):
        new = c.create()
        assert c.run(new, "cat", "/marker-old").json()["exitCode"] != 0
        c.delete(f"/sandboxes/{new}")
    retired = glob.glob(os.path.join(own_server.data_dir, "templates", ".retired-base-*"))
    assert len(retired) == 1
    # once the last sandbox on the old tree is gone, so is the tree
    assert c.delete(f"/sandboxes/{sid}").status_code == 204
    assert glob.glob(os.path.join(own_server.data_dir, "templates", ".retired-base-*")) == []


def test_removing_a_template_in_use_keeps_running_sandboxes_whole(own_server):
    c = own_server.client
    cli(own_server.data_dir, "template", "build", "other", "--from", "host")
    sid = c.create("other")
    cli(own_server.data_dir, "template", "rm", "other")
    assert int(c.sh(sid, "ls / | wc -l")["stdout"]) > 5
    r = c.post("/sandboxes", json={"templateID": "other"})
    assert r.status_code == 400 and r.json()["message"].startswith("unknown template: other (available: base")
    c.delete(f"/sandboxes/{sid}")
    # the pooled sandboxes of the removed template go within a tick, and the tree with them
    deadline = time.time() + 10
    while glob.glob(os.path.join(own_server.data_dir, "templates", ".retired-*")) and time.time() < deadline:
        time.sleep(0.1)
    assert glob.glob(os.path.join(own_server.data_dir, "templates", ".retired-*")) == []


def test_a_failed_create_is_not_a_sandbox(own_server):
    c = own_server.client
    cli(own_server.data_dir, "template", "build", "broken", "--from", "host")
    shutil.rmtree(os.path.join(own_server.data_dir, "templates", "broken", "rootfs"))
    r = c.post("/sandboxes", json={"templateID": "broken"})
    assert r.status_code == 502, r.text
    every = c.get("/sandboxes?status=creating,running,paused,stopped,error").json()
    assert [s for s in every if s["templateID"] == "broken"] == []


def test_one_sandbox_model_in_list_and_get(own_server):
    c = own_server.client
    a, b, d = c.create(), c.create(), c.create()
    assert c.post(f"/sandboxes/{b}/pause").status_code == 204
    assert c.delete(f"/sandboxes/{d}").status_code == 204
    for query, want in (("", {a, b}), ("?status=running", {a}), ("?status=paused", {b}),
                        ("?status=stopped", {d}), ("?status=running&status=paused", {a, b}),
                        ("?status=running,stopped", {a, d})):
        listed = c.get("/sandboxes" + query).json()
        assert {s["sandboxID"] for s in listed} & {a, b, d} == want, query
        for s in listed:
            assert s == c.get(f"/sandboxes/{s['sandboxID']}").json()
            assert s["status"] == s["state"]
    # every action on a stopped sandbox is a 404 that says why
    r = c.post(f"/sandboxes/{d}/processes", json={"cmd": "true"})
    assert r.status_code == 404 and "was stopped (reason: deleted)" in r.json()["message"]
    assert c.delete(f"/sandboxes/{d}").status_code == 404
    c.post(f"/sandboxes/{b}/connect", json={})


@pytest.mark.parametrize("path,body,message", [
    ("/sandboxes", {"templateID": "base", "cpuCount": 4},
     "unknown field: cpuCount (POST /sandboxes accepts templateID, timeout, metadata, envVars, "
     "allow_internet_access, allowInternetAccess, network)"),
    ("/sandboxes", {"templateID": "nope"}, "unknown template: nope (available: base)"),
])
def test_create_says_what_is_wrong(own_server, path, body, message):
    before = own_server.client.get("/sandboxes").json()
    r = own_server.client.post(path, json=body)
    assert r.status_code == 400 and r.json()["message"] == message, r.text
    assert own_server.client.get("/sandboxes").json() == before


def test_unknown_filters_and_fields_are_400(own_server):
    c = own_server.client
    r = c.get("/sandboxes?state=running")
    assert r.status_code == 400
    assert r.json()["message"] == "unknown query parameter 'state' (GET /sandboxes takes: status)"
    r = c.get("/templates?x=1")
    assert r.status_code == 400 and "takes none" in r.json()["message"]
    sid = c.create()
    r = c.post(f"/sandboxes/{sid}/processes", json={"cmd": "true", "shell": True})
    assert r.status_code == 400 and r.json()["message"].startswith("unknown field: shell")
    r = c.post(f"/sandboxes/{sid}/timeout", json={"timeout": 5, "timeoutMs": 5000})
    assert r.status_code == 400 and r.json()["message"].startswith("unknown field: timeoutMs")
    r = c.post(f"/sandboxes/{sid}/connect", json={"timeoutMs": 5000})
    assert r.status_code == 400
    r = c.get("/sandboxes?status=running&status=sleeping")
    assert r.status_code == 400 and r.json()["message"] == "invalid status filter: sleeping"


def test_errors_that_say_what_to_do(own_server):
    c = own_server.client
    sid = c.create()
    r = c.post(f"/sandboxes/{sid}/processes", json={"cmd": "ls -la"})
    assert r.status_code == 502
    assert r.json()["message"] == ("command not found: ls -la (cmd runs without a shell; put "
                                   "arguments in args or use sh -c)")
    r = requests.get(own_server.url + "/sandboxes", headers={"Authorization": c.key})
    assert r.status_code == 401 and "expected `Bearer <key>`" in r.json()["message"]
    r = c.get("/sandboxes/")
    assert r.status_code == 404 and "did you mean /sandboxes" in r.json()["message"]
    r = c.request("PUT", "/sandboxes")
    assert r.status_code == 405 and r.json()["message"] == "method not allowed: PUT /sandboxes (allowed: POST, GET)"
    # the pool does not try to pre-build templates that do not exist
    for _ in range(3):
        c.post("/sandboxes", json={"templateID": "nope"})
    time.sleep(0.3)
    assert "nope" not in own_server.log()
