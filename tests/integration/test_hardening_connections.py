"""Connection hardening (issue 13): one client address cannot hold every
connection, and a request that trickles in is closed at its read deadline.

Each test starts its own server. Traffic stays on loopback; 127.0.0.2 is the
"other client" (the source address of its sockets), 127.0.0.1 the flooder."""
import http.client
import json
import os
import resource
import shutil
import socket
import threading
import time

import pytest

from conftest import Client, Server, cli, make_data_dir

OTHER = "127.0.0.2"
FLOOD = 5000


@pytest.fixture
def make_server():
    """Starts servers with the given config; stops them and removes their
    data dirs at the end."""
    started = []

    def make(config):
        data_dir = make_data_dir()
        srv = Server(data_dir, config=dict({"pool_size": 0}, **config)).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


def health(srv, source=OTHER, timeout=5):
    """GET /health on a fresh connection from source; returns seconds taken."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    finally:
        conn.close()
    return time.monotonic() - start


def closed_by_server(sock):
    """True when the peer has closed or reset sock (a peek that never waits)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:    # root (as the suite runs) may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return soft, hard
        except (ValueError, OSError):
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need} and cannot be raised")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return soft, hard


def test_flood_from_one_address_leaves_health_fast_for_another(make_server):
    """5,000 connections from 127.0.0.1, some silent, some trickling a byte now
    and then: 127.0.0.2 keeps getting /health in under 100 ms each, and the
    flooder holds at most max_connections_per_address of them."""
    srv = make_server({})
    old = raise_nofile(FLOOD + 1000)
    test_start = time.monotonic()
    socks = []
    stop = threading.Event()
    try:
        for i in range(FLOOD):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks.append(s)
        assert time.monotonic() - test_start < 20, "opening the flood took too long"

        def trickle():
            # every third socket starts a request and adds a byte every ~2 s
            trickling = socks[::3]
            for s in trickling:
                try:
                    s.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
                except OSError:
                    pass
            while not stop.wait(2):
                for s in trickling:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        time.sleep(1)   # let the server work through the accept queue

        latencies = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(latencies) < 20:
            latencies.append(health(srv))
            time.sleep(0.3)
        print(f"/health from {OTHER} under the flood: "
              f"{', '.join(f'{t * 1000:.1f}' for t in latencies)} ms")
        assert len(latencies) >= 10
        assert max(latencies) < 0.100, latencies

        open_count = sum(1 for s in socks if not closed_by_server(s))
        print(f"flood sockets still open: {open_count} of {FLOOD}")
        assert open_count <= 256
    finally:
        stop.set()
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    assert time.monotonic() - test_start < 60
    # the server is still fine for everyone once the flood is gone
    time.sleep(0.5)
    assert health(srv, source="127.0.0.1") < 1


def trickle_until_closed(sock, limit_s, every_s=0.5):
    """Sends one byte every every_s until the server closes sock; returns
    the seconds that took, or None when still open after limit_s."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            sock.send(b"a")
        except OSError:
            return time.monotonic() - start
        time.sleep(every_s)
        if closed_by_server(sock):
            return time.monotonic() - start
    return None


def test_trickling_client_is_closed_at_the_read_deadline(make_server):
    srv = make_server({"request_read_timeout_s": 2})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        start = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        taken = trickle_until_closed(s, limit_s=8)
        assert taken is not None, "a trickling client was still connected after 8 s"
        taken = time.monotonic() - start
        print(f"trickler dropped after {taken:.2f} s (deadline 2 s)")
        assert 1.8 <= taken <= 3.5


def test_read_deadline_spares_keep_alive_idle_and_counts_from_the_first_byte(make_server):
    """A keep-alive connection idle past the deadline is still usable; its
    next request gets the whole deadline from its first byte, and a request
    that trickles in is dropped that long after its first byte."""
    srv = make_server({"request_read_timeout_s": 2})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 200 " in s.recv(4096)
        time.sleep(3)   # idle: MHD's idle timeout (60 s) governs this
        assert not closed_by_server(s)
        s.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(1.2)  # slow, but within 2 s of its first byte
        s.sendall(b"Host: x\r\n\r\n")
        assert b" 200 " in s.recv(4096)
        time.sleep(2.5)
        start = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\nX-Pad: ")
        taken = trickle_until_closed(s, limit_s=8)
        assert taken is not None, "a trickled second request was not dropped"
        taken = time.monotonic() - start
        print(f"trickled keep-alive request dropped {taken:.2f} s after its first byte")
        assert 1.5 <= taken <= 3.5


def test_read_deadline_spares_a_slow_answer(make_server):
    """A request that has arrived and waits for its (deferred) answer longer
    than the read deadline still gets it."""
    srv = make_server({"request_read_timeout_s": 1})
    cli(srv.data_dir, "template", "build", "base", "--from", "host")
    client = Client(srv, srv.new_key("org-slow"))
    sid = client.create()
    start = time.monotonic()
    r = client.run(sid, "/bin/sleep", "2.5")
    assert r.status_code == 200, r.text
    assert r.json()["exitCode"] == 0
    assert time.monotonic() - start >= 2.5
    client.delete(f"/sandboxes/{sid}")


def test_per_address_limit_refuses_the_next_connection_only_from_that_address(make_server):
    limit = 4
    srv = make_server({"max_connections_per_address": limit})
    held = []
    try:
        for _ in range(limit):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b" 200 " in s.recv(4096)     # accepted, kept alive
            held.append(s)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as extra:
            try:
                extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = extra.recv(4096)
            except OSError:
                answer = b""
            assert answer == b"", f"connection {limit + 1} from one address was served"
        assert health(srv, source=OTHER) < 1     # another address still gets in
        held.pop().close()
        time.sleep(0.3)                          # the server notices the close
        assert health(srv, source="127.0.0.1") < 1
    finally:
        for s in held:
            s.close()


def test_connection_limits_are_checked_at_start():
    data_dir = make_data_dir()
    try:
        with open(os.path.join(data_dir, "config.json"), "w") as f:
            json.dump({"max_connections": 100, "max_connections_per_address": 51}, f)
        srv = Server(data_dir)
        with pytest.raises(AssertionError, match="max_connections_per_address"):
            srv.start()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
