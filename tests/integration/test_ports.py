"""Sandbox ports reachable through the server (issue 12, ports half): the
Host form <port>-<id>.<domain> (with the id's '_' or '-'), the path form
/sandboxes/:id/ports/:port/..., E2B's E2b-Sandbox-Id + E2b-Sandbox-Port
pair, streaming both ways, WebSocket upgrades, the traffic token, and what
a hostile server inside the sandbox cannot do to the proxy.

No packet leaves this machine: the servers here have no uplink (so their
sandboxes have loopback only), and everything is 127.0.0.1. The servers
inside the sandbox are port_servers.py, run by the sandbox's python3."""
import concurrent.futures
import hashlib
import json
import os
import socket
import time

import pytest
import requests
import websocket

from conftest import Client, private_server

HERE = os.path.dirname(os.path.abspath(__file__))
ASAN = os.environ.get("SANDBASE_ASAN") == "1"
SCALE = 4 if ASAN else 1
PATTERN = bytes(range(256)) * 256
TIMEOUT_S = 3


def pattern_bytes(n):
    whole, rest = divmod(n, len(PATTERN))
    return PATTERN * whole + PATTERN[:rest]


def start_servers(client, sid):
    with open(os.path.join(HERE, "port_servers.py")) as f:
        script = f.read()
    r = client.run(sid, "python3", "-c", script, background=True, timeout=0)
    assert r.status_code == 202, r.text
    deadline = time.time() + 30 * SCALE
    while time.time() < deadline:
        r = client.get(f"/sandboxes/{sid}/ports/8000/headers")
        if r.status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"the sandbox's servers did not come up: {r.status_code} {r.text}")


@pytest.fixture(scope="module")
def srv():
    with private_server("ports-a", ports_timeout_s=TIMEOUT_S, pool_size=1) as s:
        s.other = Client(s, s.new_key("ports-b"))
        yield s


@pytest.fixture(scope="module")
def sid(srv):
    sandbox_id = srv.client.create()
    start_servers(srv.client, sandbox_id)
    return sandbox_id


def host_get(srv, host, target, **kw):
    kw.setdefault("timeout", 30 * SCALE)
    headers = dict(kw.pop("headers", {}), Host=host)
    return requests.get(srv.url + target, headers=headers, **kw)


def serve_rss_kb(srv):
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---- routing ----

def test_host_form_with_either_id_spelling(srv, sid):
    for spelled in (sid, sid.replace("_", "-"), sid.upper().replace("_", "-")):
        r = host_get(srv, f"8000-{spelled}.localhost:{srv.port}", "/headers?x=1")
        assert r.status_code == 200, r.text
        assert r.headers["Server"].startswith("BaseHTTP")
        assert r.json()["target"] == "/headers?x=1"
    # no port after the domain is the same host name
    assert host_get(srv, f"8000-{sid}.localhost", "/headers").status_code == 200


def test_host_form_needs_no_api_key_and_passes_the_target_raw(srv, sid):
    r = host_get(srv, f"8000-{sid}.localhost", "/a%2Fb/c%20d?q=%26&r=+")
    assert r.status_code == 200, r.text
    assert r.json() == {"method": "GET", "target": "/a%2Fb/c%20d?q=%26&r=+"}


def test_a_host_that_is_not_exactly_the_form_is_the_api(srv, sid):
    # wrong domain, no port, a bad id: the API answers (its 404 or its health)
    for host in (f"8000-{sid}.example.com", f"x-{sid}.localhost", f"8000-sbx_short.localhost",
                 f"0-{sid}.localhost", f"70000-{sid}.localhost"):
        r = host_get(srv, host, "/health")
        assert r.status_code == 200 and r.json()["status"] == "ok", (host, r.text)


def test_path_form(srv, sid):
    r = srv.client.get(f"/sandboxes/{sid}/ports/8000/headers?y=2")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["target"] == "/headers?y=2"
    names = {k.lower(): v for k, v in got["headers"]}
    # the API key stays with the API; the proxy says who asked
    assert "authorization" not in names and "x-api-key" not in names
    assert names["x-forwarded-for"] == "127.0.0.1"
    assert names["x-forwarded-proto"] == "http"
    assert "connection" not in names        # HTTP/1.1's keep-alive, see test_upstream_keep_alive
    # bare port: the upstream gets "/"
    r = srv.client.get(f"/sandboxes/{sid}/ports/8000")
    assert r.status_code == 200 and r.json()["target"] == "/", r.text
    r = srv.client.get(f"/sandboxes/{sid}/ports/8000?z=3")
    assert r.status_code == 200 and r.json()["target"] == "/?z=3", r.text
    # every method goes through
    r = srv.client.delete(f"/sandboxes/{sid}/ports/8000/thing")
    assert r.status_code == 200 and r.json() == {"method": "DELETE", "target": "/thing"}


def test_upstream_keep_alive(srv, sid):
    """The proxy keeps the connection to the sandbox's server for the next
    request to that port (and never for another port or sandbox)."""
    peers = []
    with requests.Session() as s:
        for _ in range(5):
            r = s.get(srv.url + "/headers", headers={"Host": f"8000-{sid}.localhost"}, timeout=30)
            assert r.status_code == 200
            peers.append(r.json()["peer"])
    assert len(set(peers)) < len(peers), peers
    # an idle connection whose server closed it is not used again: after
    # the pool's idle time a request still answers
    time.sleep(2)
    assert host_get(srv, f"8000-{sid}.localhost", "/headers").status_code == 200


def test_path_form_needs_the_org_key(srv, sid):
    r = requests.get(f"{srv.url}/sandboxes/{sid}/ports/8000/headers", timeout=30)
    assert r.status_code == 401, r.text
    r = srv.other.get(f"/sandboxes/{sid}/ports/8000/headers")
    assert r.status_code == 404, r.text
    assert "sandbox not found" in r.json()["message"]


def test_path_form_bad_target(srv, sid):
    for target in (f"/sandboxes/{sid}/ports/0/", f"/sandboxes/{sid}/ports/abc/",
                   f"/sandboxes/{sid}/ports/65536/", "/sandboxes/sbx_nope/ports/8000/"):
        r = srv.client.get(target)
        assert r.status_code == 400, (target, r.text)
        assert "port" in r.json()["message"]


def test_header_pair(srv, sid):
    headers = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "8000"}
    r = requests.get(srv.url + "/headers", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    names = {k.lower() for k, _ in r.json()["headers"]}
    assert "e2b-sandbox-id" not in names and "e2b-sandbox-port" not in names
    # envd's port keeps going to envd (its /health answers 204 for a running sandbox)
    r = requests.get(srv.url + "/health", headers={"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49983"},
                     timeout=30)
    assert r.status_code == 204, r.text
    r = requests.get(srv.url + "/headers", headers={"E2b-Sandbox-Id": "nonsense", "E2b-Sandbox-Port": "8000"},
                     timeout=30)
    assert r.status_code == 400, r.text


# ---- errors ----

def test_closed_port_is_502_that_says_so(srv, sid):
    r = host_get(srv, f"8001-{sid}.localhost", "/")
    assert r.status_code == 502
    assert "nothing listens on port 8001" in r.json()["message"]
    r = srv.client.get(f"/sandboxes/{sid}/ports/8001/")
    assert r.status_code == 502 and "nothing listens on port 8001" in r.json()["message"]


def test_the_hosts_own_ports_are_not_reachable(srv, sid):
    """A server on the host's 127.0.0.1 (the API itself, and another one)
    is not what a sandbox port reaches: the socket is made in the sandbox's
    namespace, whose loopback is its own."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        for port in (listener.getsockname()[1], srv.port):
            r = host_get(srv, f"{port}-{sid}.localhost", "/health")
            assert r.status_code == 502 and f"nothing listens on port {port}" in r.json()["message"], r.text
    finally:
        listener.close()


def test_unknown_sandbox(srv):
    fake = "sbx_" + "a" * 20
    r = host_get(srv, f"8000-{fake}.localhost", "/")
    assert r.status_code == 502 and f"sandbox not found: {fake}" in r.json()["message"], r.text
    r = srv.client.get(f"/sandboxes/{fake}/ports/8000/")
    assert r.status_code == 404 and "sandbox not found" in r.json()["message"], r.text


def test_paused_and_deleted_sandbox(srv):
    c = srv.client
    other = c.create()
    start_servers(c, other)
    # kept-alive connections and the proxy's memory of the check (port_grants.c) are
    # in place: a pause must still be seen by the very next request
    for _ in range(3):
        assert host_get(srv, f"8000-{other}.localhost", "/headers").status_code == 200
    assert c.post(f"/sandboxes/{other}/pause").status_code in (200, 204)
    r = host_get(srv, f"8000-{other}.localhost", "/headers")
    assert r.status_code == 502 and "paused" in r.json()["message"], r.text
    r = c.get(f"/sandboxes/{other}/ports/8000/headers")
    assert r.status_code == 409 and "paused" in r.json()["message"], r.text
    assert c.post(f"/sandboxes/{other}/connect", json={}).status_code in (200, 201)
    assert c.get(f"/sandboxes/{other}/ports/8000/headers").status_code == 200
    for _ in range(3):
        assert host_get(srv, f"8000-{other}.localhost", "/headers").status_code == 200
    assert srv.other.get(f"/sandboxes/{other}/ports/8000/headers").status_code == 404
    assert c.delete(f"/sandboxes/{other}").status_code in (200, 204)
    r = host_get(srv, f"8000-{other}.localhost", "/headers")
    assert r.status_code == 502 and "stopped" in r.json()["message"], r.text


# ---- streaming ----

def test_download_sized_and_chunked(srv, sid):
    for kind in ("bytes", "chunked"):
        n = 3 * 1024 * 1024 + 17
        r = host_get(srv, f"8000-{sid}.localhost", f"/{kind}?n={n}")
        assert r.status_code == 200
        assert r.content == pattern_bytes(n), kind
        if kind == "bytes":
            assert r.headers["Content-Length"] == str(n)


def test_a_chunked_body_cut_short_reaches_the_client_cut(srv, sid):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"GET /chunkcut HTTP/1.1\r\nHost: 8000-{sid}.localhost\r\n\r\n".encode())
    data = b""
    while True:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head, head
    assert b"hello" in body and not body.endswith(b"0\r\n\r\n"), body


def test_head_keeps_the_declared_length(srv, sid):
    r = requests.head(srv.url + "/anything", headers={"Host": f"8000-{sid}.localhost"}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Length"] == "12345" and r.headers["X-Head"] == "yes"
    assert r.content == b""
    # and the kept-alive connection is still good for the next request
    assert host_get(srv, f"8000-{sid}.localhost", "/headers").status_code == 200


def test_expect_100_continue_upload(srv, sid):
    """curl's way for large bodies: the headers, wait for 100 Continue, then the body."""
    body = os.urandom(200_000)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"POST /upload HTTP/1.1\r\nHost: 8000-{sid}.localhost\r\nContent-Length: {len(body)}\r\n"
              "Expect: 100-continue\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue")
    s.sendall(body)
    data = b""
    while b"}" not in data:
        data += s.recv(65536)
    s.close()
    answer = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert answer["length"] == len(body) and answer["sha256"] == hashlib.sha256(body).hexdigest()


def test_content_length_beside_chunked_cannot_smuggle(srv, sid):
    """Content-Length with Transfer-Encoding: chunked: the body is the
    chunked one (RFC 9112), passed on chunked, so the client's length cannot
    make the sandbox's server read a second request out of the body; the
    next request on the kept-alive connection is answered normally."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = b"0123" + smuggled
    s.sendall(f"POST /upload HTTP/1.1\r\nHost: 8000-{sid}.localhost\r\nContent-Length: 4\r\n"
              f"Transfer-Encoding: chunked\r\n\r\n{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    data = b""
    while b"}" not in data:
        data += s.recv(65536)
    answer = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert answer["length"] == len(chunk), answer
    s.sendall(f"GET /headers HTTP/1.1\r\nHost: 8000-{sid}.localhost\r\n\r\n".encode())
    data = b""
    while b"}" not in data or data.count(b"HTTP/1.1 ") < 1:
        data += s.recv(65536)
    s.close()
    assert b"/smuggled" not in data and b'"target": "/headers"' in data, data


def test_a_body_cut_short_is_not_passed_off_as_complete(srv, sid):
    """The upstream says 1000 bytes and sends 10: the client gets the same
    Content-Length and a connection closed after 10, never a complete body."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.sendall(f"GET /short HTTP/1.1\r\nHost: 8000-{sid}.localhost\r\n\r\n".encode())
    data = b""
    while True:
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head, head
    assert body == b"0123456789"


def test_large_streamed_upload_and_download_keep_serve_flat(srv, sid):
    size = (256 if not ASAN else 64) * 1024 * 1024
    # warm up the paths once, then measure
    requests.post(f"{srv.url}/sandboxes/{sid}/ports/8000/upload", data=b"x" * 1024,
                  headers={"Authorization": f"Bearer {srv.client.key}"}, timeout=60)
    before = serve_rss_kb(srv)
    block = pattern_bytes(1 << 20)

    def chunks():
        for _ in range(size // len(block)):
            yield block

    r = requests.post(f"{srv.url}/upload", data=chunks(), timeout=300,
                      headers={"Host": f"8000-{sid}.localhost"})
    assert r.status_code == 200, r.text
    want = hashlib.sha256()
    for _ in range(size // len(block)):
        want.update(block)
    assert r.json()["length"] == size and r.json()["sha256"] == want.hexdigest()
    peak = serve_rss_kb(srv)

    # a known length too
    class Sized:
        def __init__(self):
            self.left = size

        def __len__(self):
            return self.left

        def read(self, n=-1):
            if self.left <= 0:
                return b""
            piece = block[:min(len(block), self.left, n if n > 0 else len(block))]
            self.left -= len(piece)
            return piece

    r = requests.post(f"{srv.url}/upload", data=Sized(), timeout=300,
                      headers={"Host": f"8000-{sid}.localhost", "Content-Length": str(size)})
    assert r.status_code == 200 and r.json()["length"] == size, r.text
    peak = max(peak, serve_rss_kb(srv))

    got = 0
    h = hashlib.sha256()
    with host_get(srv, f"8000-{sid}.localhost", f"/bytes?n={size}", stream=True) as r:
        assert r.status_code == 200
        for piece in r.iter_content(1 << 20):
            got += len(piece)
            h.update(piece)
            if got % (32 << 20) < len(piece):
                peak = max(peak, serve_rss_kb(srv))
    assert got == size and h.hexdigest() == want.hexdigest()
    grown_mb = (peak - before) / 1024
    assert grown_mb < 32, f"serve's RSS grew {grown_mb:.1f} MiB while {size >> 20} MiB went through"


def test_slow_reader_gets_back_pressure(srv, sid):
    """A client that stops reading a big answer: serve holds a window of it,
    not all of it."""
    before = serve_rss_kb(srv)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(f"GET /bytes?n={512 << 20} HTTP/1.1\r\nHost: 8000-{sid}.localhost\r\n\r\n".encode())
    s.recv(4096)
    time.sleep(2)
    grown_mb = (serve_rss_kb(srv) - before) / 1024
    s.close()
    assert grown_mb < 16, f"serve's RSS grew {grown_mb:.1f} MiB for a stalled reader"
    assert host_get(srv, f"8000-{sid}.localhost", "/headers").status_code == 200


# ---- WebSocket ----

def test_websocket_echo_through_host_and_path_forms(srv, sid):
    urls = [
        (f"ws://127.0.0.1:{srv.port}/ws", {"host": f"8765-{sid.replace('_', '-')}.localhost:{srv.port}"}),
        (f"ws://127.0.0.1:{srv.port}/sandboxes/{sid}/ports/8765/ws",
         {"header": [f"Authorization: Bearer {srv.client.key}"]}),
    ]
    for url, opts in urls:
        ws = websocket.create_connection(url, timeout=30, **opts)
        ws.send("hello")
        assert ws.recv() == "hello"
        big = os.urandom(300_000)
        ws.send_binary(big)
        assert ws.recv() == big
        ws.ping(b"p")
        ws.close()


def test_websocket_to_a_closed_port(srv, sid):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(f"ws://127.0.0.1:{srv.port}/ws", host=f"8766-{sid}.localhost", timeout=30)
    assert exc.value.status_code == 502


# ---- the traffic token ----

def test_traffic_token(srv):
    c = srv.client
    r = c.post("/sandboxes", json={"templateID": "base", "network": {"allowPublicTraffic": False}})
    assert r.status_code == 201, r.text
    created = r.json()
    private = created["sandboxID"]
    token = created["trafficAccessToken"]
    assert token and created["network"]["allowPublicTraffic"] is False
    assert "trafficAccessToken" not in created["network"]
    start_servers_with_token(c, private)
    host = f"8000-{private}.localhost"
    r = host_get(srv, host, "/headers")
    assert r.status_code == 403 and "e2b-traffic-access-token" in r.json()["message"], r.text
    r = host_get(srv, host, "/headers", headers={"e2b-traffic-access-token": token[:-1] + "x"})
    assert r.status_code == 403
    r = host_get(srv, host, "/headers", headers={"e2b-traffic-access-token": token})
    assert r.status_code == 200, r.text
    names = {k.lower() for k, _ in r.json()["headers"]}
    assert "e2b-traffic-access-token" not in names
    # the path form asks for it too: the API key is the org's, the token the sandbox's
    assert c.get(f"/sandboxes/{private}/ports/8000/headers").status_code == 403
    r = c.get(f"/sandboxes/{private}/ports/8000/headers", headers={"e2b-traffic-access-token": token})
    assert r.status_code == 200
    # a public sandbox has none
    assert "trafficAccessToken" not in c.get(f"/sandboxes/{c.create()}").json()
    c.delete(f"/sandboxes/{private}")


def start_servers_with_token(client, sid):
    with open(os.path.join(HERE, "port_servers.py")) as f:
        script = f.read()
    assert client.run(sid, "python3", "-c", script, background=True, timeout=0).status_code == 202
    deadline = time.time() + 30 * SCALE
    while time.time() < deadline:
        r = client.sh(sid, "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8000))' "
                           "2>/dev/null && echo up")
        if "up" in r["stdout"]:
            return
        time.sleep(0.1)
    raise AssertionError("the sandbox's servers did not come up")


# ---- what GET says ----

def test_get_reports_network_and_url_pattern(srv, sid):
    got = srv.client.get(f"/sandboxes/{sid}").json()
    assert got["ports"]["url"] == f"http://{{port}}-{sid}.localhost:{srv.port}"
    assert got["ports"]["pathUrl"] == f"http://localhost:{srv.port}/sandboxes/{sid}/ports/{{port}}/"
    assert got["network"]["allowPublicTraffic"] is True
    assert got["allowInternetAccess"] is False
    # the URL works as given
    url = got["ports"]["url"].replace("{port}", "8000")
    host = url.split("//", 1)[1]
    assert host_get(srv, host, "/headers").status_code == 200


def test_e2b_shapes_carry_the_domain(srv, sid):
    assert srv.client.key.startswith("sk-sb-")
    e2b_key = "e2b_" + srv.client.key[len("sk-sb-"):]
    r = requests.get(f"{srv.url}/sandboxes/{sid}", headers={"X-API-Key": e2b_key}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["domain"] == f"localhost:{srv.port}"
    r = requests.post(f"{srv.url}/sandboxes", json={"templateID": "base"}, headers={"X-API-Key": e2b_key},
                      timeout=60)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["domain"] == f"localhost:{srv.port}"
    assert created["trafficAccessToken"] is None
    # getHost(port) in the SDK is f"{port}-{sandboxID}.{domain}": it reaches the proxy
    start_servers(srv.client, created["sandboxID"])
    assert host_get(srv, f"8000-{created['sandboxID']}.{created['domain']}", "/headers").status_code == 200
    srv.client.delete(f"/sandboxes/{created['sandboxID']}")


# ---- load and hostile upstreams ----

def test_200_concurrent_requests(srv, sid):
    host = f"8000-{sid}.localhost"

    def one(i):
        r = requests.get(srv.url + f"/bytes?n={1000 + i}", headers={"Host": host}, timeout=60 * SCALE)
        return r.status_code, r.content == pattern_bytes(1000 + i)

    with concurrent.futures.ThreadPoolExecutor(200) as pool:
        results = list(pool.map(one, range(200)))
    assert results == [(200, True)] * 200


def test_garbage_answer_is_502(srv, sid):
    r = host_get(srv, f"9001-{sid}.localhost", "/")
    assert r.status_code == 502 and "HTTP/1.x" in r.json()["message"], r.text


def test_huge_header_is_502(srv, sid):
    r = host_get(srv, f"9003-{sid}.localhost", "/")
    assert r.status_code == 502 and "over 64 KiB" in r.json()["message"], r.text


def test_silent_upstream_times_out_and_blocks_nothing(srv, sid):
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        started = time.time()
        silent = [pool.submit(host_get, srv, f"9002-{sid}.localhost", "/") for _ in range(10)]
        # meanwhile the API and other ports answer at once
        for _ in range(5):
            t = time.time()
            assert requests.get(srv.url + "/health", timeout=5).status_code == 200
            assert host_get(srv, f"8000-{sid}.localhost", "/headers").status_code == 200
            assert time.time() - t < 1.5 * SCALE
        for f in silent:
            r = f.result()
            assert r.status_code == 504 and f"within {TIMEOUT_S} s" in r.json()["message"], r.text
        assert time.time() - started < (TIMEOUT_S + 5) * SCALE
    assert srv.proc.poll() is None


def test_client_that_leaves_a_silent_upstream_frees_it(srv, sid):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(f"GET / HTTP/1.1\r\nHost: 9002-{sid}.localhost\r\n\r\n".encode())
        s.close()
    time.sleep(0.5)
    assert host_get(srv, f"8000-{sid}.localhost", "/headers").status_code == 200
    assert srv.proc.poll() is None


def test_an_open_websocket_does_not_hold_up_shutdown():
    """A tunnel has no close handshake of serve's own: shutdown ends it at
    once instead of waiting out the grace period for its request."""
    with private_server("ports-stop", pool_size=0) as s:
        sandbox_id = s.client.create()
        start_servers(s.client, sandbox_id)
        ws = websocket.create_connection(f"ws://127.0.0.1:{s.port}/ws", host=f"8765-{sandbox_id}.localhost",
                                         timeout=30)
        ws.send("before")
        assert ws.recv() == "before"
        started = time.time()
        assert s.stop() == 0
        assert time.time() - started < 5 * SCALE
        with pytest.raises(websocket.WebSocketException):
            ws.send("after")
            ws.recv()
