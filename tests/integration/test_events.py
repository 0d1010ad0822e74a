"""The Events API: GET /events/sandboxes (org-wide, newest first, cursor
paging, type/since/limit filters) and GET /events/sandboxes/:id (also after
the sandbox was killed), the event object's fields and aliases, bad input
and org isolation."""
import datetime
import time

import pytest

from conftest import private_server

KNOWN = {"sandbox.lifecycle.created", "sandbox.lifecycle.updated", "sandbox.lifecycle.paused",
         "sandbox.lifecycle.resumed", "sandbox.lifecycle.killed"}


def assert_error(r, status, text):
    assert r.status_code == status, r.text
    assert r.json()["code"] == status and text in r.json()["message"], r.json()


@pytest.fixture(scope="module")
def history():
    """A server of its own with a known history: sandbox A created, updated,
    paused, resumed, killed; sandbox B created; one event of another org."""
    with private_server("events-org", pool_size=1) as srv:
        c = srv.client
        a = c.create()
        assert c.post(f"/sandboxes/{a}/timeout", json={"timeout": 120}).status_code == 204
        assert c.post(f"/sandboxes/{a}/pause").status_code == 204
        assert c.post(f"/sandboxes/{a}/connect", json={}).status_code in (200, 201, 204)
        assert c.delete(f"/sandboxes/{a}").status_code == 204
        b = c.create()
        from conftest import Client
        other = Client(srv, srv.new_key("events-other"))
        o = other.create()
        srv.ids = {"a": a, "b": b, "other": o}
        srv.other = other
        yield srv
        other.delete(f"/sandboxes/{o}")


def test_org_list_newest_first_with_all_fields(history):
    c, ids = history.client, history.ids
    events = c.get("/events/sandboxes").json()
    assert [(e["sandboxID"], e["type"]) for e in events] == [
        (ids["b"], "sandbox.lifecycle.created"),
        (ids["a"], "sandbox.lifecycle.killed"),
        (ids["a"], "sandbox.lifecycle.resumed"),
        (ids["a"], "sandbox.lifecycle.paused"),
        (ids["a"], "sandbox.lifecycle.updated"),
        (ids["a"], "sandbox.lifecycle.created"),
    ]
    for e in events:
        assert e["id"].startswith("evt_") and e["resourceType"] == "sandbox"
        assert e["sandboxId"] == e["sandboxID"] == e["resourceID"]
        assert e["sandboxTemplateId"] == "base"
        assert e["timestamp"] == e["createdAt"]
        datetime.datetime.strptime(e["createdAt"], "%Y-%m-%dT%H:%M:%SZ")
        assert isinstance(e["data"], dict)
    assert events[1]["data"] == {"reason": "deleted"}
    assert len({e["id"] for e in events}) == len(events)
    stamps = [e["createdAt"] for e in events]
    assert stamps == sorted(stamps, reverse=True)


def test_one_sandbox_also_after_kill(history):
    c, ids = history.client, history.ids
    assert c.get(f"/sandboxes/{ids['a']}").json()["status"] == "stopped"
    events = c.get(f"/events/sandboxes/{ids['a']}").json()
    assert [e["type"] for e in events] == ["sandbox.lifecycle.killed", "sandbox.lifecycle.resumed",
                                          "sandbox.lifecycle.paused", "sandbox.lifecycle.updated",
                                          "sandbox.lifecycle.created"]
    assert all(e["sandboxID"] == ids["a"] for e in events)
    assert [e["sandboxID"] for e in c.get(f"/events/sandboxes/{ids['b']}").json()] == [ids["b"]]


def test_cursor_paging_walks_everything_once(history):
    c = history.client
    full = c.get("/events/sandboxes").json()
    seen, cursor = [], None
    while True:
        q = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = c.get(f"/events/sandboxes?{q}").json()
        assert len(page) <= 2
        if not page:
            break
        seen += page
        cursor = page[-1]["id"]
    assert seen == full
    a = history.ids["a"]
    per = c.get(f"/events/sandboxes/{a}?limit=3").json()
    rest = c.get(f"/events/sandboxes/{a}?cursor={per[-1]['id']}").json()
    assert per + rest == c.get(f"/events/sandboxes/{a}").json()


def test_type_filter(history):
    c = history.client
    only = c.get("/events/sandboxes?type=sandbox.lifecycle.created").json()
    assert {e["type"] for e in only} == {"sandbox.lifecycle.created"} and len(only) == 2
    two = c.get("/events/sandboxes?type=sandbox.lifecycle.paused,sandbox.lifecycle.killed").json()
    assert [e["type"] for e in two] == ["sandbox.lifecycle.killed", "sandbox.lifecycle.paused"]
    rep = c.get("/events/sandboxes?type=sandbox.lifecycle.paused&type=sandbox.lifecycle.killed").json()
    assert rep == two
    assert c.get("/events/sandboxes?type=sandbox.lifecycle.snapshotted").json() == []
    many = "&".join(["type=sandbox.lifecycle.paused,sandbox.lifecycle.killed"] * 60)
    assert c.get(f"/events/sandboxes?{many}").json() == two      # repeats are one filter


def test_since_filter(history):
    c = history.client
    full = c.get("/events/sandboxes").json()
    assert c.get("/events/sandboxes?since=2000-01-01T00:00:00Z").json() == full
    assert c.get("/events/sandboxes?since=2999-01-01T00:00:00Z").json() == []
    oldest = full[-1]["createdAt"]
    assert c.get(f"/events/sandboxes?since={oldest}").json() == full
    later = datetime.datetime.strptime(full[0]["createdAt"], "%Y-%m-%dT%H:%M:%SZ") + datetime.timedelta(seconds=1)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%S") + "%2B00:00"
    assert c.get(f"/events/sandboxes?since={stamp}").json() == []


def test_limit(history):
    c = history.client
    assert len(c.get("/events/sandboxes?limit=1").json()) == 1
    assert len(c.get("/events/sandboxes?limit=1000").json()) == 6


@pytest.mark.parametrize("query,text", [
    ("limit=0", "limit must be"), ("limit=1001", "limit must be"), ("limit=abc", "limit must be"),
    ("limit=", "limit must be"), ("limit=-5", "limit must be"),
    ("type=sandbox.lifecycle.exploded", "unknown event type"), ("type=", "type must name"),
    ("type=,", "type must name"),
    ("since=yesterday", "since must be"), ("since=2026-13-01T00:00:00Z", "since must be"),
    ("since=2026-02-30T00:00:00Z", "since must be"), ("since=2026-01-01", "since must be"),
    ("cursor=abc", "invalid cursor"), ("cursor=evt_aaaaaaaaaaaaaaaaaaaa", "invalid cursor"),
    ("colour=red", "colour"),
])
def test_bad_query(history, query, text):
    assert_error(history.client.get(f"/events/sandboxes?{query}"), 400, text)
    a = history.ids["a"]
    assert_error(history.client.get(f"/events/sandboxes/{a}?{query}"), 400, text)


def test_org_isolation(history):
    c, other, ids = history.client, history.other, history.ids
    mine = c.get("/events/sandboxes").json()
    theirs = other.get("/events/sandboxes").json()
    assert [e["sandboxID"] for e in theirs] == [ids["other"]]
    assert ids["other"] not in {e["sandboxID"] for e in mine}
    assert_error(other.get(f"/events/sandboxes/{ids['a']}"), 404, "sandbox not found")
    assert_error(c.get(f"/events/sandboxes/{ids['other']}"), 404, "sandbox not found")
    # another org's event id is no cursor here
    assert_error(c.get(f"/events/sandboxes?cursor={theirs[0]['id']}"), 400, "invalid cursor")


def test_bad_sandbox_id(history):
    assert_error(history.client.get("/events/sandboxes/nope"), 400, "invalid sandbox id")
    assert_error(history.client.get("/events/sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa"), 404, "sandbox not found")


def test_timeout_kill_reason(org_a):
    """A sandbox whose TTL runs out gets a killed event with reason timeout."""
    sid = org_a.create(timeout=1)
    deadline = time.time() + 15
    while time.time() < deadline:
        events = org_a.get(f"/events/sandboxes/{sid}?type=sandbox.lifecycle.killed").json()
        if events:
            break
        time.sleep(0.2)
    assert events and events[0]["data"] == {"reason": "timeout"}, events
