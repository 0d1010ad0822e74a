"""envd's file routes at the edges, in raw HTTP (the SDK's happy paths are
tests/e2b/files.test.mjs): Connect error codes of the Filesystem RPCs,
WatchDir's in-band errors and a truncated envelope, the polling watchers
and their caps, `..` and symlink escapes through /files and the RPCs,
/files credentials (token, signatures, expiry, user), and bodies that are
too large, malformed multipart, bad or truncated gzip; after each refusal
the sandbox is looked at to see that nothing was written."""
import base64
import gzip
import hashlib
import json
import os
import struct
import time
import uuid

import pytest
import requests

from conftest import private_server

FILE_MAX = 4 << 20
UPLOAD_MAX = 8 << 20


@pytest.fixture(scope="module")
def srv():
    with private_server("e2b-files", pool_size=1, org_sandbox_cap=20, files_upload_file_max=FILE_MAX,
                        files_upload_max=UPLOAD_MAX) as s:
        yield s


def e2b_key(srv):
    return "e2b_" + srv.client.key[len("sk-sb-"):]


def create(srv, secure=True):
    r = requests.post(srv.url + "/v2/sandboxes", headers={"X-API-KEY": e2b_key(srv)},
                      json={"templateID": "base", "secure": secure}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def sbx(srv):
    made = create(srv)
    yield made
    srv.client.delete(f"/sandboxes/{made['sandboxID']}")


def envd(srv, sbx, method, path, token=True, **kw):
    headers = {"E2b-Sandbox-Id": sbx["sandboxID"], **kw.pop("headers", {})}
    if token and sbx.get("envdAccessToken"):
        headers["X-Access-Token"] = sbx["envdAccessToken"]
    return requests.request(method, srv.url + path, headers=headers, timeout=60, **kw)


def rpc(srv, sbx, method, body, user=None, **kw):
    headers = kw.pop("headers", {})
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:".encode()).decode()
    return envd(srv, sbx, "POST", f"/filesystem.Filesystem/{method}", json=body, headers=headers, **kw)


def sh(srv, sbx, script, user="root"):
    return srv.client.sh(sbx["sandboxID"], script, user=user)["stdout"]


def envelope(msg, flags=0):
    payload = json.dumps(msg).encode() if not isinstance(msg, bytes) else msg
    return struct.pack(">BI", flags, len(payload)) + payload


def read_envelopes(body):
    out = []
    while body:
        flags, n = struct.unpack(">BI", body[:5])
        out.append((flags, json.loads(body[5:5 + n])))
        body = body[5 + n:]
    return out


def sign(path, op, user, token, exp=None):
    raw = f"{path}:{op}:{user}:{token}" + (f":{exp}" if exp is not None else "")
    return "v1_" + base64.b64encode(hashlib.sha256(raw.encode()).digest()).decode().rstrip("=")


# ---- the Filesystem RPCs ----

def test_rpc_error_codes(srv, sbx):
    sh(srv, sbx, "mkdir -p /tmp/r/d && echo x > /tmp/r/f", user="user")
    cases = [
        ("Stat", {"path": "/tmp/r/none"}, 404, "not_found"),
        ("ListDir", {"path": "/tmp/r/none", "depth": 1}, 404, "not_found"),
        ("ListDir", {"path": "/tmp/r/f", "depth": 1}, 400, "invalid_argument"),
        ("ListDir", {"path": "/tmp/r", "depth": 65}, 400, "invalid_argument"),
        ("ListDir", {"path": "/tmp/r", "depth": -1}, 400, "invalid_argument"),
        ("MakeDir", {"path": "/tmp/r/d"}, 409, "already_exists"),
        ("MakeDir", {"path": "/tmp/r/f"}, 400, "invalid_argument"),
        ("MakeDir", {"path": "/tmp/r/f/sub"}, 400, "invalid_argument"),
        ("Move", {"source": "/tmp/r/none", "destination": "/tmp/r/x"}, 404, "not_found"),
        ("Move", {"source": "/tmp/r/f"}, 400, "invalid_argument"),
        ("Stat", {"path": 5}, 400, "invalid_argument"),
        ("Stat", {}, 400, "invalid_argument"),
        ("MakeDir", {"path": "/root/nope"}, 403, "permission_denied"),
    ]
    for method, body, status, code in cases:
        r = rpc(srv, sbx, method, body)
        assert (r.status_code, r.json()["code"]) == (status, code), (method, body, r.text)
    # nothing of that changed the sandbox
    assert sh(srv, sbx, "find /tmp/r | sort") == "/tmp/r\n/tmp/r/d\n/tmp/r/f\n"
    # Remove of a missing path is fine; of a directory, recursive
    assert rpc(srv, sbx, "Remove", {"path": "/tmp/r/none"}).json() == {}
    assert rpc(srv, sbx, "Remove", {"path": "/tmp/r"}).status_code == 200
    assert sh(srv, sbx, "test -e /tmp/r && echo yes || echo no") == "no\n"


def test_rpc_transport_errors(srv, sbx):
    r = envd(srv, sbx, "POST", "/filesystem.Filesystem/Stat", data=b'{"path":"/"}',
             headers={"Content-Type": "application/proto"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    r = envd(srv, sbx, "POST", "/filesystem.Filesystem/Stat", data=b'{"path":', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    r = envd(srv, sbx, "POST", "/filesystem.Filesystem/Stat", data=b'[1]', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    # no token, a wrong token, an unknown user
    r = rpc(srv, sbx, "Stat", {"path": "/"}, token=False)
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    r = rpc(srv, sbx, "Stat", {"path": "/"}, headers={"X-Access-Token": "0" * 64}, token=False)
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    r = rpc(srv, sbx, "Stat", {"path": "/"}, user="mallory")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    # a body far over max_body is refused before the handler
    r = envd(srv, sbx, "POST", "/filesystem.Filesystem/Stat", data=b'{"path":"' + b"a" * (3 << 20) + b'"}',
             headers={"Content-Type": "application/json"})
    assert r.status_code == 429 and r.json()["code"] == "resource_exhausted", r.text
    # snake_case and numeric strings are protobuf JSON too
    r = rpc(srv, sbx, "ListDir", {"path": "/", "depth": "1"})
    assert r.status_code == 200 and any(e["name"] == "tmp" for e in r.json()["entries"]), r.text


def test_entry_info_shape(srv, sbx):
    sh(srv, sbx, "printf 12345 > /tmp/e.txt && chmod 640 /tmp/e.txt && ln -s /tmp/e.txt /tmp/e.lnk && "
                 "ln -s /nowhere /tmp/e.dangling", user="user")
    e = rpc(srv, sbx, "Stat", {"path": "/tmp/e.txt"}).json()["entry"]
    assert e["name"] == "e.txt" and e["path"] == "/tmp/e.txt" and e["type"] == "FILE_TYPE_FILE"
    assert e["size"] == "5" and e["mode"] == 0o640 and e["permissions"] == "-rw-r-----"
    assert e["owner"] == "user" and e["group"] == "user" and "symlinkTarget" not in e
    assert e["modifiedTime"].endswith("Z")
    link = rpc(srv, sbx, "Stat", {"path": "/tmp/e.lnk"}).json()["entry"]
    assert link["type"] == "FILE_TYPE_FILE" and link["symlinkTarget"] == "/tmp/e.txt"
    assert link["permissions"].startswith("L") and link["mode"] == 0o640
    dangling = rpc(srv, sbx, "Stat", {"path": "/tmp/e.dangling"}).json()["entry"]
    assert dangling["type"] == "FILE_TYPE_UNSPECIFIED"
    d = rpc(srv, sbx, "Stat", {"path": "~"}).json()["entry"]
    assert d["path"] == "/home/user" and d["type"] == "FILE_TYPE_DIRECTORY"
    assert rpc(srv, sbx, "Stat", {"path": "~"}, user="root").json()["entry"]["path"] == "/root"


# ---- escapes ----

def test_dotdot_and_symlinks_stay_inside_the_sandbox(srv, sbx):
    marker = f"/tmp/sandbase-host-marker-{uuid.uuid4().hex}"
    with open(marker, "w") as f:
        f.write("host")
    try:
        sh(srv, sbx, "ln -s / /tmp/rootlink && ln -s ../../../../../../../../tmp /tmp/uplink && echo inside > /tmp/in")
        base = os.path.basename(marker)
        # ".." is refused outright, by the RPCs and /files alike
        for method, body in [("Stat", {"path": "/tmp/../../" + marker}), ("ListDir", {"path": "/tmp/../.."}),
                             ("MakeDir", {"path": "/tmp/../../x"}), ("Remove", {"path": "/tmp/../../tmp/in"}),
                             ("Move", {"source": "/tmp/in", "destination": "/tmp/../../x"})]:
            r = rpc(srv, sbx, method, body, user="root")
            assert r.status_code == 400 and r.json()["code"] == "invalid_argument", (method, r.text)
        r = envd(srv, sbx, "GET", "/files", params={"path": "/tmp/../.." + marker, "username": "root"})
        assert r.status_code == 400, r.text
        # symlinks to / or up past it resolve inside the sandbox: the host's file is not there
        for path in ["/tmp/rootlink" + marker, "/tmp/uplink/" + base]:
            r = rpc(srv, sbx, "Stat", {"path": path}, user="root")
            assert r.status_code == 404, r.text
            r = envd(srv, sbx, "GET", "/files", params={"path": path, "username": "root"})
            assert r.status_code == 404 and r.json()["code"] == 404, r.text
        names = [e["name"] for e in rpc(srv, sbx, "ListDir", {"path": "/tmp/uplink", "depth": 1}, user="root").json()["entries"]]
        assert "in" in names and base not in names
        # writes through them land inside
        files = {"file": ("/tmp/rootlink/tmp/through.txt", b"through")}
        r = envd(srv, sbx, "POST", "/files", params={"username": "root"}, files=files)
        assert r.status_code == 200, r.text
        r = rpc(srv, sbx, "Move", {"source": "/tmp/in", "destination": "/tmp/uplink/moved"}, user="root")
        assert r.status_code == 200 and r.json()["entry"]["path"] == "/tmp/uplink/moved", r.text
        assert sh(srv, sbx, "cat /tmp/through.txt /tmp/moved") == "throughinside\n"
        assert not os.path.exists("/tmp/through.txt") and not os.path.exists("/tmp/moved")
        # a multipart filename with .. is refused and writes nothing
        files = {"file": ("../../../../tmp/evil.txt", b"evil")}
        r = envd(srv, sbx, "POST", "/files", params={"username": "root"}, files=files)
        assert r.status_code == 400, r.text
        assert not os.path.exists("/tmp/evil.txt")
        assert sh(srv, sbx, "ls /tmp/evil.txt 2>&1 || true").endswith("No such file or directory\n")
        with open(marker) as f:
            assert f.read() == "host"
    finally:
        os.unlink(marker)


# ---- WatchDir ----

def watch(srv, sbx, body_bytes, timeout_ms=None, **kw):
    headers = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}
    if timeout_ms:
        headers["Connect-Timeout-Ms"] = str(timeout_ms)
    return envd(srv, sbx, "POST", "/filesystem.Filesystem/WatchDir", data=body_bytes, headers=headers, **kw)


def test_watch_dir_errors_are_in_band(srv, sbx):
    sh(srv, sbx, "touch /tmp/notdir", user="user")
    cases = [(envelope({"path": "/tmp/nowhere"}), "not_found"),
             (envelope({"path": "/tmp/notdir"}), "invalid_argument"),
             (envelope({"path": "/tmp/../etc"}), "invalid_argument"),
             (envelope({"path": "/tmp"})[:-3], "invalid_argument"),            # truncated envelope
             (envelope({"path": "/tmp"}) + envelope({}), "invalid_argument"),  # two
             (envelope({"path": "/tmp"}, flags=1), "invalid_argument"),        # compressed
             (b"", "invalid_argument")]
    for body, code in cases:
        r = watch(srv, sbx, body)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/connect+json"), r.text
        msgs = read_envelopes(r.content)
        assert len(msgs) == 1 and msgs[0][0] == 2 and msgs[0][1]["error"]["code"] == code, (body, msgs)


def test_watch_dir_streams_and_ends_at_its_deadline(srv, sbx):
    sh(srv, sbx, "mkdir -p /tmp/wd/sub", user="user")
    with watch(srv, sbx, envelope({"path": "/tmp/wd", "recursive": True}), timeout_ms=2500, stream=True) as r:
        assert r.status_code == 200
        time.sleep(0.5)
        sh(srv, sbx, "echo a > /tmp/wd/sub/a && rm /tmp/wd/sub/a", user="user")
        start = time.monotonic()
        body = r.raw.read()
        assert time.monotonic() - start < 5
    msgs = read_envelopes(body)
    assert msgs[0] == (0, {"start": {}}), msgs
    events = [(m["filesystem"]["type"], m["filesystem"]["name"]) for f, m in msgs if f == 0 and "filesystem" in m]
    assert ("EVENT_TYPE_CREATE", "sub/a") in events and ("EVENT_TYPE_REMOVE", "sub/a") in events, events
    assert ("EVENT_TYPE_WRITE", "sub/a") in events, events
    assert msgs[-1][0] == 2 and msgs[-1][1]["error"]["code"] == "deadline_exceeded", msgs[-1]


def test_watch_dir_ends_when_its_directory_goes(srv, sbx):
    sh(srv, sbx, "mkdir -p /tmp/gone", user="user")
    with watch(srv, sbx, envelope({"path": "/tmp/gone"}), timeout_ms=20000, stream=True) as r:
        time.sleep(0.5)
        sh(srv, sbx, "rmdir /tmp/gone", user="user")
        start = time.monotonic()
        body = r.raw.read()
        assert time.monotonic() - start < 10
    msgs = read_envelopes(body)
    assert msgs[-1] == (2, {}), msgs


# ---- polling watchers ----

def test_polling_watcher(srv, sbx):
    sh(srv, sbx, "mkdir -p /tmp/pw", user="user")
    r = rpc(srv, sbx, "CreateWatcher", {"path": "/tmp/pw"})
    assert r.status_code == 200, r.text
    wid = r.json()["watcherId"]
    sh(srv, sbx, "echo x > /tmp/pw/one && mv /tmp/pw/one /tmp/pw/two && chmod 600 /tmp/pw/two", user="user")
    events = []
    for _ in range(50):
        r = rpc(srv, sbx, "GetWatcherEvents", {"watcherId": wid})
        assert r.status_code == 200, r.text
        events += [(e["type"], e["name"]) for e in r.json()["events"]]
        if ("EVENT_TYPE_CHMOD", "two") in events:
            break
        time.sleep(0.1)
    for want in [("EVENT_TYPE_CREATE", "one"), ("EVENT_TYPE_RENAME", "one"), ("EVENT_TYPE_CREATE", "two"),
                 ("EVENT_TYPE_CHMOD", "two")]:
        assert want in events, events
    # polled events are not handed out twice
    assert rpc(srv, sbx, "GetWatcherEvents", {"watcher_id": wid}).json()["events"] == []
    # another sandbox cannot see it
    other = create(srv, secure=False)
    try:
        r = rpc(srv, other, "GetWatcherEvents", {"watcherId": wid})
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    finally:
        srv.client.delete(f"/sandboxes/{other['sandboxID']}")
    assert rpc(srv, sbx, "RemoveWatcher", {"watcherId": wid}).json() == {}
    for method in ("GetWatcherEvents", "RemoveWatcher"):
        r = rpc(srv, sbx, method, {"watcherId": wid})
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    r = rpc(srv, sbx, "CreateWatcher", {"path": "/tmp/nowhere"})
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text


def test_watchers_are_capped_and_freed_with_their_sandbox(srv):
    a, b, c = create(srv), create(srv), create(srv)
    try:
        ids = []
        for _ in range(16):
            r = rpc(srv, a, "CreateWatcher", {"path": "/tmp"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["watcherId"])
        r = rpc(srv, a, "CreateWatcher", {"path": "/tmp"})
        assert r.status_code == 429 and r.json()["code"] == "resource_exhausted", r.text
        assert rpc(srv, a, "RemoveWatcher", {"watcherId": ids.pop()}).status_code == 200
        assert rpc(srv, a, "CreateWatcher", {"path": "/tmp"}).status_code == 200
        # a's 16 go with it: then b and c can hold the server's 32 between them
        srv.client.delete(f"/sandboxes/{a['sandboxID']}")
        time.sleep(3)
        for s in (b, c):
            for _ in range(16):
                r = rpc(srv, s, "CreateWatcher", {"path": "/tmp"})
                assert r.status_code == 200, r.text
        # and the server's cap of 32 watches is reached: resource_exhausted, for WatchDir in band
        r = rpc(srv, b, "CreateWatcher", {"path": "/tmp"})
        assert r.status_code == 429 and "on this server" in r.json()["message"], r.text
        msgs = read_envelopes(watch(srv, b, envelope({"path": "/tmp"})).content)
        assert len(msgs) == 1 and msgs[0][0] == 2, msgs
        assert msgs[0][1]["error"]["code"] == "resource_exhausted", msgs
    finally:
        for s in (a, b, c):
            srv.client.delete(f"/sandboxes/{s['sandboxID']}")


# ---- /files ----

def test_files_get_errors(srv, sbx):
    r = envd(srv, sbx, "GET", "/files", params={"path": "/tmp/none.txt"})
    assert r.status_code == 404 and r.json() == {"code": 404, "message": "path '/tmp/none.txt' does not exist"}
    r = envd(srv, sbx, "GET", "/files", params={"path": "/tmp"})
    assert r.status_code == 400 and "directory" in r.json()["message"], r.text
    r = envd(srv, sbx, "GET", "/files")
    assert r.status_code == 400, r.text
    r = envd(srv, sbx, "GET", "/files", params={"path": "/etc/hostname", "username": "mallory"})
    assert r.status_code == 401, r.text
    r = envd(srv, sbx, "GET", "/files", params={"path": "/etc/hostname"}, token=False)
    assert r.status_code == 401, r.text
    r = envd(srv, sbx, "GET", "/files", params={"path": "/etc/hostname"}, token=False,
             headers={"X-Access-Token": sbx["envdAccessToken"][:-1] + ("1" if sbx["envdAccessToken"][-1] == "0" else "0")})
    assert r.status_code == 401, r.text
    # the default user reads with the user's rights
    r = envd(srv, sbx, "GET", "/files", params={"path": "/root/.profile"})
    assert r.status_code in (403, 404), r.text


def test_files_signatures(srv, sbx):
    token = sbx["envdAccessToken"]
    path = "/tmp/sig.txt"
    sig = sign(path, "write", "", token)
    r = envd(srv, sbx, "POST", "/files", token=False, params={"path": path, "signature": sig},
             files={"file": ("x", b"signed")})
    assert r.status_code == 200, r.text
    read = {"path": path, "signature": sign(path, "read", "", token)}
    assert envd(srv, sbx, "GET", "/files", token=False, params=read).content == b"signed"
    exp = int(time.time()) + 60
    ok = {"path": path, "signature": sign(path, "read", "root", token, exp), "signature_expiration": str(exp),
          "username": "root"}
    assert envd(srv, sbx, "GET", "/files", token=False, params=ok).status_code == 200
    past = int(time.time()) - 1
    bad = [
        {"path": path, "signature": sign(path, "read", "", token, past), "signature_expiration": str(past)},
        {**ok, "signature_expiration": str(exp + 1)},
        {**ok, "username": "user"},
        {**ok, "path": "/tmp/other.txt"},
        {**ok, "signature": ok["signature"][:-1]},
        {**ok, "signature": sign(path, "read", "root", "0" * 64, exp)},
        {**ok, "signature_expiration": "soon"},
        {"path": path, "signature": sign(path, "read", "", token, exp)},      # expiration dropped
    ]
    for params in bad:
        r = envd(srv, sbx, "GET", "/files", token=False, params=params)
        assert r.status_code == 401 and r.json()["code"] == 401, (params, r.text)
    # without E2b-Sandbox-Id the signature finds its sandbox; a wrong or expired one finds none
    bare = {k: v for k, v in ok.items()}
    r = requests.get(srv.url + "/files", params=bare, timeout=30)
    assert r.status_code == 200 and r.content == b"signed", r.text
    r = requests.get(srv.url + "/files", params={**bare, "signature": sign(path, "read", "root", "0" * 64, exp)},
                     timeout=30)
    assert r.status_code == 401 and "no running secure sandbox" in r.json()["message"], r.text
    r = requests.get(srv.url + "/files", params=bad[0], timeout=30)
    assert r.status_code == 401 and "expired" in r.json()["message"], r.text
    r = requests.post(srv.url + "/files", params={"path": path, "signature": sign(path, "write", "", token)},
                      files={"file": ("x", b"signed again")}, timeout=30)
    assert r.status_code == 200, r.text
    # no signature and no header: not envd's (SandBase has no /files)
    assert requests.get(srv.url + "/files", params={"path": path}, timeout=30).status_code == 404
    # a wrong token beside a valid signature is refused, as envd does
    r = envd(srv, sbx, "GET", "/files", token=False, params=ok, headers={"X-Access-Token": "0" * 64})
    assert r.status_code == 401, r.text
    # a write signature with a body: refused, and the file is unchanged
    r = envd(srv, sbx, "POST", "/files", token=False, files={"file": ("x", b"overwritten")},
             params={"path": path, "signature": sign(path, "read", "", token)})
    assert r.status_code == 401, r.text
    assert sh(srv, sbx, f"cat {path}") == "signed again"


def test_files_unsecured_sandbox_takes_no_credential(srv):
    s = create(srv, secure=False)
    try:
        assert s["envdAccessToken"] is None
        r = envd(srv, s, "POST", "/files", params={"path": "/tmp/o.txt"}, data=b"open",
                 headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200 and r.json()[0]["path"] == "/tmp/o.txt", r.text
        assert envd(srv, s, "GET", "/files", params={"path": "/tmp/o.txt"}).content == b"open"
    finally:
        srv.client.delete(f"/sandboxes/{s['sandboxID']}")


def test_files_upload_refusals_write_nothing(srv, sbx):
    octet = {"Content-Type": "application/octet-stream"}
    cases = [
        # octet-stream without a path
        (dict(data=b"x", headers=octet), {}, 400),
        # not gzip, and gzip cut short
        (dict(data=b"this is not gzip", headers={**octet, "Content-Encoding": "gzip"}), {"path": "/tmp/u/g1"}, 400),
        (dict(data=gzip.compress(b"y" * 100000)[:-20], headers={**octet, "Content-Encoding": "gzip"}),
         {"path": "/tmp/u/g2"}, 400),
        # gzip followed by garbage
        (dict(data=gzip.compress(b"ok") + b"garbage!", headers={**octet, "Content-Encoding": "gzip"}),
         {"path": "/tmp/u/g3"}, 400),
        # a small body that inflates past the per-file cap
        (dict(data=gzip.compress(b"\0" * (FILE_MAX + 1)), headers={**octet, "Content-Encoding": "gzip"}),
         {"path": "/tmp/u/bomb"}, 413),
        (dict(data=b"x", headers={**octet, "Content-Encoding": "br"}), {"path": "/tmp/u/br"}, 415),
        # over the request cap: refused on its Content-Length
        (dict(data=b"z" * (UPLOAD_MAX + 1), headers=octet), {"path": "/tmp/u/huge"}, 413),
        # over the per-file cap, streamed
        (dict(data=iter([b"z" * (1 << 20)] * 5), headers=octet), {"path": "/tmp/u/big"}, 413),
        # malformed multipart: no closing boundary; the same path twice; no file at all
        (dict(data=b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/u/m\"\r\n\r\nabc",
              headers={"Content-Type": "multipart/form-data; boundary=B"}), {}, 400),
        (dict(files=[("file", ("/tmp/u/d", b"1")), ("file", ("/tmp/u/d", b"2"))]), {}, 400),
        (dict(files=[("other", (None, b"/tmp/u/o"))]), {}, 400),       # a plain field only
        (dict(data=b"x", headers={"Content-Type": "text/plain"}), {}, 400),
        (dict(data=b"x", headers=octet), {"path": "/tmp/u/x", "username": "mallory"}, 401),
        (dict(data=b"x", headers=octet), {"path": "/tmp"}, 400),
    ]
    for kw, params, status in cases:
        r = envd(srv, sbx, "POST", "/files", params=params, **kw)
        assert r.status_code == status, (params, kw.get("headers"), r.status_code, r.text)
        assert r.json()["code"] == status
    assert sh(srv, sbx, "ls -A /tmp/u 2>/dev/null | wc -l") == "0\n"
    # the same gzip, whole, is written (and two members are one file)
    body = gzip.compress(b"first ") + gzip.compress(b"second")
    r = envd(srv, sbx, "POST", "/files", params={"path": "/tmp/u/ok"}, data=body,
             headers={**octet, "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert sh(srv, sbx, "cat /tmp/u/ok; stat -c %U /tmp/u /tmp/u/ok") == "first seconduser\nuser\n"


def test_files_large_upload_and_download_stream(srv, sbx):
    blob = os.urandom(3 << 20)
    r = envd(srv, sbx, "POST", "/files", params={"path": "~/big.bin"}, data=iter([blob[i:i + 65536] for i in range(0, len(blob), 65536)]),
             headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()[0]["path"] == "/home/user/big.bin", r.text
    r = envd(srv, sbx, "GET", "/files", params={"path": "/home/user/big.bin"})
    assert r.status_code == 200 and r.content == blob
    assert r.headers["Content-Disposition"].startswith("inline")
    gz = gzip.compress(blob)
    r = envd(srv, sbx, "POST", "/files", params={"path": "/tmp/big.gz.bin"}, data=gz,
             headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert sh(srv, sbx, "sha256sum < /tmp/big.gz.bin").split()[0] == hashlib.sha256(blob).hexdigest()


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_gzip_inflates_in_bounded_memory():
    """300 MiB of zeros in about 300 KiB of gzip: serve inflates it a batch
    at a time (the body paused meanwhile), so its peak RSS hardly moves
    (about 2 MiB: two batches; inflating whole body pieces grew it by 31)."""
    size = 300 << 20
    with private_server("e2b-gzip", pool_size=0, files_upload_file_max=512 << 20,
                        files_upload_max=512 << 20) as big:
        s = create(big)
        body = gzip.compress(b"\0" * size, compresslevel=9)
        assert len(body) < 1 << 20
        envd(big, s, "POST", "/files", params={"path": "/tmp/warm"}, data=gzip.compress(b"warm"),
             headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        before = vm_hwm_kib(big.proc.pid)
        r = envd(big, s, "POST", "/files", params={"path": "/tmp/zeros"}, data=body,
                 headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        grown = vm_hwm_kib(big.proc.pid) - before
        assert sh(big, s, "stat -c %s /tmp/zeros") == f"{size}\n"
        assert grown < 12 << 10, f"serve's peak RSS grew by {grown} KiB while inflating"
