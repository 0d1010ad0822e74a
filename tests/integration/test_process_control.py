"""Background processes and the routes that act on them (issue 8): 202
starts, list and get (by processID or tag), wait, stdin (text and base64)
and its close, signals by name and number, DELETE killing the whole tree,
PTYs (tty, stty size after resize, Ctrl-C), timeouts, a kill -9 of serve,
and bad input, paused sandboxes and org isolation on every route."""
import base64
import signal
import time

import pytest
import requests

from conftest import private_server
from streams import SLOW, collect, sse_events, start_background, stream_bytes


def wait_result(client, sandbox, pid):
    r = client.get(f"/sandboxes/{sandbox}/processes/{pid}/output?wait=true")
    assert r.status_code == 200, r.text
    return r.json()


def output_of(client, sandbox, pid, query=""):
    r = client.get(f"/sandboxes/{sandbox}/processes/{pid}/output{query}", stream=True)
    assert r.status_code == 200, r.text
    return collect(sse_events(r))


def read_until(client, sandbox, pid, marker):
    """Follows a running process's output until marker has appeared."""
    r = client.get(f"/sandboxes/{sandbox}/processes/{pid}/output", stream=True, timeout=30)
    got = b""
    try:
        for ev in sse_events(r):
            assert ev.event != "end", f"ended before {marker!r}: {got!r}"
            if ev.event == "stdout":
                got += ev.bytes()
                if marker in got:
                    return got
    finally:
        r.close()


def test_background_list_and_get(org_a, sandbox):
    r = org_a.post(f"/sandboxes/{sandbox}/processes",
                   json={"cmd": "sleep", "args": ["30"], "background": True, "tag": "sleeper",
                         "cwd": "/tmp", "envVars": {"A": "1"}})
    assert r.status_code == 202
    body = r.json()
    assert set(body) == {"processID", "pid"} and body["processID"] == str(body["pid"])
    listed = org_a.get(f"/sandboxes/{sandbox}/processes").json()
    mine = [p for p in listed if p["processID"] == body["processID"]]
    assert len(mine) == 1
    p = mine[0]
    assert p["tag"] == "sleeper" and p["cmd"] == "sleep" and p["args"] == ["30"]
    assert p["cwd"] == "/tmp" and p["user"] == "user" and p["pty"] is None
    assert p["state"] == "running" and p["exitCode"] is None and p["endedAt"] is None
    assert p["startedAt"].endswith("Z")
    by_tag = org_a.get(f"/sandboxes/{sandbox}/processes/sleeper").json()
    by_id = org_a.get(f"/sandboxes/{sandbox}/processes/{body['processID']}").json()
    assert by_tag == by_id == p
    assert org_a.delete(f"/sandboxes/{sandbox}/processes/sleeper").status_code == 204
    result = wait_result(org_a, sandbox, "sleeper")
    assert result["signal"] == signal.SIGKILL and result["exitCode"] == -1
    after = org_a.get(f"/sandboxes/{sandbox}/processes/sleeper").json()
    assert after["state"] == "exited" and after["endedAt"].endswith("Z")
    # a synchronous exec is listed too, once it ran
    ran = org_a.run(sandbox, "true").json()
    assert any(p["processID"] == ran["processID"] and p["state"] == "exited"
               for p in org_a.get(f"/sandboxes/{sandbox}/processes").json())


def test_stdin_round_trip_and_close(org_a, sandbox):
    pid = start_background(org_a, sandbox, "cat", stdin=True)
    assert org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin", json={"data": "hello\n"}).status_code == 204
    raw = bytes(range(256))
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin",
                   json={"dataB64": base64.b64encode(raw).decode()})
    assert r.status_code == 204
    big = b"0123456789abcdef" * (600 * 1024 // 16)      # several shim frames in one write
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin",
                   json={"dataB64": base64.b64encode(big).decode()})
    assert r.status_code == 204
    assert org_a.get(f"/sandboxes/{sandbox}/processes/{pid}").json()["state"] == "running"
    assert org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin/close").status_code == 204
    assert wait_result(org_a, sandbox, pid)["exitCode"] == 0          # cat ended on EOF
    assert stream_bytes(output_of(org_a, sandbox, pid)) == b"hello\n" + raw + big
    # the process is finished: stdin is 409
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin", json={"data": "late"})
    assert r.status_code == 409, r.text


def test_stdin_closed_and_never_open_are_409(org_a, sandbox):
    pid = start_background(org_a, sandbox, "sleep", "5", stdin=True)
    assert org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin/close").status_code == 204
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/stdin", json={"data": "x"})
    assert r.status_code == 409 and "closed" in r.json()["message"]
    pid2 = start_background(org_a, sandbox, "sleep", "5")
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid2}/stdin", json={"data": "x"})
    assert r.status_code == 409
    for p in (pid, pid2):
        assert org_a.delete(f"/sandboxes/{sandbox}/processes/{p}").status_code == 204


def test_sigterm_to_a_trapping_shell_and_signal_numbers(org_a, sandbox):
    script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done"
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", script, tag="trapper")
    read_until(org_a, sandbox, pid, b"ready")
    assert org_a.post(f"/sandboxes/{sandbox}/processes/trapper/signal",
                      json={"signal": "SIGTERM"}).status_code == 204
    result = wait_result(org_a, sandbox, pid)
    assert result["exitCode"] == 3 and result["signal"] is None
    assert b"got-term" in stream_bytes(output_of(org_a, sandbox, pid))
    # a number, and a name without SIG
    pid = start_background(org_a, sandbox, "sleep", "30")
    assert org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/signal", json={"signal": 2}).status_code == 204
    assert wait_result(org_a, sandbox, pid)["signal"] == signal.SIGINT
    pid = start_background(org_a, sandbox, "sleep", "30")
    assert org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/signal", json={"signal": "hup"}).status_code == 204
    assert wait_result(org_a, sandbox, pid)["signal"] == signal.SIGHUP
    # signalling a finished process is 409
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/signal", json={"signal": "SIGTERM"})
    assert r.status_code == 409


def sandbox_comms(client, sandbox):
    out = client.sh(sandbox, "for p in /proc/[0-9]*; do cat $p/comm 2>/dev/null; done")["stdout"]
    return out.split()


def test_delete_kills_the_whole_tree(org_a, sandbox):
    script = "sleep 1001 & setsid sleep 1002 & (sleep 1003 &); echo started; wait"
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", script, timeout=0)
    deadline = time.time() + 10
    while sandbox_comms(org_a, sandbox).count("sleep") < 3:
        assert time.time() < deadline, sandbox_comms(org_a, sandbox)
        time.sleep(0.05)
    assert org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}").status_code == 204
    assert wait_result(org_a, sandbox, pid)["signal"] == signal.SIGKILL
    deadline = time.time() + 10
    while "sleep" in sandbox_comms(org_a, sandbox):
        assert time.time() < deadline, "the process's children outlived DELETE"
        time.sleep(0.05)
    assert org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}").status_code == 409


def test_background_timeout_and_no_limit(org_a, sandbox):
    pid = start_background(org_a, sandbox, "sleep", "30", timeout=1)
    result = wait_result(org_a, sandbox, pid)
    assert result["timedOut"] is True and result["signal"] == signal.SIGKILL
    pid = start_background(org_a, sandbox, "sleep", "30", timeout=0)
    time.sleep(1.2)
    assert org_a.get(f"/sandboxes/{sandbox}/processes/{pid}").json()["state"] == "running"
    org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}")


def test_pty_tty_size_resize_and_ctrl_c(org_a, sandbox):
    script = "tty; stty size; read line; stty size; echo TERM=$TERM; sleep 30; echo after"
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", script, pty={"cols": 100, "rows": 30}, tag="term")
    view = org_a.get(f"/sandboxes/{sandbox}/processes/term").json()
    assert view["pty"] == {"rows": 30, "cols": 100}
    read_until(org_a, sandbox, pid, b"30 100")
    assert org_a.post(f"/sandboxes/{sandbox}/processes/term/resize", json={"cols": 132, "rows": 50}).status_code == 204
    assert org_a.get(f"/sandboxes/{sandbox}/processes/term").json()["pty"] == {"rows": 50, "cols": 132}
    assert org_a.post(f"/sandboxes/{sandbox}/processes/term/stdin", json={"data": "go\n"}).status_code == 204
    read_until(org_a, sandbox, pid, b"TERM=")
    assert org_a.post(f"/sandboxes/{sandbox}/processes/term/stdin", json={"data": "\x03"}).status_code == 204
    result = wait_result(org_a, sandbox, pid)
    assert result["signal"] == signal.SIGINT            # Ctrl-C reached the foreground group
    text = stream_bytes(output_of(org_a, sandbox, pid)).decode()
    lines = text.replace("\r\n", "\n").split("\n")
    assert lines[0].startswith("/dev/pts/") and lines[1] == "30 100"
    assert lines.index("50 132") > lines.index("go")     # the terminal echoed the input, then the new size and "TERM=xterm-256color" in lines and "after" not in text
    assert [e.event for e in output_of(org_a, sandbox, pid)].count("stderr") == 0   # one stream


def test_resize_of_pipes_is_400_and_pty_term_can_be_overridden(org_a, sandbox):
    pid = start_background(org_a, sandbox, "sleep", "10")
    r = org_a.post(f"/sandboxes/{sandbox}/processes/{pid}/resize", json={"cols": 80, "rows": 24})
    assert r.status_code == 400 and "terminal" in r.json()["message"]
    org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}")
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", "echo $TERM", pty={"cols": 80, "rows": 24},
                           envVars={"TERM": "dumb"})
    wait_result(org_a, sandbox, pid)
    assert stream_bytes(output_of(org_a, sandbox, pid)) == b"dumb\r\n"


def test_replay_after_kill_9_of_serve_is_byte_exact():
    with private_server("org-k9") as srv:
        c = srv.client
        sid = c.create()
        script = "for i in $(seq 1 200); do echo out-$i; echo err-$i >&2; done; sleep 2; echo late"
        pid = start_background(c, sid, "/bin/sh", "-c", script)
        time.sleep(0.5)
        r = c.get(f"/sandboxes/{sid}/processes/{pid}/output", stream=True)
        events = sse_events(r)
        seen = [next(events)]                   # part of what is there: the rest comes after the restart
        srv.stop(signal.SIGKILL)
        srv.start()
        r = c.get(f"/sandboxes/{sid}/processes/{pid}/output", headers={"Last-Event-ID": seen[-1].id},
                  stream=True)
        rest = collect(sse_events(r))
        assert rest[-1].event == "end" and rest[-1].data["exitCode"] == 0
        both = seen + rest
        assert stream_bytes(both).decode() == "".join(f"out-{i}\n" for i in range(1, 201)) + "late\n"
        assert stream_bytes(both, "stderr").decode() == "".join(f"err-{i}\n" for i in range(1, 201))


# ---- bad input, states and orgs on every route ----

ROUTES = [
    ("GET", "/processes"),
    ("GET", "/processes/{pid}"),
    ("GET", "/processes/{pid}/output"),
    ("POST", "/processes/{pid}/stdin"),
    ("POST", "/processes/{pid}/stdin/close"),
    ("POST", "/processes/{pid}/signal"),
    ("DELETE", "/processes/{pid}"),
    ("POST", "/processes/{pid}/resize"),
    ("GET", "/processes/{pid}/attach"),
]

VALID_BODY = {"/processes/{pid}/stdin": {"data": "x"}, "/processes/{pid}/signal": {"signal": "SIGTERM"},
              "/processes/{pid}/resize": {"cols": 80, "rows": 24}}


def test_another_orgs_sandbox_is_404_on_every_route(org_a, org_b, sandbox):
    pid = start_background(org_a, sandbox, "sleep", "30", stdin=True, pty={"cols": 80, "rows": 24})
    for method, path in ROUTES:
        r = org_b.request(method, f"/sandboxes/{sandbox}" + path.format(pid=pid),
                          json=VALID_BODY.get(path))
        assert r.status_code == 404 and r.json()["message"] == "sandbox not found", (method, path, r.text)
    r = org_b.post(f"/sandboxes/{sandbox}/processes", json={"cmd": "true", "background": True})
    assert r.status_code == 404
    # and nothing happened to the process
    assert org_a.get(f"/sandboxes/{sandbox}/processes/{pid}").json()["state"] == "running"
    org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}")


def test_unknown_process_is_404_and_bad_selector_400(org_a, sandbox):
    for method, path in ROUTES:
        if path == "/processes":
            continue
        for pid, code in (("99999", 404), ("no-such-tag", 404), ("bad tag!", 400), ("1234567890123", 400)):
            r = org_a.request(method, f"/sandboxes/{sandbox}" + path.format(pid=pid),
                              json=VALID_BODY.get(path))
            if path.endswith("/attach") and code == 404:
                continue                        # found after the upgrade: see test_process_attach
            assert r.status_code == code, (method, path, pid, r.text)
            assert set(r.json()) == {"code", "message"}


def test_bad_input_on_start(org_a, sandbox):
    cases = [
        ({"cmd": "true", "background": "yes"}, "background must be a boolean"),
        ({"cmd": "true", "stream": 1}, "stream must be a boolean"),
        ({"cmd": "true", "background": True, "stream": True}, "exclude each other"),
        ({"cmd": "cat", "stdin": True}, "needs background or stream"),
        ({"cmd": "cat", "stdin": "x", "background": True}, "synchronous call"),
        ({"cmd": "cat", "stdin": 5, "background": True}, "stdin must be"),
        ({"cmd": "true", "tag": "", "background": True}, "tag must be"),
        ({"cmd": "true", "tag": "123", "background": True}, "all digits"),
        ({"cmd": "true", "tag": "x" * 65, "background": True}, "tag must be"),
        ({"cmd": "true", "tag": 7, "background": True}, "tag must be a string"),
        ({"cmd": "true", "pty": [80, 24], "background": True}, "pty must be an object"),
        ({"cmd": "true", "pty": {"cols": 0, "rows": 24}, "background": True}, "cols"),
        ({"cmd": "true", "pty": {"cols": 80, "rows": 24, "x": 1}, "background": True}, "unknown field"),
        ({"cmd": "true", "timeout": -1, "background": True}, "timeout"),
        ({"cmd": "true", "timeout": 0}, "timeout"),        # the synchronous call needs a limit
        ({"cmd": "true", "wat": 1, "background": True}, "unknown field: wat"),
    ]
    for body, words in cases:
        r = org_a.post(f"/sandboxes/{sandbox}/processes", json=body)
        assert r.status_code == 400 and words in r.json()["message"], (body, r.text)
    assert org_a.get(f"/sandboxes/{sandbox}/processes").status_code == 200


def test_bad_input_on_the_process_routes(org_a, sandbox):
    pid = start_background(org_a, sandbox, "cat", stdin=True, pty={"cols": 80, "rows": 24})
    base = f"/sandboxes/{sandbox}/processes/{pid}"
    cases = [
        ("POST", "/stdin", {}, "exactly one of data"),
        ("POST", "/stdin", {"data": "a", "dataB64": "YQ=="}, "exactly one of data"),
        ("POST", "/stdin", {"data": 5}, "data must be a string"),
        ("POST", "/stdin", {"dataB64": "not base64!"}, "not valid base64"),
        ("POST", "/stdin", {"data": "a", "more": 1}, "unknown field: more"),
        ("POST", "/stdin/close", {"x": 1}, "unknown field: x"),
        ("POST", "/signal", {}, "missing field: signal"),
        ("POST", "/signal", {"signal": "SIGFOO"}, "unknown signal"),
        ("POST", "/signal", {"signal": 99}, "1 to 64"),
        ("POST", "/signal", {"signal": [15]}, "signal must be"),
        ("POST", "/resize", {"cols": 80}, "cols and rows are required"),
        ("POST", "/resize", {"cols": "80", "rows": 24}, "cols"),
        ("POST", "/resize", {"cols": 80, "rows": 5000}, "rows"),
        ("DELETE", "", {"x": 1}, "unknown field: x"),
    ]
    for method, path, body, words in cases:
        r = org_a.request(method, base + path, json=body)
        assert r.status_code == 400 and words in r.json()["message"], (method, path, body, r.text)
    for path in ("/stdin", "/signal", "/resize"):
        r = org_a.post(base + path, data="{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (path, r.text)
    for query, words in (("?stdoutOffset=-1", "stdoutOffset"), ("?stderrOffset=x", "stderrOffset"),
                         ("?wait=maybe", "wait must be"), ("?other=1", "unknown query parameter")):
        r = org_a.get(base + "/output" + query)
        assert r.status_code == 400 and words in r.json()["message"], (query, r.text)
    r = org_a.get(base + "/output", headers={"Last-Event-ID": "garbage"})
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["message"]
    # nothing of that changed the process
    assert org_a.get(base).json()["state"] == "running"
    org_a.delete(base)


def test_paused_sandbox_is_409_for_actions(org_a, sandbox):
    pid = start_background(org_a, sandbox, "sleep", "30", stdin=True, pty={"cols": 80, "rows": 24})
    assert org_a.post(f"/sandboxes/{sandbox}/pause").status_code == 204
    try:
        for method, path in ROUTES:
            if method == "GET":
                continue
            r = org_a.request(method, f"/sandboxes/{sandbox}" + path.format(pid=pid), json=VALID_BODY.get(path))
            assert r.status_code == 409 and "paused" in r.json()["message"], (method, path, r.text)
        r = org_a.post(f"/sandboxes/{sandbox}/processes", json={"cmd": "true", "background": True})
        assert r.status_code == 409
        assert org_a.get(f"/sandboxes/{sandbox}/processes/{pid}").json()["state"] == "running"
    finally:
        assert org_a.post(f"/sandboxes/{sandbox}/connect").status_code == 200
    assert org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}").status_code == 204
