"""envd's process.Process RPCs over raw HTTP (Connect, JSON codec;
spec/e2b-protocol.md §3, §4.1, §5.1-5.4): Start's and Connect's streams of
events byte for byte, the unary calls, the client-streaming StreamInput
(which the JS SDK never calls), and the edges: truncated envelopes, wrong
content types, unknown processes, bad enum values, deadlines. Bad input gets
Connect's error and changes nothing. The SDK itself is driven in
tests/e2b/commands.test.mjs (test_e2b_sdk.py)."""
import base64
import json
import struct
import time

import pytest
import requests

from test_e2b_rest import E2B

STREAM = {"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1"}


def envd(server, sid, method, path, token=None, timeout=30, **kw):
    headers = {"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49983", **kw.pop("headers", {})}
    if token:
        headers["X-Access-Token"] = token
    return requests.request(method, server.url + path, headers=headers, timeout=timeout, **kw)


def envelope(msg, flags=0):
    payload = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
    return struct.pack(">BI", flags, len(payload)) + payload


class Events:
    """A Connect stream read envelope by envelope as it arrives."""

    def __init__(self, resp):
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("application/connect+json"), resp.headers
        self.resp = resp

    def next(self):
        head = self.resp.raw.read(5)
        assert len(head) == 5, f"the stream ended without its end-stream envelope: {head!r}"
        flags, n = struct.unpack(">BI", head)
        body = self.resp.raw.read(n)
        assert len(body) == n
        return flags, json.loads(body)

    def event(self):
        """The next ProcessEvent that is not a keepalive; the end-stream's
        payload (flags 2) as {"__end__": ...}."""
        while True:
            flags, msg = self.next()
            if flags == 2:
                return {"__end__": msg}
            assert flags == 0 and set(msg) == {"event"}, msg
            if "keepalive" not in msg["event"]:
                return msg["event"]

    def rest(self):
        """Every event to the end: (stdout, stderr, pty bytes, end event, end-stream payload)."""
        out = {"stdout": b"", "stderr": b"", "pty": b""}
        end = None
        while True:
            ev = self.event()
            if "__end__" in ev:
                return out["stdout"], out["stderr"], out["pty"], end, ev["__end__"]
            if "start" in ev:
                continue
            if "data" in ev:
                (kind, b64), = ev["data"].items()
                out[kind] += base64.b64decode(b64)
            else:
                assert "end" in ev and end is None, ev
                end = ev["end"]


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


@pytest.fixture
def sbx(server, org_a):
    """An unsecured E2B sandbox (its id is all envd needs), killed after the test."""
    e2b = E2B(server, org_a.key)
    sid = e2b.create(secure=False)["sandboxID"]
    yield sid
    e2b.delete(f"/sandboxes/{sid}")


def start(server, sid, script=None, *, body=None, headers=None, timeout=30):
    msg = body if body is not None else {"process": {"cmd": "/bin/sh", "args": ["-c", script]}, "stdin": False}
    r = envd(server, sid, "POST", "/process.Process/Start", data=envelope(msg),
             headers={**STREAM, **(headers or {})}, stream=True, timeout=timeout)
    return Events(r)


def call(server, sid, method, msg, **kw):
    return envd(server, sid, "POST", f"/process.Process/{method}", json=msg, **kw)


def started(events):
    ev = events.event()
    assert set(ev) == {"start"}, ev
    return ev["start"]["pid"]


def listed(server, sid):
    r = call(server, sid, "List", {})
    assert r.status_code == 200, r.text
    return r.json()["processes"]


def wait_listed(server, sid, pid, present=True):
    for _ in range(200):
        if any(p["pid"] == pid for p in listed(server, sid)) == present:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} {'never listed' if present else 'still listed'}")


def test_start_streams_start_output_and_end(server, sbx):
    ev = start(server, sbx, "echo out; echo err >&2; printf '\\377\\000'; exit 3")
    pid = started(ev)
    assert isinstance(pid, int) and pid > 0
    stdout, stderr, pty, end, trailer = ev.rest()
    assert stdout == b"out\n\xff\x00" and stderr == b"err\n" and pty == b""
    assert end == {"exitCode": 3, "exited": True, "status": "exit status 3", "error": "exit status 3"}
    assert trailer == {}


def test_start_success_has_no_error_and_a_signal_is_exit_code_minus_one(server, sbx):
    *_, end, trailer = start(server, sbx, "true").rest()
    assert end == {"exitCode": 0, "exited": True, "status": "exit status 0"} and trailer == {}
    *_, end, trailer = start(server, sbx, "kill -TERM $$").rest()
    assert end == {"exitCode": -1, "exited": False, "status": "signal: terminated", "error": "signal: terminated"}
    *_, end, _ = start(server, sbx, "kill -KILL $$").rest()
    assert end["status"] == "signal: killed" and end["exitCode"] == -1


def test_start_envs_cwd_and_user(server, sbx):
    body = {"process": {"cmd": "/bin/sh", "args": ["-c", 'echo "$FOO:$(pwd):$(id -u)"'],
                        "envs": {"FOO": "bar"}, "cwd": "/tmp"}, "stdin": False}
    stdout, _, _, end, _ = start(server, sbx, body=body, headers={"Authorization": "Basic cm9vdDo="}).rest()
    assert stdout == b"bar:/tmp:0\n" and end["exitCode"] == 0
    stdout, *_ = start(server, sbx, body=body).rest()      # the default user is not root
    assert stdout.startswith(b"bar:/tmp:") and stdout != b"bar:/tmp:0\n"
    # an unknown user is unauthenticated, in band, and nothing starts
    ev = start(server, sbx, body=body, headers={"Authorization": "Basic " + b64("nobody:")})
    assert ev.event()["__end__"]["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("cwd, user, want", [
    (None, None, "/home/user"),             # envd: no cwd is the user's home
    (None, "root", "/root"),
    ("~", None, "/home/user"),
    ("~/sub", None, "/home/user/sub"),
    ("sub", None, "/home/user/sub"),        # relative: from the home
    ("sub", "root", "/root/sub"),
    ("/tmp", None, "/tmp"),
])
def test_start_cwd_is_resolved_from_the_users_home_as_envd_does(server, sbx, cwd, user, want):
    setup = start(server, sbx, body={"process": {"cmd": "/bin/sh", "args": ["-c", "mkdir -p ~/sub"]}},
                  headers={"Authorization": "Basic " + b64(f"{user}:")} if user else {})
    assert setup.rest()[3]["exitCode"] == 0
    proc = {"cmd": "/bin/sh", "args": ["-c", "pwd"]}
    if cwd is not None:
        proc["cwd"] = cwd
    stdout, _, _, end, _ = start(server, sbx, body={"process": proc},
                                 headers={"Authorization": "Basic " + b64(f"{user}:")} if user else {}).rest()
    assert end["exitCode"] == 0 and stdout == want.encode() + b"\n", (stdout, end)


@pytest.mark.parametrize("body, code, words", [
    ({"process": {"cmd": "true", "cwd": "/no/such/dir"}}, "invalid_argument", "not found"),
    ({"process": {"cmd": "true", "cwd": "~other"}}, "invalid_argument", "own home"),
    ({"process": {"cmd": "true", "cwd": "no-such-dir"}}, "invalid_argument", "not found"),
    ({"process": {"cmd": "/no/such/command"}}, "invalid_argument", "command not found"),
    ({"process": {"cmd": ""}}, "invalid_argument", "cmd"),
    ({"process": {"cmd": "true", "args": [1]}}, "invalid_argument", "args[0]"),
    ({"process": {"cmd": "true", "envs": {"1BAD": "x"}}}, "invalid_argument", "envs"),
    ({"process": {"cmd": "true"}, "stdin": "yes"}, "invalid_argument", "stdin"),
    ({"process": {"cmd": "true"}, "tag": "123"}, "invalid_argument", "tag"),
    ({"process": {"cmd": "true"}, "pty": {"size": {"cols": 0, "rows": 24}}}, "invalid_argument", "pty"),
    ({"cmd": "true"}, "invalid_argument", "ProcessConfig"),
])
def test_start_bad_request_is_an_in_band_error_and_starts_nothing(server, sbx, body, code, words):
    ev = start(server, sbx, body=body)
    end = ev.event()
    assert "__end__" in end, end
    assert end["__end__"]["error"]["code"] == code and words in end["__end__"]["error"]["message"], end
    assert listed(server, sbx) == []


@pytest.mark.parametrize("data", [
    b"\x00\x00\x00",                                # truncated header
    b"\x00\x00\x00\x00\x10{}",                      # truncated payload
    envelope({"process": {"cmd": "true"}}) * 2,      # two messages
    envelope(b"{not json"),
    envelope({"process": {"cmd": "true"}}, flags=1),  # compressed
    b"",
])
def test_start_malformed_envelope_is_invalid_argument(server, sbx, data):
    r = envd(server, sbx, "POST", "/process.Process/Start", data=data, headers=STREAM, stream=True)
    flags, msg = Events(r).next()
    assert flags == 2 and msg["error"]["code"] == "invalid_argument", msg
    assert listed(server, sbx) == []


def test_start_wrong_content_type_is_an_http_error(server, sbx):
    r = envd(server, sbx, "POST", "/process.Process/Start", json={"process": {"cmd": "true"}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    assert "application/connect+json" in r.json()["message"]
    assert listed(server, sbx) == []


def test_start_deadline_kills_the_process(server, sbx):
    t0 = time.monotonic()
    ev = start(server, sbx, "sleep 30", headers={"Connect-Timeout-Ms": "700"})
    pid = started(ev)
    end = ev.event()
    assert end["__end__"]["error"]["code"] == "deadline_exceeded", end
    assert time.monotonic() - t0 < 10
    wait_listed(server, sbx, pid, present=False)
    r = call(server, sbx, "SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"})
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text


def test_a_client_that_leaves_leaves_its_process_running_until_the_deadline(server, sbx):
    ev = start(server, sbx, "sleep 30", headers={"Connect-Timeout-Ms": "2500"})
    pid = started(ev)
    t0 = time.monotonic()
    ev.resp.close()
    time.sleep(0.5)
    assert any(p["pid"] == pid for p in listed(server, sbx)), "the process runs on without its client"
    wait_listed(server, sbx, pid, present=False)
    assert time.monotonic() - t0 < 6
    # without a deadline it runs on until it is killed
    ev = start(server, sbx, "sleep 30")
    pid = started(ev)
    ev.resp.close()
    time.sleep(1)
    assert any(p["pid"] == pid for p in listed(server, sbx))
    assert call(server, sbx, "SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"}).status_code == 200
    wait_listed(server, sbx, pid, present=False)


def test_bad_deadline_and_keepalive_headers(server, sbx):
    for headers in [{"Connect-Timeout-Ms": "soon"}, {"Keepalive-Ping-Interval": "0"}]:
        ev = start(server, sbx, "true", headers=headers)
        assert ev.event()["__end__"]["error"]["code"] == "invalid_argument"
    assert listed(server, sbx) == []


def test_keepalive_fills_silence(server, sbx):
    ev = start(server, sbx, "sleep 2.5", headers={"Keepalive-Ping-Interval": "1"})
    started(ev)
    flags, msg = ev.next()
    assert flags == 0 and msg == {"event": {"keepalive": {}}}, msg
    *_, end, trailer = ev.rest()
    assert end["exitCode"] == 0 and trailer == {}


def test_background_process_connect_stdin_and_close(server, sbx):
    body = {"process": {"cmd": "/bin/sh", "args": ["-c", "echo ready; cat; echo done"]}, "tag": "catter",
            "stdin": True}
    first = start(server, sbx, body=body)
    pid = started(first)
    assert first.event() == {"data": {"stdout": b64("ready\n")}}
    procs = listed(server, sbx)
    assert [(p["pid"], p.get("tag"), p["config"]["cmd"], p["config"]["args"]) for p in procs] == \
        [(pid, "catter", "/bin/sh", ["-c", "echo ready; cat; echo done"])]
    # Connect by tag: the same pid, the output from its start
    r = envd(server, sbx, "POST", "/process.Process/Connect", data=envelope({"process": {"tag": "catter"}}),
             headers=STREAM, stream=True, timeout=30)
    second = Events(r)
    assert started(second) == pid
    assert second.event() == {"data": {"stdout": b64("ready\n")}}
    r = call(server, sbx, "SendInput", {"process": {"pid": pid}, "input": {"stdin": b64("abc\n")}})
    assert r.status_code == 200 and r.json() == {} and r.headers["Content-Type"].startswith("application/json")
    for ev in (first, second):
        assert ev.event() == {"data": {"stdout": b64("abc\n")}}
    r = call(server, sbx, "CloseStdin", {"process": {"pid": str(pid)}})     # a uint32 may be a string
    assert r.status_code == 200 and r.json() == {}, r.text
    for ev in (first, second):
        stdout, _, _, end, trailer = ev.rest()
        assert stdout == b"done\n" and end["exitCode"] == 0 and trailer == {}
    # gone once it ended, as envd drops it from its table
    wait_listed(server, sbx, pid, present=False)
    for method, msg in [("SendInput", {"input": {"stdin": b64("x")}}), ("SendSignal", {"signal": "SIGNAL_SIGTERM"}),
                        ("Update", {"pty": {"size": {"cols": 80, "rows": 24}}}), ("Update", {}),
                        ("CloseStdin", {})]:
        r = call(server, sbx, method, {"process": {"pid": pid}, **msg})
        assert r.status_code == 404 and r.json()["code"] == "not_found", (method, r.text)


def test_closing_a_closed_stdin_is_fine(server, sbx):
    ev = start(server, sbx, body={"process": {"cmd": "sleep", "args": ["5"]}, "stdin": False})
    pid = started(ev)
    r = call(server, sbx, "CloseStdin", {"process": {"pid": pid}})
    assert r.status_code == 200, r.text
    r = call(server, sbx, "SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"})
    assert r.status_code == 200 and r.json() == {}, r.text
    *_, end, _ = ev.rest()
    assert end["status"] == "signal: killed"


def test_sendsignal_values(server, sbx):
    ev = start(server, sbx, body={"process": {"cmd": "sleep", "args": ["30"]}, "stdin": False})
    pid = started(ev)
    for signal, status, code in [("SIGNAL_FOO", 400, "invalid_argument"), (True, 400, "invalid_argument"),
                                 ("SIGNAL_UNSPECIFIED", 501, "unimplemented"), (2, 501, "unimplemented"),
                                 (None, 501, "unimplemented")]:
        msg = {"process": {"pid": pid}}
        if signal is not None:
            msg["signal"] = signal
        r = call(server, sbx, "SendSignal", msg)
        assert r.status_code == status and r.json()["code"] == code, (signal, r.text)
    assert any(p["pid"] == pid for p in listed(server, sbx)), "a refused signal must change nothing"
    r = call(server, sbx, "SendSignal", {"process": {"pid": pid}, "signal": 15})     # the enum's number
    assert r.status_code == 200, r.text
    *_, end, _ = ev.rest()
    assert end["status"] == "signal: terminated"


@pytest.mark.parametrize("method", ["SendInput", "SendSignal", "CloseStdin", "Update"])
def test_unary_unknown_process_and_bad_selector(server, sbx, method):
    extra = {"SendInput": {"input": {"stdin": b64("x")}}, "SendSignal": {"signal": "SIGNAL_SIGKILL"}}.get(method, {})
    r = call(server, sbx, method, {"process": {"pid": 999999}, **extra})
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    assert "999999" in r.json()["message"]
    r = call(server, sbx, method, {"process": {"tag": "nobody-here"}, **extra})
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    for selector in [{}, {"pid": 1, "tag": "x"}, {"pid": -1}, {"pid": "12x"}, {"tag": 5}, "1"]:
        r = call(server, sbx, method, {"process": selector, **extra})
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument", (selector, r.text)
    r = envd(server, sbx, "POST", f"/process.Process/{method}", data=b"[1]",
             headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    r = envd(server, sbx, "POST", f"/process.Process/{method}", data=envelope({}), headers=STREAM)
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text


def test_sendinput_bad_input(server, sbx):
    ev = start(server, sbx, body={"process": {"cmd": "cat"}, "stdin": True})
    pid = started(ev)
    for inp in [{}, {"stdin": "!!!"}, {"stdin": b64("a"), "pty": b64("b")}, {"stdin": 5}]:
        r = call(server, sbx, "SendInput", {"process": {"pid": pid}, "input": inp})
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument", (inp, r.text)
    # empty input is a no-op; URL-safe base64 without padding is protobuf JSON too
    r = call(server, sbx, "SendInput", {"process": {"pid": pid}, "input": {"stdin": ""}})
    assert r.status_code == 200, r.text
    r = call(server, sbx, "SendInput", {"process": {"pid": pid}, "input": {"stdin": "-_8"}})
    assert r.status_code == 200, r.text
    call(server, sbx, "CloseStdin", {"process": {"pid": pid}})
    stdout, *_ = ev.rest()
    assert stdout == b"\xfb\xff"


def test_connect_unknown_process_is_not_found_in_band(server, sbx):
    for selector in [{"pid": 999999}, {"tag": "nope"}]:
        r = envd(server, sbx, "POST", "/process.Process/Connect", data=envelope({"process": selector}),
                 headers=STREAM, stream=True)
        end = Events(r).event()
        assert end["__end__"]["error"]["code"] == "not_found", end
    r = envd(server, sbx, "POST", "/process.Process/Connect", data=envelope({"process": {}}),
             headers=STREAM, stream=True)
    assert Events(r).event()["__end__"]["error"]["code"] == "invalid_argument"


def test_pty_start_input_resize(server, sbx):
    body = {"process": {"cmd": "/bin/sh", "args": ["-c", "stty size; read x; stty size; echo got:$x"],
                        "envs": {"TERM": "xterm"}}, "pty": {"size": {"cols": 80, "rows": 24}}}
    ev = start(server, sbx, body=body)
    pid = started(ev)
    seen = b""
    while b"24 80" not in seen:
        e = ev.event()
        assert set(e) == {"data"} and set(e["data"]) == {"pty"}, e
        seen += base64.b64decode(e["data"]["pty"])
    r = call(server, sbx, "Update", {"process": {"pid": pid}})      # no pty: nothing to change
    assert r.status_code == 200 and r.json() == {}, r.text
    r = call(server, sbx, "Update", {"process": {"pid": pid}, "pty": {"size": {"cols": 100, "rows": 30}}})
    assert r.status_code == 200 and r.json() == {}, r.text
    for bad in [{"size": {"cols": 0, "rows": 5}}, {"size": {"cols": 5}}, {"size": {"cols": 5000, "rows": 5}}, 7]:
        r = call(server, sbx, "Update", {"process": {"pid": pid}, "pty": bad})
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument", (bad, r.text)
    # a second client attached to the terminal gets pty events too, from its start
    r = envd(server, sbx, "POST", "/process.Process/Connect", data=envelope({"process": {"pid": pid}}),
             headers=STREAM, stream=True)
    other = Events(r)
    assert started(other) == pid
    replay = other.event()
    assert set(replay["data"]) == {"pty"} and b"24 80" in base64.b64decode(replay["data"]["pty"])
    r = call(server, sbx, "SendInput", {"process": {"pid": pid}, "input": {"pty": b64("hello\n")}})
    assert r.status_code == 200, r.text
    _, _, pty, end, _ = ev.rest()
    assert b"30 100" in pty and b"got:hello" in pty and end["exitCode"] == 0, pty
    stdout, _, pty2, end2, _ = other.rest()
    assert stdout == b"" and b"got:hello" in pty2 and end2 == end


def test_update_of_a_process_without_a_terminal_is_refused(server, sbx):
    ev = start(server, sbx, body={"process": {"cmd": "sleep", "args": ["5"]}, "stdin": False})
    pid = started(ev)
    r = call(server, sbx, "Update", {"process": {"pid": pid}, "pty": {"size": {"cols": 10, "rows": 10}}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument" and "terminal" in r.json()["message"]
    call(server, sbx, "SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"})
    ev.rest()


# ---- StreamInput: client streaming ----

def stream_input(server, sid, body, headers=STREAM):
    r = envd(server, sid, "POST", "/process.Process/StreamInput", data=body, headers=headers, stream=True)
    return r


def stream_input_result(r):
    """(messages, end-stream payload) of a StreamInput answer."""
    ev = Events(r)
    msgs = []
    while True:
        flags, msg = ev.next()
        if flags == 2:
            return msgs, msg
        msgs.append(msg)


def test_stream_input_writes_in_order(server, sbx):
    ev = start(server, sbx, body={"process": {"cmd": "cat"}, "stdin": True})
    pid = started(ev)

    def body():     # a chunked body, one envelope per chunk
        yield envelope({"start": {"process": {"pid": pid}}})
        for i in range(50):
            yield envelope({"data": {"input": {"stdin": b64(f"line {i}\n")}}})
            if i == 10:
                yield envelope({"keepalive": {}})
        yield envelope({"data": {"input": {"stdin": b64(b"x" * 300000)}}})
    msgs, trailer = stream_input_result(stream_input(server, sbx, body()))
    assert msgs == [{}] and trailer == {}
    call(server, sbx, "CloseStdin", {"process": {"pid": pid}})
    stdout, *_ = ev.rest()
    assert stdout == "".join(f"line {i}\n" for i in range(50)).encode() + b"x" * 300000


@pytest.mark.parametrize("make, code", [
    (lambda pid: envelope({"data": {"input": {"stdin": b64("x")}}}), "invalid_argument"),       # no start
    (lambda pid: envelope({"start": {"process": {"pid": 999999}}}), "not_found"),
    (lambda pid: envelope({"start": {"process": {"pid": pid}}}) + b"\x00\x00\x00\x01", "invalid_argument"),
    (lambda pid: envelope({"start": {"process": {"pid": pid}}}) * 2, "invalid_argument"),
    (lambda pid: envelope({"start": {"process": {"pid": pid}}}) + envelope({"bogus": {}}), "invalid_argument"),
    (lambda pid: envelope({"start": {"process": {"pid": pid}}})
     + envelope({"data": {"input": {"stdin": "%%%"}}}), "invalid_argument"),
    (lambda pid: envelope(b"nope"), "invalid_argument"),
    (lambda pid: b"", "invalid_argument"),
])
def test_stream_input_errors_write_nothing_more(server, sbx, make, code):
    ev = start(server, sbx, body={"process": {"cmd": "cat"}, "stdin": True})
    pid = started(ev)
    msgs, trailer = stream_input_result(stream_input(server, sbx, make(pid)))
    assert msgs == [] and trailer["error"]["code"] == code, trailer
    r = call(server, sbx, "SendInput", {"process": {"pid": pid}, "input": {"stdin": b64("after\n")}})
    assert r.status_code == 200
    call(server, sbx, "CloseStdin", {"process": {"pid": pid}})
    stdout, *_ = ev.rest()
    assert stdout == b"after\n"


def test_stream_input_wrong_content_type_and_finished_process(server, sbx):
    r = stream_input(server, sbx, b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text
    ev = start(server, sbx, "true")
    pid = started(ev)
    ev.rest()
    wait_listed(server, sbx, pid, present=False)
    msgs, trailer = stream_input_result(stream_input(server, sbx, envelope({"start": {"process": {"pid": pid}}})))
    assert trailer["error"]["code"] == "not_found", trailer


def test_secured_sandbox_needs_its_token_on_every_process_method(server, org_a):
    e2b = E2B(server, org_a.key)
    made = e2b.create()
    sid, token = made["sandboxID"], made["envdAccessToken"]
    try:
        for method in ["Start", "Connect", "StreamInput"]:
            r = envd(server, sid, "POST", f"/process.Process/{method}", data=envelope({"process": {"cmd": "true"}}),
                     headers=STREAM, stream=True)
            assert Events(r).event()["__end__"]["error"]["code"] == "unauthenticated"
        for method in ["SendInput", "SendSignal", "CloseStdin", "Update"]:
            r = call(server, sid, method, {"process": {"pid": 1}})
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
        r = envd(server, sid, "POST", "/process.Process/Start", token=token, headers=STREAM, stream=True,
                 data=envelope({"process": {"cmd": "echo", "args": ["ok"]}}))
        ev = Events(r)
        started(ev)
        stdout, _, _, end, _ = ev.rest()
        assert stdout == b"ok\n" and end["exitCode"] == 0
    finally:
        e2b.delete(f"/sandboxes/{sid}")
