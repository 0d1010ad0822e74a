"""Sandbox lifecycle through the SandBase REST API: create, list, get,
timeout, pause/connect, delete, the TTL reaper, org isolation, lifecycle
events, the per-org cap and bad input."""
import re
import time

import pytest

from conftest import Client, Server, cli, make_data_dir

ID_RE = re.compile(r"^sbx_[a-z2-7]{20}$")


def test_create_returns_the_sandbox_object(org_a):
    r = org_a.post("/sandboxes", json={"templateID": "base", "timeout": 120,
                                       "metadata": {"project": "x"}, "envVars": {"MY_VAR": "v"}})
    assert r.status_code == 201, r.text
    sb = r.json()
    try:
        assert ID_RE.match(sb["sandboxID"])
        assert sb["templateID"] == "base"
        assert sb["status"] == "running"
        assert sb["metadata"] == {"project": "x"}
        for field in ("clientID", "startedAt", "endAt", "envdVersion", "envdAccessToken",
                      "cpuCount", "memoryMB", "diskSizeMB"):
            assert field in sb
        assert sb["cpuCount"] == 2 and sb["memoryMB"] == 512 and sb["diskSizeMB"] == 1024
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", sb["startedAt"])
        t0 = time.strptime(sb["startedAt"], "%Y-%m-%dT%H:%M:%SZ")
        t1 = time.strptime(sb["endAt"], "%Y-%m-%dT%H:%M:%SZ")
        assert 115 <= time.mktime(t1) - time.mktime(t0) <= 125
        env = org_a.sh(sb["sandboxID"], 'echo "$MY_VAR $E2B_SANDBOX_ID"')
        assert env["stdout"] == f"v {sb['sandboxID']}\n"
    finally:
        org_a.delete(f"/sandboxes/{sb['sandboxID']}")


def test_get_list_and_delete(org_a, sandbox):
    r = org_a.get(f"/sandboxes/{sandbox}")
    assert r.status_code == 200 and r.json()["sandboxID"] == sandbox
    listed = org_a.get("/sandboxes").json()
    assert isinstance(listed, list) and sandbox in [s["sandboxID"] for s in listed]
    assert sandbox in [s["sandboxID"] for s in org_a.get("/sandboxes?status=running").json()]
    assert sandbox not in [s["sandboxID"] for s in org_a.get("/sandboxes?status=paused").json()]
    r = org_a.delete(f"/sandboxes/{sandbox}")
    assert r.status_code == 204 and r.content == b""
    r = org_a.get(f"/sandboxes/{sandbox}")    # still readable, stopped, with why
    assert r.status_code == 200 and r.json()["status"] == "stopped" and r.json()["stopReason"] == "deleted"
    assert sandbox not in [s["sandboxID"] for s in org_a.get("/sandboxes").json()]
    assert org_a.delete(f"/sandboxes/{sandbox}").status_code == 404
    assert org_a.post(f"/sandboxes/{sandbox}/processes", json={"cmd": "true"}).status_code == 404


def test_list_is_newest_first(org_a):
    ids = [org_a.create() for _ in range(3)]
    try:
        listed = [s["sandboxID"] for s in org_a.get("/sandboxes").json() if s["sandboxID"] in ids]
        assert listed == list(reversed(ids))
    finally:
        for sid in ids:
            org_a.delete(f"/sandboxes/{sid}")


def test_bad_status_filter(org_a):
    r = org_a.get("/sandboxes?status=sleeping")
    assert r.status_code == 400
    assert r.json()["message"] == "invalid status filter: sleeping"


@pytest.mark.parametrize("body,message", [
    ({"templateID": "nope"}, "unknown template: nope (available: base)"),
    ({"templateID": "../etc"}, "unknown template: ../etc (available: base)"),
    ({}, "missing field: templateID"),
    ({"templateID": 5}, "templateID must be a string"),
    ({"templateID": "base", "timeout": "60"}, None),
    ({"templateID": "base", "timeout": 0}, None),
    ({"templateID": "base", "metadata": {"a": 1}}, None),
    ({"templateID": "base", "envVars": ["A=1"]}, None),
    ({"templateID": "base", "envVars": {"A=B": "1"}}, None),
])
def test_create_rejects_bad_input(org_a, body, message):
    before = len(org_a.get("/sandboxes").json())
    r = org_a.post("/sandboxes", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400
    if message:
        assert r.json()["message"] == message
    assert len(org_a.get("/sandboxes").json()) == before


def test_bad_sandbox_id_is_400(org_a):
    for path in ("/sandboxes/bogus", "/sandboxes/sbx_UPPERCASEUPPERCASEUP"):
        assert org_a.get(path).status_code == 400
        assert org_a.get(path).json()["message"] == "invalid sandbox id"
    assert org_a.get("/sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa").status_code == 404


def test_other_org_gets_404_for_everything(org_a, org_b, sandbox):
    paths = [("GET", f"/sandboxes/{sandbox}", None), ("DELETE", f"/sandboxes/{sandbox}", None),
             ("POST", f"/sandboxes/{sandbox}/timeout", {"timeout": 10}),
             ("POST", f"/sandboxes/{sandbox}/pause", None),
             ("POST", f"/sandboxes/{sandbox}/connect", {}),
             ("POST", f"/sandboxes/{sandbox}/processes", {"cmd": "true"})]
    for method, path, body in paths:
        r = org_b.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"code": 404, "message": "sandbox not found"}
    assert sandbox not in [s["sandboxID"] for s in org_b.get("/sandboxes").json()]
    # ...and org A's sandbox is untouched.
    assert org_a.sh(sandbox, "echo alive")["stdout"] == "alive\n"


def test_set_timeout(org_a, sandbox):
    r = org_a.post(f"/sandboxes/{sandbox}/timeout", json={"timeout": 1000})
    assert r.status_code == 204
    sb = org_a.get(f"/sandboxes/{sandbox}").json()
    end = time.mktime(time.strptime(sb["endAt"], "%Y-%m-%dT%H:%M:%SZ"))
    now = time.mktime(time.gmtime())
    assert 990 <= end - now <= 1010
    assert org_a.post(f"/sandboxes/{sandbox}/timeout", json={}).status_code == 400
    assert org_a.post(f"/sandboxes/{sandbox}/timeout", json={"timeout": -1}).status_code == 400


def test_pause_and_connect(org_a, sandbox):
    org_a.sh(sandbox, "echo state > /tmp/kept")
    counter = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"
    org_a.post(f"/sandboxes/{sandbox}/processes",
               json={"cmd": "/bin/sh", "args": ["-c", f"setsid sh -c '{counter}' >/dev/null 2>&1 &"]})
    time.sleep(0.5)
    assert org_a.post(f"/sandboxes/{sandbox}/pause").status_code == 204
    r = org_a.post(f"/sandboxes/{sandbox}/pause")
    assert r.status_code == 409
    assert org_a.get(f"/sandboxes/{sandbox}").json()["status"] == "paused"
    assert sandbox in [s["sandboxID"] for s in org_a.get("/sandboxes?status=paused").json()]
    r = org_a.post(f"/sandboxes/{sandbox}/processes", json={"cmd": "true"})
    assert r.status_code == 409
    r = org_a.post(f"/sandboxes/{sandbox}/connect", json={"timeout": 300})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"
    first = int(org_a.sh(sandbox, "cat /tmp/count")["stdout"])
    time.sleep(0.5)
    second = int(org_a.sh(sandbox, "cat /tmp/count")["stdout"])
    assert second > first, "the counter must run again after connect"
    assert org_a.sh(sandbox, "cat /tmp/kept")["stdout"] == "state\n"


def test_paused_sandbox_makes_no_progress(org_a, sandbox):
    counter = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done"
    org_a.post(f"/sandboxes/{sandbox}/processes",
               json={"cmd": "/bin/sh", "args": ["-c", f"setsid sh -c '{counter}' >/dev/null 2>&1 &"]})
    time.sleep(0.3)
    assert org_a.post(f"/sandboxes/{sandbox}/pause").status_code == 204
    before = read_count_from_host(org_a, sandbox)
    time.sleep(0.6)
    after = read_count_from_host(org_a, sandbox)
    assert before == after
    assert org_a.post(f"/sandboxes/{sandbox}/connect", json={}).status_code == 200


def read_count_from_host(client, sandbox):
    """Reads /tmp/count of a paused sandbox from the host, through its PID 1's
    root: nothing can run inside while it is paused."""
    import os
    pid_file = os.path.join(client.server.data_dir, "run", "sandboxes", sandbox, "shim.pid")
    # The sandbox's root as the host sees it: /proc/<init>/root. The init pid
    # is the only child of the shim.
    shim_pid = int(open(pid_file).read().strip())
    children = open(f"/proc/{shim_pid}/task/{shim_pid}/children").read().split()
    for child in children:
        path = f"/proc/{child}/root/tmp/count"
        if os.path.exists(path):
            return open(path).read()
    raise AssertionError("no sandbox init found under the shim")


def test_ttl_reaper_kills_expired_sandboxes(org_a):
    sid = org_a.create(timeout=2)
    assert org_a.get(f"/sandboxes/{sid}").status_code == 200
    deadline = time.time() + 15
    while time.time() < deadline and org_a.get(f"/sandboxes/{sid}").json()["status"] == "running":
        time.sleep(0.3)
    got = org_a.get(f"/sandboxes/{sid}").json()
    assert got["status"] == "stopped" and got["stopReason"] == "timeout"
    import os
    import sqlite3
    assert not os.path.exists(f"{org_a.server.data_dir}/run/sandboxes/{sid}")
    db = sqlite3.connect(f"{org_a.server.data_dir}/sandbase.db")
    data = db.execute("SELECT data_json FROM events WHERE sandbox_id = ? AND type = 'sandbox.lifecycle.killed'",
                      (sid,)).fetchone()[0]
    assert '"timeout"' in data


def test_paused_time_does_not_count(org_a):
    sid = org_a.create(timeout=3)
    try:
        assert org_a.post(f"/sandboxes/{sid}/pause").status_code == 204
        time.sleep(4.5)
        assert org_a.get(f"/sandboxes/{sid}").status_code == 200
        r = org_a.post(f"/sandboxes/{sid}/connect", json={})
        assert r.status_code == 200
        assert org_a.sh(sid, "echo ok")["stdout"] == "ok\n"
    finally:
        org_a.delete(f"/sandboxes/{sid}")


def test_lifecycle_events_are_recorded(org_a):
    import sqlite3
    sid = org_a.create()
    org_a.post(f"/sandboxes/{sid}/timeout", json={"timeout": 100})
    org_a.post(f"/sandboxes/{sid}/pause")
    org_a.post(f"/sandboxes/{sid}/connect", json={})
    org_a.delete(f"/sandboxes/{sid}")
    db = sqlite3.connect(f"{org_a.server.data_dir}/sandbase.db")
    rows = db.execute("SELECT type FROM events WHERE sandbox_id = ? ORDER BY created_at, rowid", (sid,)).fetchall()
    assert [r[0] for r in rows] == ["sandbox.lifecycle.created", "sandbox.lifecycle.updated",
                                     "sandbox.lifecycle.paused", "sandbox.lifecycle.resumed",
                                     "sandbox.lifecycle.killed"]


def test_per_org_cap_answers_429():
    data_dir = make_data_dir()
    cli(data_dir, "template", "build", "base", "--from", "host")
    srv = Server(data_dir, config={"pool_size": 0, "org_sandbox_cap": 2}).start()
    client = Client(srv, srv.new_key("capped"))
    ids = []
    try:
        ids = [client.create(), client.create()]
        r = client.post("/sandboxes", json={"templateID": "base"})
        assert r.status_code == 429
        assert "limit" in r.json()["message"]
        client.delete(f"/sandboxes/{ids.pop()}")
        ids.append(client.create())
    finally:
        for sid in ids:
            client.delete(f"/sandboxes/{sid}")
        srv.stop()


def test_templates_list(org_a):
    r = org_a.get("/templates")
    assert r.status_code == 200
    names = [t["templateID"] for t in r.json()]
    assert "base" in names


def test_delete_removes_everything(org_a):
    import os
    sid = org_a.create()
    info = org_a.sh(sid, "echo $$")
    assert info["exitCode"] == 0
    assert org_a.delete(f"/sandboxes/{sid}").status_code == 204
    assert not os.path.exists(f"{org_a.server.data_dir}/run/sandboxes/{sid}")
    assert not os.path.exists(f"{org_a.server.data_dir}/sandboxes/{sid}")
    for ctl in ("memory", "pids", "freezer", "cpu"):
        assert not os.path.exists(f"/sys/fs/cgroup/{ctl}/sandbase/{sid}")
    mounts = open("/proc/self/mountinfo").read()
    assert sid not in mounts
    ps = os.popen("ps -eo args").read()
    assert sid not in ps
