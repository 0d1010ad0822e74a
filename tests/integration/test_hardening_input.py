"""Client input that must be refused with a 4xx that says why (issue 13,
"Client input"): NUL bytes and invalid UTF-8 in the request target, too many
query parameters, bodies declared past max_body, oversized commands and
environments. Malformed requests go over raw sockets, since HTTP libraries
refuse to send them; every answer must still be a JSON error."""
import json
import socket
import time

import pytest

from conftest import Server, make_data_dir


def raw_request(server, target, method="GET", headers=(), body=b"", key=None, timeout=10):
    """Sends one request with the target bytes as given; returns (status,
    parsed JSON body or None, raw body). Connection: close, so the answer
    ends when the server closes."""
    if isinstance(target, str):
        target = target.encode()
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close"]
    if key:
        lines.append(b"Authorization: Bearer " + key.encode())
    lines += [h.encode() if isinstance(h, str) else h for h in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer, f"no answer to {target!r}: the connection closed without a response"
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = None
    return status, parsed, payload


def assert_error(status, body, code, *words):
    assert status == code, (status, body)
    assert body is not None and body["code"] == code, body
    for w in words:
        assert w in body["message"], body


# ---- 1. NUL bytes in the path or query ----

def test_escaped_nul_in_the_path_does_not_delete_the_sandbox(server, org_a, sandbox):
    status, body, _ = raw_request(server, f"/sandboxes/{sandbox}%00junk", method="DELETE",
                                  key=org_a.key)
    assert_error(status, body, 400, "NUL")
    assert org_a.get(f"/sandboxes/{sandbox}").json()["status"] == "running"


@pytest.mark.parametrize("target", [b"/health%00", b"/health%00junk", b"/health\x00",
                                    b"/health\x00junk", b"/health\x00?x=1"])
def test_nul_in_the_path_is_400(server, target):
    status, body, _ = raw_request(server, target)
    assert_error(status, body, 400, "NUL")


@pytest.mark.parametrize("query", [b"status=running%00", b"status%00=running",
                                   b"status=running\x00junk", b"a=1&status%00x"])
def test_nul_in_the_query_is_400(server, org_a, query):
    status, body, _ = raw_request(server, b"/sandboxes?" + query, key=org_a.key)
    assert_error(status, body, 400, "NUL")


# ---- 2. invalid UTF-8 in the path or query ----

@pytest.mark.parametrize("target", ["/%c0%ae", "/%ed%a0%80", "/%f4%90%80%80", "/%ff",
                                    "/sandboxes?status=%c0%ae", "/sandboxes?%ed%a0%80=1"])
def test_invalid_utf8_in_the_target_is_400(server, org_a, target):
    status, body, _ = raw_request(server, target, key=org_a.key)
    assert_error(status, body, 400, "invalid UTF-8 in the request")


def test_valid_utf8_in_the_path_still_routes(server):
    status, body, _ = raw_request(server, "/h%C3%A9alth")
    assert_error(status, body, 404, "not found: GET /h\u00e9alth")


# ---- 5. many query parameters ----

@pytest.mark.parametrize("count", [500, 2000])
def test_many_query_parameters_get_an_answer(server, org_a, count):
    query = "&".join(f"p{i}=v" for i in range(count))
    status, body, _ = raw_request(server, "/sandboxes?" + query, key=org_a.key)
    assert status in (400, 414), (status, body)
    assert body is not None and body["code"] == status, body
    assert "parameters" in body["message"] or "too long" in body["message"], body


def test_the_query_parameter_limit_is_100(server, org_a):
    status, body, _ = raw_request(server, "/sandboxes?" + "&".join(["status=running"] * 8),
                                  key=org_a.key)
    assert status == 200, body
    status, body, _ = raw_request(server, "/sandboxes?" + "&".join(["status=running"] * 100),
                                  key=org_a.key)
    assert_error(status, body, 400, "invalid status filter")
    status, body, _ = raw_request(server, "/sandboxes?" + "&".join(["status=running"] * 101),
                                  key=org_a.key)
    assert_error(status, body, 400, "too many query parameters (limit 100)")


# ---- 6. Content-Length past max_body ----

def test_declared_body_past_the_cap_is_refused_at_the_headers(server, org_a):
    head = (b"POST /sandboxes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + org_a.key.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(head)
        start = time.monotonic()
        s.settimeout(1.0)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except socket.timeout:
            pass
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert elapsed < 1.0
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["code"] == 413 and "1048576" in body["message"], body


# ---- 3 and 4. sizes of cmd, args and envVars ----

def test_oversized_cmd_is_400_naming_the_limit(org_a, sandbox):
    r = org_a.post(f"/sandboxes/{sandbox}/processes", json={"cmd": "x" * 1_048_400})
    assert r.status_code == 400, r.text
    assert "131072" in r.json()["message"], r.text


def test_args_and_env_past_the_exec_limit_are_400(org_a, sandbox):
    r = org_a.post(f"/sandboxes/{sandbox}/processes",
                   json={"cmd": "true", "args": ["a" * 70_000],
                         "envVars": {"BIG": "b" * 70_000}})
    assert r.status_code == 400, r.text
    assert "cmd, args and envVars" in r.json()["message"] and "131072" in r.json()["message"]


def test_exec_within_the_limits_runs(org_a, sandbox):
    r = org_a.run(sandbox, "/bin/sh", "-c", 'echo ${#BIG}', envVars={"BIG": "b" * 60_000})
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "60000\n"


@pytest.mark.parametrize("name", ["A B", "A\nB", "1ABC", "A-B", "\u00e9T\u00e9", "", "A=B",
                                  "N" * 257])
def test_bad_env_names_are_400(org_a, sandbox, name):
    r = org_a.post("/sandboxes", json={"templateID": "base", "envVars": {name: "x"}})
    assert r.status_code == 400, r.text
    assert "invalid variable name" in r.json()["message"], r.text
    r = org_a.post(f"/sandboxes/{sandbox}/processes", json={"cmd": "true", "envVars": {name: "x"}})
    assert r.status_code == 400, r.text
    assert "invalid variable name" in r.json()["message"], r.text


def test_good_env_names_work(org_a):
    sid = org_a.create(envVars={"_X": "1", "abc_9": "2", "N" * 256: "3"})
    try:
        out = org_a.sh(sid, 'echo "$_X$abc_9"')
        assert out["stdout"] == "12\n"
    finally:
        org_a.delete(f"/sandboxes/{sid}")


def test_sandbox_env_past_the_cap_is_refused_at_create(org_a):
    r = org_a.post("/sandboxes", json={"templateID": "base", "envVars": {"BIG": "x" * 900_000}})
    assert r.status_code == 400, r.text
    assert "32768" in r.json()["message"], r.text


# ---- 7. the access log stays valid JSON ----

def test_access_log_lines_are_json_for_invalid_utf8_paths():
    data_dir = make_data_dir()
    srv = Server(data_dir).start()
    try:
        for target in [b"/%c0%ae", b"/\xff\xfe", b"/%ed%a0%80x", b"/ok\x7f%22%5c"]:
            status, _, _ = raw_request(srv, target)
            assert status in (400, 404)
        time.sleep(0.3)
    finally:
        srv.stop()
    with open(srv.log_path, "rb") as f:
        lines = f.read().splitlines()
    assert lines
    paths = []
    for line in lines:
        entry = json.loads(line.decode("utf-8"))   # strict: every line is UTF-8 JSON
        if "path" in entry:
            paths.append(entry["path"])
    assert "/\ufffd\ufffd" in paths, paths


def test_text_log_lines_cannot_be_forged():
    """In text mode a client's control characters and invalid bytes are
    written as \\xNN: a %0a in the path cannot start a log line of its own."""
    data_dir = make_data_dir()
    srv = Server(data_dir).start(extra_args=["--log-format", "text"])
    try:
        status, _, _ = raw_request(srv, b"/a%0a2026-01-01T00:00:00.000Z info  FORGED%c0")
        assert status in (400, 404)
        time.sleep(0.3)
    finally:
        srv.stop()
    with open(srv.log_path, "rb") as f:
        lines = f.read().decode("utf-8").splitlines()     # strict: valid UTF-8
    assert not [l for l in lines if "FORGED" in l and not l.split(" ", 2)[1] == "GET"], lines
    assert any("/a\\x0a2026-01-01" in l and "FORGED\\xc0" in l for l in lines), lines
