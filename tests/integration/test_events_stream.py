"""GET /events/stream: the org's lifecycle events as Server-Sent Events
while they happen, the type filter, Last-Event-ID resume from the store
(events missed while disconnected arrive once, in order), org isolation and
bad input."""
import json

import pytest
import requests

from conftest import Client, private_server


class EventStream:
    """An open GET /events/stream, read as SSE events (id, event, data)."""

    def __init__(self, client, query="", last_event_id=None):
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.r = client.session.get(client.server.url + "/events/stream" + query, headers=headers,
                                    stream=True, timeout=(5, 10))
        assert self.r.status_code == 200, self.r.text
        assert self.r.headers["Content-Type"].startswith("text/event-stream")
        self.lines = self.r.iter_lines(decode_unicode=True)

    def next_event(self):
        fields, data = {}, []
        for line in self.lines:
            if line == "":
                if data or fields:
                    fields["data"] = json.loads("\n".join(data))
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        raise AssertionError("stream ended")

    def take(self, n):
        return [self.next_event() for _ in range(n)]

    def close(self):
        self.r.close()


@pytest.fixture(scope="module")
def srv():
    with private_server("stream-org", pool_size=1) as s:
        yield s


def test_live_events_match_the_events_api(srv):
    c = srv.client
    es = EventStream(c)
    sid = c.create()
    assert c.post(f"/sandboxes/{sid}/pause").status_code == 204
    assert c.delete(f"/sandboxes/{sid}").status_code == 204
    got = es.take(3)
    es.close()
    assert [e["event"] for e in got] == ["sandbox.lifecycle.created", "sandbox.lifecycle.paused",
                                        "sandbox.lifecycle.killed"]
    stored = list(reversed(c.get(f"/events/sandboxes/{sid}").json()))
    assert [e["data"] for e in got] == stored
    assert [e["id"] for e in got] == [e["id"] for e in stored]


def test_type_filter(srv):
    c = srv.client
    es = EventStream(c, "?type=sandbox.lifecycle.killed")
    a, b = c.create(), c.create()
    c.delete(f"/sandboxes/{a}")
    c.delete(f"/sandboxes/{b}")
    got = es.take(2)
    es.close()
    assert [(e["event"], e["data"]["sandboxID"]) for e in got] == [("sandbox.lifecycle.killed", a),
                                                                   ("sandbox.lifecycle.killed", b)]


def test_last_event_id_resume_misses_nothing(srv):
    c = srv.client
    es = EventStream(c)
    sid = c.create()
    first = es.next_event()
    es.close()
    for t in (100, 200, 300):         # happen while nobody listens
        assert c.post(f"/sandboxes/{sid}/timeout", json={"timeout": t}).status_code == 204
    es = EventStream(c, last_event_id=first["id"])
    c.delete(f"/sandboxes/{sid}")     # and one live after the resume
    got = es.take(4)
    es.close()
    assert [e["event"] for e in got] == ["sandbox.lifecycle.updated"] * 3 + ["sandbox.lifecycle.killed"]
    ids = [e["id"] for e in reversed(c.get(f"/events/sandboxes/{sid}").json())]
    assert [first["id"]] + [e["id"] for e in got] == ids


def test_org_isolation(srv):
    other = Client(srv, srv.new_key("stream-other"))
    theirs = EventStream(other)
    sid = srv.client.create()
    srv.client.delete(f"/sandboxes/{sid}")
    own = other.create()                # the first thing their stream gets is their own
    got = theirs.next_event()
    theirs.close()
    assert got["data"]["sandboxID"] == own
    other.delete(f"/sandboxes/{own}")
    # another org's event id is no resume point
    mine = srv.client.get("/events/sandboxes?limit=1").json()[0]["id"]
    r = other.session.get(srv.url + "/events/stream", headers={"Last-Event-ID": mine}, timeout=10)
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["message"]


@pytest.mark.parametrize("query,headers,text", [
    ("?type=sandbox.lifecycle.exploded", {}, "unknown event type"),
    ("?limit=5", {}, "limit"),
    ("", {"Last-Event-ID": "nonsense"}, "Last-Event-ID"),
    ("", {"Last-Event-ID": "evt_aaaaaaaaaaaaaaaaaaaa"}, "Last-Event-ID"),
])
def test_bad_input(srv, query, headers, text):
    r = srv.client.session.get(srv.url + "/events/stream" + query, headers=headers, timeout=10)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400 and text in r.json()["message"]


def test_needs_a_key(srv):
    assert requests.get(srv.url + "/events/stream", timeout=10).status_code == 401


def test_shutdown_ends_open_streams():
    with private_server("stream-stop", pool_size=0) as s:
        streams = [EventStream(s.client) for _ in range(3)]
        assert s.stop() == 0            # a graceful stop does not wait for them
        for es in streams:
            with pytest.raises(AssertionError, match="stream ended"):
                es.next_event()
        s.start()


def test_slow_reader_gets_everything_later(srv):
    """A client that reads nothing while 1,500 events happen still gets
    every one, in order, once it reads; the API answers meanwhile. (On this
    VM the socket buffers hold more than 2.5 MB, far more than 1,500 events, so the
    stream's own 256 KiB window is not reached here.)"""
    import http.client
    import socket
    import time
    c = srv.client
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.sock = sock
    conn.request("GET", "/events/stream", headers={"Authorization": f"Bearer {c.key}"})
    resp = conn.getresponse()
    assert resp.status == 200
    sid = c.create()
    slowest = 0.0
    for i in range(1499):
        t = time.perf_counter()
        assert c.post(f"/sandboxes/{sid}/timeout", json={"timeout": 100 + i}).status_code == 204
        slowest = max(slowest, time.perf_counter() - t)
    assert slowest < 2.0
    ids = []
    while len(ids) < 1500:
        line = resp.readline().decode()
        assert line, "stream ended"
        if line.startswith("id: "):
            ids.append(line[4:].strip())
    conn.close()
    stored = [e["id"] for e in reversed(c.get(f"/events/sandboxes/{sid}?limit=1000").json())]
    assert ids[-1000:] == stored and len(set(ids)) == 1500
    c.delete(f"/sandboxes/{sid}")
