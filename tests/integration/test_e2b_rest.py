"""E2B's control plane and envd plumbing over raw HTTP: the shapes and
statuses E2B's SDKs depend on (spec/e2b-protocol.md §2, §3), the shapes
chosen by the key's spelling on the paths SandBase shares, and bad input,
which gets E2B's error and changes nothing. The SDK itself is driven in
test_e2b_sdk.py."""
import json
import os
import re
import sqlite3
import time

import pytest
import requests

from conftest import Client
from streams import start_background

SANDBOX_KEYS = {"sandboxID", "templateID", "alias", "clientID", "envdVersion", "envdAccessToken",
                "domain", "trafficAccessToken"}
LISTED_KEYS = {"sandboxID", "templateID", "alias", "clientID", "cpuCount", "memoryMB", "diskSizeMB",
               "startedAt", "endAt", "envdVersion", "metadata", "state", "volumeMounts"}
DETAIL_KEYS = LISTED_KEYS | {"envdAccessToken", "allowInternetAccess", "network", "domain", "lifecycle",
                             "ports"}


class E2B(Client):
    """A client that speaks as E2B's SDK does: X-API-KEY with the e2b_ spelling."""

    def __init__(self, server, sandbase_key):
        super().__init__(server, "e2b_" + sandbase_key[len("sk-sb-"):])
        del self.session.headers["Authorization"]
        self.session.headers["X-API-KEY"] = self.key

    def create(self, template="base", **body):
        body.setdefault("templateID", template)
        r = self.post("/v2/sandboxes", json=body)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture(scope="module")
def e2b(server, org_a):
    return E2B(server, org_a.key)


@pytest.fixture(scope="module")
def e2b_other(server, org_b):
    return E2B(server, org_b.key)


@pytest.fixture
def made(e2b):
    """Ids to kill after the test."""
    ids = []
    yield ids
    for sid in ids:
        e2b.delete(f"/sandboxes/{sid}")


def envd(server, sid, method, path, token=None, **kw):
    headers = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49983", **kw.pop("headers", {})}
    if token:
        headers["X-Access-Token"] = token
    return requests.request(method, server.url + path, headers=headers, timeout=30, **kw)


def live_count(client):
    return len(client.get("/sandboxes?status=running,paused,creating").json())


def stored_e2b_settings(server, sid):
    with sqlite3.connect(os.path.join(server.data_dir, "sandbase.db")) as db:
        row = db.execute("SELECT e2b_json, envd_token FROM sandboxes WHERE id = ?", (sid,)).fetchone()
    return json.loads(row[0]), row[1]


def test_create_v2_answers_e2b_sandbox(server, e2b, made):
    sbx = e2b.create(metadata={"k": "v"}, envVars={"A": "1"}, timeout=60)
    made.append(sbx["sandboxID"])
    assert set(sbx) == SANDBOX_KEYS
    assert re.fullmatch(r"sbx_[a-z2-7]{20}", sbx["sandboxID"])
    assert sbx["templateID"] == "base" and sbx["clientID"] == "sandbase"
    assert re.fullmatch(r"\d+\.\d+\.\d+", sbx["envdVersion"])
    assert re.fullmatch(r"[0-9a-f]{64}", sbx["envdAccessToken"])     # v2 is secure by default
    # getHost(port) in the SDK is <port>-<id>.<domain>: the port proxy's Host form (test_ports.py)
    assert sbx["domain"] == f"localhost:{server.port}" and sbx["trafficAccessToken"] is None


def test_create_settings_are_accepted_and_stored(server, e2b, org_a, made):
    sbx = e2b.create(autoPause=True, autoPauseMemory=True, autoResume={"enabled": True},
                     allow_internet_access=False, network={"allowPublicTraffic": False}, secure=False)
    made.append(sbx["sandboxID"])
    assert sbx["envdAccessToken"] is None
    # allowPublicTraffic false: the port proxy's token, shown to the org (test_ports.py enforces it)
    assert re.fullmatch(r"tat_[a-z2-7]{40}", sbx["trafficAccessToken"])
    settings, token = stored_e2b_settings(server, sbx["sandboxID"])
    assert settings == {"autoPause": True, "autoPauseMemory": True, "autoResume": {"enabled": True},
                        "secure": False}
    assert token == ""
    # the network settings are the sandbox's egress policy, the same in both shapes
    detail = e2b.get(f"/sandboxes/{sbx['sandboxID']}").json()
    sandbase = org_a.get(f"/sandboxes/{sbx['sandboxID']}").json()
    assert detail["allowInternetAccess"] is False
    assert detail["network"]["allowPublicTraffic"] is False
    assert detail["network"] == sandbase["network"]


def test_secure_token_is_stored_and_handed_out_again_on_connect(server, e2b, made):
    sbx = e2b.create()
    made.append(sbx["sandboxID"])
    assert stored_e2b_settings(server, sbx["sandboxID"])[1] == sbx["envdAccessToken"]
    r = e2b.post(f"/v2/sandboxes/{sbx['sandboxID']}/connect", json={})
    assert r.status_code == 200, r.text
    assert r.json()["envdAccessToken"] == sbx["envdAccessToken"]


def wait_state(e2b, sid, want, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = e2b.get(f"/sandboxes/{sid}")
        if got.status_code != 200 or got.json()["state"] == want:
            return got
        time.sleep(0.3)
    return e2b.get(f"/sandboxes/{sid}")


def test_auto_pause_pauses_at_the_timeout_and_connect_resumes_with_everything_kept(server, e2b, org_a, made):
    """autoPause (the SDK's lifecycle.onTimeout "pause"): the timeout
    freezes the sandbox instead of killing it; its files and processes are
    there when a connect resumes it. Without it the timeout kills."""
    paused = e2b.create(autoPause=True, timeout=2)["sandboxID"]
    killed = e2b.create(timeout=2)["sandboxID"]
    made += [paused, killed]
    assert e2b.get(f"/sandboxes/{paused}").json()["lifecycle"] == {"onTimeout": "pause", "autoResume": False}
    assert e2b.get(f"/sandboxes/{killed}").json()["lifecycle"]["onTimeout"] == "kill"
    assert org_a.sh(paused, "echo kept > /tmp/mark")["exitCode"] == 0
    pid = start_background(org_a, paused, "sleep", "1000")
    got = wait_state(e2b, paused, "paused")
    assert got.status_code == 200 and got.json()["state"] == "paused", got.text
    events = [e["type"] for e in org_a.get(f"/events/sandboxes/{paused}").json()]
    assert "sandbox.lifecycle.paused" in events and "sandbox.lifecycle.killed" not in events
    gone = wait_state(e2b, killed, "never")
    assert gone.status_code == 404, gone.text
    r = e2b.post(f"/sandboxes/{paused}/connect", json={"timeout": 60})
    assert r.status_code == 201, r.text         # 201: it was resumed
    detail = e2b.get(f"/sandboxes/{paused}").json()
    assert detail["state"] == "running"
    out = org_a.sh(paused, f"cat /tmp/mark; kill -0 {pid} && echo alive")
    assert out["stdout"] == "kept\nalive\n", out


def test_a_resume_without_a_timeout_after_auto_pause_gets_the_default_again(server, e2b, made):
    sid = e2b.create(autoPause=True, timeout=1)["sandboxID"]
    made.append(sid)
    assert wait_state(e2b, sid, "paused").json()["state"] == "paused"
    r = e2b.post(f"/sandboxes/{sid}/resume", json={})
    assert r.status_code in (200, 201), r.text
    time.sleep(2.5)      # past a reaper tick: it must not be paused again at once
    detail = e2b.get(f"/sandboxes/{sid}").json()
    assert detail["state"] == "running", detail


@pytest.mark.parametrize("body, message", [
    ({"templateID": "base", "mcp": {"x": {}}}, "mcp is not supported"),
    ({"templateID": "base", "volumeMounts": [{"name": "v", "path": "/v"}]}, "volumeMounts is not supported"),
    ({"templateID": "base", "cpuCount": 4}, "unknown field: cpuCount"),
    ({"templateID": "base", "secure": "yes"}, "secure must be a boolean"),
    ({"templateID": "base", "autoPause": 1}, "autoPause must be a boolean"),
    ({"templateID": "base", "network": []}, "network"),
    ({"templateID": "base", "network": {"maskRequestHost": "x"}}, "maskRequestHost"),
    ({"templateID": "base", "autoResume": {"enabled": True, "x": 1}}, "autoResume must be"),
    ({"templateID": "base", "autoPause": True, "autoPauseMemory": False}, "autoPauseMemory false is not supported"),
    ({"templateID": "nope"}, "unknown template: nope"),
    ({"templateID": "base", "timeout": 0}, "timeout must be an integer"),
    ({}, "missing field: templateID"),
])
def test_bad_create_is_400_and_creates_nothing(e2b, org_a, body, message):
    before = live_count(org_a)
    r = e2b.post("/v2/sandboxes", json=body)
    assert r.status_code == 400 and r.json()["code"] == 400, r.text
    assert message in r.json()["message"]
    assert live_count(org_a) == before


def test_key_spelling_chooses_the_shape_on_shared_paths(server, e2b, org_a, made):
    sid = e2b.create()["sandboxID"]
    made.append(sid)
    sandbase = org_a.get(f"/sandboxes/{sid}").json()
    assert sandbase["status"] == "running" and "alias" not in sandbase
    detail = e2b.get(f"/sandboxes/{sid}").json()
    assert set(detail) == DETAIL_KEYS and detail["state"] == "running"
    assert "status" not in detail
    listed = e2b.get("/sandboxes").json()      # v1 list: running ones, E2B's shape
    assert sid in [s["sandboxID"] for s in listed]
    assert all(set(s) == LISTED_KEYS for s in listed)
    assert all("status" in s for s in org_a.get("/sandboxes").json())
    # E2B-only paths serve either spelling
    r = org_a.get("/v2/sandboxes")
    assert r.status_code == 200 and sid in [s["sandboxID"] for s in r.json()]
    # v1 create for e2b_ keys: E2B's Sandbox, not secure unless asked
    r = e2b.post("/sandboxes", json={"templateID": "base"})
    assert r.status_code == 201 and set(r.json()) == SANDBOX_KEYS, r.text
    made.append(r.json()["sandboxID"])
    assert r.json()["envdAccessToken"] is None


def test_v2_list_pages_and_filters(e2b, made):
    tag = f"pages-{os.getpid()}"
    for i in range(3):
        made.append(e2b.create(metadata={"tag": tag, "i": str(i)})["sandboxID"])
    seen, token, pages = [], None, 0
    while True:
        params = {"metadata": f"tag={tag}", "limit": 2}
        if token:
            params["nextToken"] = token
        r = e2b.get("/v2/sandboxes", params=params)
        assert r.status_code == 200, r.text
        pages += 1
        seen += [s["sandboxID"] for s in r.json()]
        token = r.headers.get("X-Next-Token")
        if not token:
            break
    assert pages == 2 and sorted(seen) == sorted(made)
    assert e2b.get("/v2/sandboxes", params={"metadata": f"tag={tag}", "template": "other"}).json() == []
    later = e2b.get("/v2/sandboxes", params={"metadata": f"tag={tag}",
                                              "startedAfter": "2999-01-01T00:00:00.000Z"})
    assert later.status_code == 200 and later.json() == []


@pytest.mark.parametrize("query, message", [
    ("state=bogus", "invalid state filter: bogus"),
    ("limit=0", "invalid limit"),
    ("limit=101", "invalid limit"),
    ("nextToken=garbage", "invalid nextToken"),
    ("order=sideways", "invalid order"),
    ("startedAfter=yesterday", "invalid startedAfter"),
    ("metadata=novalue", "invalid metadata filter"),
    ("metadata=a%3D%2525ff", "invalid metadata filter: keys and values must be UTF-8"),
    ("metadata=a%3D%25zz", "invalid metadata filter"),
    ("state=" + ",".join(["running"] * 20), "invalid state filter: longer than"),
    ("status=running", "unknown query parameter 'status'"),
])
def test_bad_list_query_is_400(e2b, query, message):
    r = e2b.get("/v2/sandboxes?" + query)
    assert r.status_code == 400 and r.json()["code"] == 400, r.text
    assert message in r.json()["message"]


def test_pause_twice_is_409_and_connect_resumes_with_201(e2b, made):
    sid = e2b.create()["sandboxID"]
    made.append(sid)
    assert e2b.post(f"/sandboxes/{sid}/pause", json={}).status_code == 204
    r = e2b.post(f"/sandboxes/{sid}/pause", json={})
    assert r.status_code == 409 and r.json()["code"] == 409, r.text
    assert e2b.get(f"/sandboxes/{sid}").json()["state"] == "paused"
    r = e2b.post(f"/v2/sandboxes/{sid}/connect", json={"timeout": 100})
    assert r.status_code == 201 and set(r.json()) == SANDBOX_KEYS, r.text
    r = e2b.post(f"/v2/sandboxes/{sid}/connect", json={})
    assert r.status_code == 200, r.text
    assert e2b.post(f"/sandboxes/{sid}/pause", json={"memory": False}).status_code == 400
    assert e2b.get(f"/sandboxes/{sid}").json()["state"] == "running"


def test_unknown_killed_and_other_orgs_sandboxes_are_404(e2b, e2b_other, made):
    sid = e2b.create()["sandboxID"]
    made.append(sid)
    for client, target in [(e2b, "sbx_" + "a" * 20), (e2b_other, sid)]:
        for method, path, body in [("GET", "", None), ("DELETE", "", None), ("POST", "/timeout", {"timeout": 5}),
                                   ("POST", "/pause", {})]:
            r = client.request(method, f"/sandboxes/{target}{path}", json=body)
            assert r.status_code == 404 and r.json()["code"] == 404, (method, path, r.text)
        r = client.post(f"/v2/sandboxes/{target}/connect", json={})
        assert r.status_code == 404 and r.json()["code"] == 404, r.text
    assert e2b.get(f"/sandboxes/{sid}").json()["state"] == "running"
    assert e2b.delete(f"/sandboxes/{sid}").status_code == 204
    r = e2b.get(f"/sandboxes/{sid}")
    assert r.status_code == 404 and r.json()["code"] == 404


def test_bad_key_is_401(server):
    r = requests.post(server.url + "/v2/sandboxes", json={"templateID": "base"},
                      headers={"X-API-KEY": "e2b_" + "0" * 40}, timeout=30)
    assert r.status_code == 401 and r.json()["code"] == 401


def test_envd_health_and_token(server, e2b, made):
    sbx = e2b.create()
    sid, token = sbx["sandboxID"], sbx["envdAccessToken"]
    made.append(sid)
    assert envd(server, sid, "GET", "/health").status_code == 204
    # without the header /health is SandBase's own
    assert requests.get(server.url + "/health", timeout=30).json()["status"] == "ok"
    for bad in [None, "0" * 64, token[:-1]]:
        r = envd(server, sid, "POST", "/process.Process/List", token=bad, json={})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    r = envd(server, sid, "POST", "/process.Process/List", token=token, json={})
    assert r.status_code == 200 and r.json() == {"processes": []}, r.text
    assert r.headers["Content-Type"].startswith("application/json")


def test_envd_of_an_unreachable_sandbox_is_502(server, e2b, made):
    sbx = e2b.create()
    sid, token = sbx["sandboxID"], sbx["envdAccessToken"]
    made.append(sid)
    assert e2b.post(f"/sandboxes/{sid}/pause", json={}).status_code == 204
    assert envd(server, sid, "GET", "/health").status_code == 502
    r = envd(server, sid, "POST", "/process.Process/List", token=token, json={})
    assert r.json()["code"] == "unavailable", r.text
    assert e2b.post(f"/v2/sandboxes/{sid}/connect", json={}).status_code == 201
    assert envd(server, sid, "GET", "/health").status_code == 204
    assert e2b.delete(f"/sandboxes/{sid}").status_code == 204
    assert envd(server, sid, "GET", "/health").status_code == 502
    for unknown in ["sbx_" + "b" * 20, "not-an-id"]:
        assert envd(server, unknown, "GET", "/health").status_code == 502


def test_envd_rpc_bad_input(server, e2b, made):
    sbx = e2b.create(secure=False)
    sid = sbx["sandboxID"]
    made.append(sid)
    r = envd(server, sid, "POST", "/process.Process/Nope", json={})
    assert r.status_code == 501 and r.json()["code"] == "unimplemented", r.text
    r = envd(server, sid, "POST", "/filesystem.Filesystem/CreateWatcherNope", json={"path": "/"})
    assert r.json()["code"] == "unimplemented", r.text
    r = envd(server, sid, "POST", "/process.Process/List", data=b"\x00\x00",
             headers={"Content-Type": "application/proto"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    r = envd(server, sid, "POST", "/process.Process/List", data=b"{not json",
             headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    r = envd(server, sid, "GET", "/process.Process/List")
    assert r.json()["code"] == "unimplemented" and r.status_code == 501, r.text
    r = envd(server, sid, "GET", "/files", params={"path": "/tmp/none"})
    assert r.status_code == 404 and r.json()["code"] == 404, r.text
    # an unsecured sandbox needs no token, and the sandbox is unharmed
    r = envd(server, sid, "POST", "/process.Process/List", json={})
    assert r.status_code == 200 and r.json() == {"processes": []}, r.text


# ---- metrics (§2.7; E2B's openapi.yml: /sandboxes/{id}/metrics, /sandboxes/metrics) ----

METRIC_KEYS = {"timestamp", "timestampUnix", "cpuCount", "cpuUsedPct", "memUsed", "memTotal", "memCache",
               "diskUsed", "diskTotal"}


def busy(org_a, sid, seconds=5):
    """Keeps one CPU of sid busy for a while, in the background."""
    r = org_a.post(f"/sandboxes/{sid}/processes",
                   json={"cmd": "/bin/sh", "args": ["-c", f"(timeout {seconds} sh -c 'while :; do :; done') "
                                                          ">/dev/null 2>&1 &"]})
    assert r.status_code == 200, r.text


def check_metric(m):
    assert set(m) == METRIC_KEYS, m
    assert m["timestamp"].endswith("Z") and abs(m["timestampUnix"] - time.time()) < 60
    assert m["cpuCount"] == 2 and m["memTotal"] == 512 << 20
    assert 0 < m["memUsed"] <= m["memTotal"] and 0 <= m["memCache"] <= m["memUsed"]
    assert 0 < m["diskUsed"] < m["diskTotal"]


def test_sandbox_metrics_are_e2b_sandbox_metric_with_real_figures(e2b, e2b_other, org_a, made):
    sid = e2b.create()["sandboxID"]
    made.append(sid)
    idle = e2b.get(f"/sandboxes/{sid}/metrics")
    assert idle.status_code == 200, idle.text
    [m0] = idle.json()
    check_metric(m0)
    busy(org_a, sid)
    org_a.sh(sid, "head -c 30000000 /dev/urandom > /tmp/disk.bin")
    now = int(time.time())
    r = e2b.get(f"/sandboxes/{sid}/metrics", params={"start": now - 3600, "end": now + 3600})
    assert r.status_code == 200, r.text
    [m] = r.json()
    check_metric(m)
    assert m["cpuUsedPct"] > 10 > m0["cpuUsedPct"], (m0, m)     # one busy CPU of two is ~50%
    assert m["diskUsed"] >= m0["diskUsed"] + 25_000_000
    # one sample, taken now: a range that excludes now has none
    for params in ({"end": now - 600}, {"start": now + 600}, {"start": 0, "end": 1}):
        r = e2b.get(f"/sandboxes/{sid}/metrics", params=params)
        assert r.status_code == 200 and r.json() == [], (params, r.text)
    # bad input is 400 and unknown or other orgs' sandboxes 404, in E2B's error shape
    for params, message in [({"start": "yesterday"}, "start must be"), ({"end": "-5"}, "end must be"),
                            ({"start": now, "end": now - 1}, "must not be after"),
                            ({"step": 5}, "step")]:
        r = e2b.get(f"/sandboxes/{sid}/metrics", params=params)
        assert r.status_code == 400 and r.json()["code"] == 400 and message in r.json()["message"], r.text
    for client, target in [(e2b, "sbx_" + "a" * 20), (e2b_other, sid)]:
        r = client.get(f"/sandboxes/{target}/metrics")
        assert r.status_code == 404 and r.json()["code"] == 404, r.text
    assert e2b.get("/sandboxes/nope/metrics").status_code == 400


def test_batch_metrics_cover_the_orgs_live_sandboxes_only(e2b, e2b_other, org_a, made):
    a, b, gone = (e2b.create()["sandboxID"] for _ in range(3))
    made.extend([a, b])
    theirs = e2b_other.create()["sandboxID"]
    try:
        assert e2b.delete(f"/sandboxes/{gone}").status_code == 204
        busy(org_a, a)
        unknown = "sbx_" + "c" * 20
        r = e2b.get("/sandboxes/metrics", params={"sandbox_ids": ",".join([a, b, gone, theirs, unknown])})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"sandboxes"} and set(body["sandboxes"]) == {a, b}, body
        for m in body["sandboxes"].values():
            check_metric(m)
        # each figure is its own sandbox's
        assert body["sandboxes"][a]["cpuUsedPct"] > 10 > body["sandboxes"][b]["cpuUsedPct"], body
        # the other org sees its own and nothing of ours
        r = e2b_other.get("/sandboxes/metrics", params={"sandbox_ids": f"{a},{theirs}"})
        assert r.status_code == 200 and set(r.json()["sandboxes"]) == {theirs}, r.text
    finally:
        e2b_other.delete(f"/sandboxes/{theirs}")


def test_batch_metrics_bound_and_bad_input(e2b, made):
    sid = e2b.create()["sandboxID"]
    made.append(sid)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    many = ["sbx_" + "".join(alphabet[(i >> (5 * k)) & 31] for k in range(20)) for i in range(101)]
    assert len(set(many)) == 101
    # E2B's maximum, 100, is served; one more is refused
    r = e2b.get("/sandboxes/metrics", params={"sandbox_ids": ",".join([sid] + many[:99])})
    assert r.status_code == 200 and set(r.json()["sandboxes"]) == {sid}, r.text
    r = e2b.get("/sandboxes/metrics", params={"sandbox_ids": ",".join([sid] + many[:100])})
    assert r.status_code == 400 and "maximum is 100" in r.json()["message"], r.text
    for query, message in [("", "sandbox_ids is required"), ("sandbox_ids=", "comma-separated"),
                           (f"sandbox_ids={sid},,{sid}", "comma-separated"),
                           (f"sandbox_ids={sid},", "comma-separated"),
                           ("sandbox_ids=sbx_nope", "invalid sandbox id"),
                           (f"sandbox_ids={sid},{sid}", "twice"),
                           (f"sandbox_ids={sid}&start=5", "start")]:
        r = e2b.get("/sandboxes/metrics?" + query)
        assert r.status_code == 400 and r.json()["code"] == 400 and message in r.json()["message"], (query, r.text)
    # a repeated parameter counts as one list
    r = e2b.get(f"/sandboxes/metrics?sandbox_ids={sid}&sandbox_ids={many[0]}")
    assert r.status_code == 200 and set(r.json()["sandboxes"]) == {sid}, r.text
    r = requests.get(e2b.server.url + f"/sandboxes/metrics?sandbox_ids={sid}", timeout=30)
    assert r.status_code == 401
    # and the sandbox is unharmed
    assert e2b.get(f"/sandboxes/{sid}").json()["state"] == "running"
