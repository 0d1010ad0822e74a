"""The server foundation through real HTTP: health, authentication, error
shapes, body limits, chunked bodies, keep-alive under concurrency, clients
that vanish mid-request, and keys that survive restarts."""
import concurrent.futures
import http.client
import signal
import socket
import time

import pytest
import requests

from conftest import Client, Server, cli, make_data_dir


def test_health_needs_no_key(server):
    r = requests.get(server.url + "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"]


def test_missing_key_is_401(server):
    r = requests.get(server.url + "/sandboxes")
    assert r.status_code == 401
    assert r.json()["code"] == 401
    assert r.json()["message"].startswith("missing API key: send `Authorization: Bearer <key>`")


@pytest.mark.parametrize("key", ["sk-sb-" + "0" * 40, "nonsense", "sk-sb-", "e2b_" + "f" * 40, ""])
def test_wrong_key_is_401(server, key):
    headers = {"X-API-Key": key} if key else {"Authorization": "Bearer "}
    r = requests.get(server.url + "/sandboxes", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == 401
    assert r.json()["message"] in ("invalid API key", "missing API key after `Bearer `")


def test_bearer_and_x_api_key_both_work(server, org_a):
    assert requests.get(server.url + "/sandboxes", headers={"Authorization": "Bearer " + org_a.key}).status_code == 200
    assert requests.get(server.url + "/sandboxes", headers={"X-API-Key": org_a.key}).status_code == 200


def test_x_api_key_wins_over_bearer(server, org_a):
    r = requests.get(server.url + "/sandboxes",
                     headers={"X-API-Key": "sk-sb-" + "1" * 40, "Authorization": "Bearer " + org_a.key})
    assert r.status_code == 401
    r = requests.get(server.url + "/sandboxes",
                     headers={"X-API-Key": org_a.key, "Authorization": "Bearer sk-sb-" + "1" * 40})
    assert r.status_code == 200


def test_e2b_form_of_the_same_secret_authenticates(server, org_a):
    secret = org_a.key[len("sk-sb-"):]
    r = requests.get(server.url + "/sandboxes", headers={"X-API-Key": "e2b_" + secret})
    assert r.status_code == 200


def test_unknown_route_is_404(org_a):
    r = org_a.get("/no/such/route")
    assert r.status_code == 404
    assert r.json()["code"] == 404


def test_wrong_method_is_405_with_allow(org_a):
    r = org_a.request("PUT", "/sandboxes")
    assert r.status_code == 405
    assert r.json()["code"] == 405
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allow


@pytest.mark.parametrize("body", ['{"templateID": ', "[1,2]", "not json", '{"a":1,"a":2}'])
def test_malformed_json_is_400_naming_the_problem(org_a, body):
    r = org_a.post("/sandboxes", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["code"] == 400
    assert r.json()["message"]


def test_body_over_the_cap_is_413(org_a):
    r = org_a.post("/sandboxes", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["code"] == 413


def test_chunked_request_body(server, org_a):
    def chunks():
        yield b'{"templateID":'
        yield b' "no-such-template"}'
    r = requests.post(server.url + "/sandboxes", data=chunks(),
                      headers={"Authorization": "Bearer " + org_a.key, "Content-Type": "application/json"})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 400
    assert r.json()["message"].startswith("unknown template: no-such-template (available: ")


def test_keep_alive_and_pipelining(server, org_a):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        req = (f"GET /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: {org_a.key}\r\n\r\n").encode()
        s.sendall(req * 3)
        data = b""
        deadline = time.time() + 10
        while data.count(b"HTTP/1.1 200") < 3 and time.time() < deadline:
            data += s.recv(65536)
        assert data.count(b"HTTP/1.1 200") == 3
        assert b"Connection: close" not in data


def test_200_concurrent_keep_alive_clients(server, org_a):
    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        results = []
        for _ in range(5):
            conn.request("GET", "/sandboxes" if i % 2 else "/health", headers={"X-API-Key": org_a.key})
            resp = conn.getresponse()
            results.append((resp.status, resp.read()))
        conn.close()
        return results
    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as ex:
        all_results = list(ex.map(worker, range(200)))
    for results in all_results:
        for status, body in results:
            assert status == 200, body


def test_client_disconnect_mid_request_does_not_disturb_others(server, org_a):
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"POST /sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                  b"X-API-Key: " + org_a.key.encode() + b"\r\n\r\n{\"templ")
        socks.append(s)
    for s in socks:
        s.close()
    for _ in range(20):
        assert org_a.get("/sandboxes").status_code == 200
    assert requests.get(server.url + "/health").status_code == 200


def test_access_log_has_one_json_line_per_request(server, org_a):
    org_a.get("/sandboxes?probe=log")
    time.sleep(0.2)
    lines = [l for l in server.log().splitlines() if '"path"' in l and "/sandboxes" in l]
    assert lines
    import json
    entry = json.loads(lines[-1])
    for field in ("time", "method", "path", "status", "duration_ms", "org"):
        assert field in entry


def test_revoked_key_fails_at_once(server):
    key = server.new_key("org-revoke")
    client = Client(server, key)
    assert client.get("/sandboxes").status_code == 200
    prefix = key[:len("sk-sb-") + 8]
    cli(server.data_dir, "key", "revoke", prefix)
    r = client.get("/sandboxes")
    assert r.status_code == 401
    assert r.json()["message"] == "invalid API key"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_orgs_and_keys_survive_restart(sig):
    data_dir = make_data_dir()
    srv = Server(data_dir, config={"pool_size": 0}).start()
    key = srv.new_key("persist")
    assert Client(srv, key).get("/sandboxes").status_code == 200
    rc = srv.stop(sig)
    if sig == signal.SIGTERM:
        assert rc == 0
    srv.start()
    try:
        assert Client(srv, key).get("/sandboxes").status_code == 200
        assert "persist" in cli(data_dir, "org", "list").stdout
    finally:
        srv.stop()


def test_graceful_shutdown_finishes_in_flight_requests():
    data_dir = make_data_dir()
    srv = Server(data_dir, config={"pool_size": 0}).start()
    key = srv.new_key("shutdown")
    # A request that is still being sent when SIGTERM arrives is finished.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    body = b'{"templateID":"nope"}'
    s.sendall(b"POST /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
              b"\r\n\r\n" + body[:5])
    time.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    s.sendall(body[5:])
    data = s.recv(65536)
    s.close()
    assert b"400" in data.split(b"\r\n")[0], data
    assert srv.proc.wait(timeout=20) == 0
