"""The resolved spec (issue 7): serve resolves a sandbox's template once, at
create, into <run-dir>/sandboxes/<id>/spec.json; the shim builds the sandbox
from that file alone, and every exec takes its user, workdir and environment
from it. Editing the template afterwards changes nothing for a running
sandbox, only for sandboxes created later."""
import json
import os

import pytest

from conftest import cli, private_server

PROBE = 'echo "${PINNED:-unset}|$(pwd)|$HOME|$(id -u)"'


@pytest.fixture
def own_server():
    with private_server("spec", pool_size=0) as srv:   # every create is cold: it reads the template
        yield srv


def spec_of(srv, sid):
    with open(os.path.join(srv.data_dir, "run", "sandboxes", sid, "spec.json")) as f:
        return json.load(f)


def test_the_shim_gets_a_resolved_spec(own_server):
    c = own_server.client
    sid = c.create()
    spec = spec_of(own_server, sid)
    tpl_dir = os.path.join(own_server.data_dir, "templates", "base")
    assert spec["id"] == sid and spec["hostname"] == sid
    assert spec["template"]["name"] == "base"
    assert os.path.samefile(spec["template"]["dir"], tpl_dir)
    assert spec["template"]["identity"] == os.stat(tpl_dir).st_ino
    assert spec["uidMap"] == spec["gidMap"] == {"inside": 0, "outside": 100000, "count": 65536}
    assert spec["user"]["name"] == "user" and spec["user"]["uid"] == 1000
    assert set(spec["limits"]) == {"cpu_count", "memory_mb", "pids", "disk_mb"}
    assert "PATH" in spec["env"]
    mode = os.stat(os.path.join(own_server.data_dir, "run", "sandboxes", sid, "spec.json")).st_mode
    assert mode & 0o077 == 0
    assert c.sh(sid, "hostname")["stdout"] == sid + "\n"


def test_exec_uses_the_values_pinned_at_create(own_server):
    c = own_server.client
    cli(own_server.data_dir, "template", "build", "pin", "--from", "host")
    sid = c.create("pin")
    before = c.sh(sid, PROBE)["stdout"]
    assert before == "unset|/workspace|/home/user|1000\n"

    path = os.path.join(own_server.data_dir, "templates", "pin", "template.json")
    with open(path) as f:
        tpl = json.load(f)
    tpl["env"]["PINNED"] = "changed"
    tpl["workdir"] = "/tmp"
    with open(path, "w") as f:
        json.dump(tpl, f)

    # the running sandbox keeps what it was created with, on every exec
    for _ in range(2):
        assert c.sh(sid, PROBE)["stdout"] == before
    assert "PINNED" not in spec_of(own_server, sid)["env"]
    # a sandbox created now is resolved from the edited template
    new = c.create("pin")
    assert c.sh(new, PROBE)["stdout"] == "changed|/tmp|/home/user|1000\n"
    assert spec_of(own_server, new)["env"]["PINNED"] == "changed"
    # request values still win over the pinned ones
    r = c.sh(sid, PROBE, envVars={"PINNED": "request"}, cwd="/")
    assert r["stdout"] == "request|/|/home/user|1000\n", r


def test_the_pinned_values_are_held_in_memory_and_read_back_after_a_restart(own_server):
    c = own_server.client
    sid = c.create()
    lost = c.create()
    run = os.path.join(own_server.data_dir, "run", "sandboxes")
    os.unlink(os.path.join(run, lost, "spec.json"))
    # serve holds them since the shim started: no file needed
    assert c.sh(lost, PROBE)["stdout"] == "unset|/workspace|/home/user|1000\n"
    own_server.stop()
    own_server.start()
    # after a restart they are read back from the spec ...
    assert c.sh(sid, PROBE)["stdout"] == "unset|/workspace|/home/user|1000\n"
    # ... so a sandbox whose spec is gone fails its execs clearly
    r = c.run(lost, "true")
    assert r.status_code == 502, r.text
    assert "spec" in r.json()["message"]
