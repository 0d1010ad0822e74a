"""Filesystem snapshots and fork through the raw HTTP API: a snapshot is the
sandbox's whole root as it stands (template + writable layer, no processes),
kept as a template private to the org that took it. The copy reads a
hostile tree: links stay links, special files and set-id bits are dropped,
and its size is bounded by the sandbox's disk.

One private server for the module (its template list is the tests' own),
with two orgs."""
import os
import time
import uuid

import pytest

from conftest import Client, private_server


@pytest.fixture(scope="module")
def srv():
    with private_server("snap-a", org_sandbox_cap=12) as s:
        s.other = Client(s, s.new_key("snap-b"))
        yield s


@pytest.fixture
def a(srv):
    return srv.client


@pytest.fixture
def b(srv):
    return srv.other


def snapshot(client, sid, **body):
    r = client.post(f"/sandboxes/{sid}/snapshots", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def snapshot_ids(client, query=""):
    r = client.get("/snapshots" + query)
    assert r.status_code == 200, r.text
    return [s["snapshotID"] for s in r.json()]


def template_dirs(srv):
    return sorted(os.listdir(os.path.join(srv.data_dir, "templates")))


def sandbox_ids(client):
    return sorted(s["sandboxID"] for s in client.get("/sandboxes?status=running,paused").json())


def test_snapshot_carries_files_and_deletions_and_leaves_source_running(srv, a):
    sid = a.create()
    try:
        a.sh(sid, "echo kept > /home/user/f.txt; mkdir -p /home/user/d/e; echo deep > /home/user/d/e/g")
        out = a.sh(sid, "rm /etc/sandbase-template && echo gone", user="root")
        assert out["stdout"] == "gone\n", out
        snap = snapshot(a, sid, name="first")
        assert snap["snapshotID"].startswith("snap-") and snap["names"] == ["first"]
        assert snap["sandboxID"] == sid
        # the source is running, unfrozen and unchanged
        assert a.get(f"/sandboxes/{sid}").json()["status"] == "running"
        out = a.sh(sid, "cat /home/user/f.txt; test -e /etc/sandbase-template || echo nohost")
        assert out["stdout"] == "kept\nnohost\n"

        new = a.create(template=snap["snapshotID"])
        try:
            out = a.sh(new, "cat /home/user/f.txt /home/user/d/e/g; stat -c %U /home/user/f.txt; "
                            "test -e /etc/sandbase-template || echo whiteout-kept")
            assert out["stdout"] == "kept\ndeep\nuser\nwhiteout-kept\n", out
            # the new sandbox's writes do not reach the source
            a.sh(new, "echo changed > /home/user/f.txt")
            assert a.sh(sid, "cat /home/user/f.txt")["stdout"] == "kept\n"
        finally:
            a.delete(f"/sandboxes/{new}")
        assert snap["snapshotID"] in snapshot_ids(a)
        assert snap["snapshotID"] in snapshot_ids(a, f"?sandboxID={sid}")
        assert snapshot_ids(a, "?name=first") == [snap["snapshotID"]]
        assert snapshot_ids(a, f"?name={snap['snapshotID']}") == [snap["snapshotID"]]
        assert snapshot_ids(a, "?sandboxID=sbx_aaaaaaaaaaaaaaaaaaaa") == []
        listed = {t["templateID"]: t for t in a.get("/templates").json()}
        assert listed[snap["snapshotID"]]["public"] is False
        assert a.delete(f"/snapshots/{snap['snapshotID']}").status_code == 204
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_paused_sandbox_stays_paused(srv, a):
    sid = a.create()
    try:
        a.sh(sid, "echo p > /home/user/p.txt")
        assert a.post(f"/sandboxes/{sid}/pause").status_code == 204
        snap = snapshot(a, sid)
        assert snap["names"] == []
        assert a.get(f"/sandboxes/{sid}").json()["status"] == "paused"
        new = a.create(template=snap["snapshotID"])
        assert a.sh(new, "cat /home/user/p.txt")["stdout"] == "p\n"
        a.delete(f"/sandboxes/{new}")
        a.delete(f"/snapshots/{snap['snapshotID']}")
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_hostile_tree_is_copied_without_escaping(srv, a):
    canary = f"/tmp/sandbase-snap-canary-{uuid.uuid4().hex}"
    sid = a.create()
    try:
        script = (f"ln -s {canary} /home/user/evil; ln -s / /home/user/rootlink; "
                  "ln -s /etc/shadow /home/user/shadow; mkfifo /home/user/fifo; "
                  "echo x > /home/user/suid; chmod 4755 /home/user/suid; "
                  "echo h > /home/user/h1; ln /home/user/h1 /home/user/h2; "
                  "python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind(\"/home/user/sock\")'")
        out = a.sh(sid, script, user="root")
        assert out["exitCode"] == 0, out
        snap = snapshot(a, sid)["snapshotID"]
        assert not os.path.lexists(canary), "the copy wrote through a sandbox symlink"
        rootfs = os.path.join(srv.data_dir, "templates", snap, "rootfs", "home", "user")
        assert os.readlink(os.path.join(rootfs, "evil")) == canary
        assert os.readlink(os.path.join(rootfs, "rootlink")) == "/"
        assert not os.path.lexists(os.path.join(rootfs, "fifo"))
        assert not os.path.lexists(os.path.join(rootfs, "sock"))
        assert os.stat(os.path.join(rootfs, "suid")).st_mode & 0o7777 == 0o755
        # other mounts (proc, dev, sys, the template's /usr bind) are copied as empty directories
        top = os.path.join(srv.data_dir, "templates", snap, "rootfs")
        for mount in ("proc", "dev", "sys", "usr"):
            assert os.path.isdir(os.path.join(top, mount)) and os.listdir(os.path.join(top, mount)) == [], mount
        new = a.create(template=snap)
        try:
            out = a.sh(new, "readlink /home/user/evil /home/user/shadow; ls /home/user/rootlink/ | head -1; "
                            "cat /home/user/h1 /home/user/h2; test -e /home/user/fifo || echo nofifo")
            assert out["stdout"] == f"{canary}\n/etc/shadow\nbin\nh\nh\nnofifo\n", out
        finally:
            a.delete(f"/sandboxes/{new}")
        a.delete(f"/snapshots/{snap}")
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_other_org_cannot_see_use_or_delete_a_snapshot(srv, a, b):
    sid = a.create()
    try:
        snap = snapshot(a, sid, name="mine")["snapshotID"]
        missing = "snap-" + "a" * 20
        # creating from it reads exactly like a template that does not exist
        theirs = b.post("/sandboxes", json={"templateID": snap})
        nothing = b.post("/sandboxes", json={"templateID": missing})
        assert theirs.status_code == nothing.status_code == 400
        assert theirs.json()["message"].replace(snap, missing) == nothing.json()["message"]
        assert snap not in theirs.json()["message"].split("available:")[1]
        assert sandbox_ids(b) == []
        assert snap not in snapshot_ids(b) and snapshot_ids(b, "?name=mine") == []
        assert snap not in [t["templateID"] for t in b.get("/templates").json()]
        assert b.delete(f"/snapshots/{snap}").status_code == 404
        assert b.post(f"/sandboxes/{sid}/snapshots", json={}).status_code == 404
        assert b.post(f"/sandboxes/{sid}/fork", json={}).status_code == 404
        assert snap in snapshot_ids(a)
        # the owner deletes it; afterwards nobody creates from it
        assert a.delete(f"/snapshots/{snap}").status_code == 204
        assert a.delete(f"/snapshots/{snap}").status_code == 404
        assert a.post("/sandboxes", json={"templateID": snap}).status_code == 400
        assert snap not in snapshot_ids(a)
        assert snap not in template_dirs(srv)
        # shared templates are not an org's to delete
        assert a.delete("/snapshots/base").status_code == 403
        assert "base" in template_dirs(srv)
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_fork_makes_independent_sandboxes(srv, a):
    sid = a.create(metadata={"who": "source"})
    try:
        a.sh(sid, "echo forked > /home/user/f.txt")
        r = a.post(f"/sandboxes/{sid}/fork", json={"count": 3, "timeout": 120})
        assert r.status_code == 201, r.text
        items = r.json()
        assert len(items) == 3 and all("sandbox" in i for i in items), items
        forks = [i["sandbox"]["sandboxID"] for i in items]
        try:
            assert len(set(forks)) == 3 and sid not in forks
            for n, f in enumerate(forks):
                assert a.get(f"/sandboxes/{f}").json()["metadata"] == {"who": "source"}
                out = a.sh(f, f"cat /home/user/f.txt; echo {n} > /home/user/mine")
                assert out["stdout"] == "forked\n"
            for n, f in enumerate(forks):
                assert a.sh(f, "cat /home/user/mine")["stdout"] == f"{n}\n"
            assert a.sh(sid, "test -e /home/user/mine || echo clean")["stdout"] == "clean\n"
            template = items[0]["sandbox"]["templateID"]
            assert template in snapshot_ids(a, f"?sandboxID={sid}")
        finally:
            for f in forks:
                a.delete(f"/sandboxes/{f}")
        a.delete(f"/snapshots/{template}")
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_bad_input_changes_nothing(srv, a):
    sid = a.create()
    try:
        before = (template_dirs(srv), sandbox_ids(a))
        for body in ({"count": 0}, {"count": 100}, {"count": "3"}, {"timeout": 0}, {"bogus": 1}):
            r = a.post(f"/sandboxes/{sid}/fork", json=body)
            assert r.status_code == 400, (body, r.text)
        for body in ({"name": "Bad Name!"}, {"name": ""}, {"name": 7}, {"other": "x"}):
            r = a.post(f"/sandboxes/{sid}/snapshots", json=body)
            assert r.status_code == 400, (body, r.text)
        unknown = "sbx_" + "a" * 20
        assert a.post(f"/sandboxes/{unknown}/snapshots", json={}).status_code == 404
        assert a.post(f"/sandboxes/{unknown}/fork", json={}).status_code == 404
        assert a.post("/sandboxes/nope/snapshots", json={}).status_code == 400
        assert a.delete("/snapshots/snap-" + "a" * 20).status_code == 404
        assert a.delete("/snapshots/..").status_code == 404
        assert a.get("/snapshots?limit=0").status_code == 400
        assert a.get("/snapshots?nextToken=../x").status_code == 400
        assert (template_dirs(srv), sandbox_ids(a)) == before
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_copy_is_bounded_by_the_sandbox_disk(srv, a):
    sid = a.create()
    try:
        before = template_dirs(srv)
        # a sparse file far larger than the sandbox's disk takes no room in it
        out = a.sh(sid, "truncate -s 8G /home/user/sparse && echo ok")
        assert out["stdout"] == "ok\n", out
        r = a.post(f"/sandboxes/{sid}/snapshots", json={})
        assert r.status_code == 507, r.text
        assert "MB" in r.json()["message"]
        r = a.post(f"/sandboxes/{sid}/fork", json={"count": 2})
        assert r.status_code == 507, r.text
        assert template_dirs(srv) == before, "a refused snapshot left files behind"
        assert a.get(f"/sandboxes/{sid}").json()["status"] == "running"
        assert a.sh(sid, "rm /home/user/sparse && echo ok")["stdout"] == "ok\n"
        snap = snapshot(a, sid)["snapshotID"]
        a.delete(f"/snapshots/{snap}")
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_listing_pages(srv, a):
    sid = a.create()
    made = []
    try:
        for _ in range(3):
            made.append(snapshot(a, sid)["snapshotID"])
        seen, token = [], None
        for _ in range(5):
            q = f"?sandboxID={sid}&limit=2" + (f"&nextToken={token}" if token else "")
            r = a.get("/snapshots" + q)
            assert r.status_code == 200, r.text
            seen += [s["snapshotID"] for s in r.json()]
            token = r.headers.get("X-Next-Token")
            if not token:
                break
        assert seen == sorted(made)
    finally:
        for s in made:
            a.delete(f"/snapshots/{s}")
        a.delete(f"/sandboxes/{sid}")


def test_an_org_keeps_at_most_100_snapshots(srv, a, b):
    sid = a.create()
    made = []
    try:
        for _ in range(100 - len(snapshot_ids(a))):
            made.append(snapshot(a, sid)["snapshotID"])
        before = template_dirs(srv)
        r = a.post(f"/sandboxes/{sid}/snapshots", json={})
        assert r.status_code == 429, r.text
        assert a.post(f"/sandboxes/{sid}/fork", json={}).status_code == 429
        assert template_dirs(srv) == before
        # the cap is the org's: another org still takes its own
        other = b.create()
        try:
            b_snap = snapshot(b, other)["snapshotID"]
            assert b.delete(f"/snapshots/{b_snap}").status_code == 204
        finally:
            b.delete(f"/sandboxes/{other}")
        assert a.delete(f"/snapshots/{made.pop()}").status_code == 204
        made.append(snapshot(a, sid)["snapshotID"])
    finally:
        for s in made:
            a.delete(f"/snapshots/{s}")
        a.delete(f"/sandboxes/{sid}")


def settled_disks(srv, wait=1.5):
    """The sandbox disks on the data dir once refills in flight are done."""
    path = os.path.join(srv.data_dir, "sandboxes")
    count = None
    while count != len(os.listdir(path)):
        count = len(os.listdir(path))
        time.sleep(wait)
    return count


def test_snapshots_get_no_warm_pool(srv, a):
    sid = a.create()
    try:
        snap = snapshot(a, sid)["snapshotID"]
        before = settled_disks(srv)
        new = a.create(template=snap)
        try:
            assert settled_disks(srv) == before + 1, "creating from a snapshot warmed a pool for it"
        finally:
            a.delete(f"/sandboxes/{new}")
        a.delete(f"/snapshots/{snap}")
        assert snap not in template_dirs(srv)
    finally:
        a.delete(f"/sandboxes/{sid}")


def test_fork_keeps_network_settings_with_its_own_token(srv, a):
    r = a.post("/sandboxes", json={"templateID": "base", "network": {"allowPublicTraffic": False}})
    assert r.status_code == 201, r.text
    source = r.json()
    try:
        r = a.post(f"/sandboxes/{source['sandboxID']}/fork", json={})
        assert r.status_code == 201, r.text
        [item] = r.json()
        fork = item["sandbox"]
        try:
            assert fork["network"]["allowPublicTraffic"] is False
            assert fork["trafficAccessToken"] and fork["trafficAccessToken"] != source["trafficAccessToken"]
        finally:
            a.delete(f"/sandboxes/{fork['sandboxID']}")
        a.delete(f"/snapshots/{fork['templateID']}")
    finally:
        a.delete(f"/sandboxes/{source['sandboxID']}")


def test_too_deep_a_tree_is_refused_and_leaves_nothing(srv, a):
    sid = a.create()
    try:
        before = template_dirs(srv)
        out = a.sh(sid, "cd /home/user && mkdir -p $(printf 'd/%.0s' $(seq 130)) && echo ok")
        assert out["stdout"] == "ok\n", out
        r = a.post(f"/sandboxes/{sid}/snapshots", json={})
        assert r.status_code == 409 and "deeper than 128" in r.json()["message"], r.text
        assert template_dirs(srv) == before
        assert a.get(f"/sandboxes/{sid}").json()["status"] == "running"
        assert a.sh(sid, "echo alive")["stdout"] == "alive\n"
    finally:
        a.delete(f"/sandboxes/{sid}")
