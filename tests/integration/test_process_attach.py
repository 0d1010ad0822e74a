"""GET /sandboxes/:id/processes/:pid/attach, the WebSocket (issue 8),
driven by a real client library (python3-websocket): pipes with their
stream tags, stdin and closeStdin, an interactive shell on a PTY (tty, stty
size after a resize control, Ctrl-C, exit code), signals, bad control
frames, errors before and after the upgrade, a client that leaves, a slow
reader; and 500 concurrent streams on one server."""
import json
import socket
import time

import pytest
import websocket

from conftest import private_server
from streams import (SLOW, rss_kib, serve_pid, start_background, threads, ws_attach, ws_frames,
                     ws_url)

TEXT, BINARY, CLOSE = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_CLOSE


def close_code(payload):
    return int.from_bytes(payload[:2], "big")


def read_until(ws, marker, pty=True):
    """Output bytes (tags stripped for pipes) until marker appears."""
    got = b""
    for op, data in ws_frames(ws):
        assert op == BINARY, (op, data, got)
        got += data if pty else data[1:]
        if marker in got:
            return got
    raise AssertionError(f"closed before {marker!r}: {got!r}")


def test_pipes_stdin_tags_close_stdin_and_exit(org_a, sandbox):
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", "cat; echo bye >&2; exit 5", stdin=True)
    ws = ws_attach(org_a, sandbox, pid)
    op, data = ws.recv_data()
    start = json.loads(data)["start"]
    assert op == TEXT and start["processID"] == pid and start["pty"] is None
    assert start["stdoutOffset"] == 0 and start["stderrOffset"] == 0
    ws.send_binary(b"abc\n")
    op, data = ws.recv_data()
    assert (op, data) == (BINARY, b"\x01abc\n")          # tag 1: stdout
    ws.send_binary(bytes([0, 255, 10]))
    assert ws.recv_data() == (BINARY, b"\x01" + bytes([0, 255, 10]))
    ws.send(json.dumps({"closeStdin": True}))
    frames = list(ws_frames(ws))
    assert frames[0] == (BINARY, b"\x02bye\n")            # tag 2: stderr
    assert frames[-2][0] == TEXT
    assert json.loads(frames[-2][1]) == {"exit": {"exitCode": 5, "signal": None, "oomKilled": False,
                                                  "timedOut": False,
                                                  "durationMs": json.loads(frames[-2][1])["exit"]["durationMs"]}}
    assert frames[-1][0] == CLOSE and close_code(frames[-1][1]) == 1000
    ws.close()


def test_interactive_shell_on_a_pty(org_a, sandbox):
    pid = start_background(org_a, sandbox, "/bin/sh", pty={"cols": 80, "rows": 24}, timeout=0, tag="shell")
    ws = ws_attach(org_a, sandbox, "shell")
    start = json.loads(ws.recv_data()[1])["start"]
    assert start["pty"] == {"rows": 24, "cols": 80}
    ws.send_binary(b"tty; stty size\n")
    out = read_until(ws, b"24 80")
    assert b"/dev/pts/" in out
    ws.send(json.dumps({"resize": {"cols": 120, "rows": 40}}))
    time.sleep(0.2)
    ws.send_binary(b"stty size\n")
    read_until(ws, b"40 120")
    ws.send_binary(b"sleep 30; echo slept\n")
    time.sleep(0.3)
    t0 = time.time()
    ws.send_binary(b"\x03")                               # Ctrl-C interrupts the sleep, not the shell
    ws.send_binary(b"echo back-$((6*7))\n")
    out = read_until(ws, b"back-42")
    assert b"\nslept" not in out and time.time() - t0 < (20 if SLOW else 5)
    ws.send_binary(b"exit 7\n")
    frames = list(ws_frames(ws))
    exit_frame = [json.loads(d) for op, d in frames if op == TEXT][-1]
    assert exit_frame["exit"]["exitCode"] == 7
    assert close_code(frames[-1][1]) == 1000
    ws.close()


def test_signal_control_and_bad_controls(org_a, sandbox):
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", "trap 'echo int; exit 9' INT; echo ready; "
                                                          "while :; do sleep 0.05; done")
    ws = ws_attach(org_a, sandbox, pid)
    ws.recv_data()
    read_until(ws, b"ready", pty=False)
    for bad, words in (("{not json", "JSON object"), (json.dumps({"nope": 1}), "control frame is one of"),
                       (json.dumps({"signal": "SIGNOPE"}), "unknown signal"),
                       (json.dumps({"resize": {"cols": 0, "rows": 5}}), "cols"),
                       (json.dumps({"resize": {"cols": 80, "rows": 24}}), "no terminal"),
                       (json.dumps({"closeStdin": False}), "closeStdin must be true")):
        ws.send(bad)
        op, data = ws.recv_data()
        err = json.loads(data)["error"]
        assert op == TEXT and err["code"] == 400 and words in err["message"], (bad, err)
    ws.send_binary(b"to a closed stdin")
    err = json.loads(ws.recv_data()[1])["error"]
    assert err["code"] == 409
    ws.send(json.dumps({"signal": "SIGINT"}))
    frames = list(ws_frames(ws))
    assert (BINARY, b"\x01int\n") in frames
    assert json.loads([d for op, d in frames if op == TEXT][-1])["exit"]["exitCode"] == 9
    ws.close()


def test_errors_before_and_after_the_upgrade(org_a, org_b, sandbox):
    pid = start_background(org_a, sandbox, "sleep", "30")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ws_attach(org_b, sandbox, pid)
    assert e.value.status_code == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ws_attach(org_a, sandbox, pid, "?stdoutOffset=x")
    assert e.value.status_code == 400
    r = org_a.get(f"/sandboxes/{sandbox}/processes/{pid}/attach")     # not a WebSocket handshake
    assert r.status_code in (400, 426), r.text
    ws = ws_attach(org_a, sandbox, "99999")
    frames = list(ws_frames(ws))
    err = json.loads(frames[0][1])["error"]
    assert err["code"] == 404 and close_code(frames[-1][1]) == 4404
    ws.close()
    org_a.delete(f"/sandboxes/{sandbox}/processes/{pid}")


def test_a_client_that_leaves_leaves_the_process_running(org_a, sandbox):
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", "read x; echo got-$x", stdin=True)
    ws = ws_attach(org_a, sandbox, pid)
    ws.recv_data()
    ws.sock.shutdown(socket.SHUT_RDWR)                   # gone without a close frame
    ws.sock.close()
    time.sleep(0.3)
    assert org_a.get(f"/sandboxes/{sandbox}/processes/{pid}").json()["state"] == "running"
    ws = ws_attach(org_a, sandbox, pid)                  # attach again: the replay is empty, then live
    ws.recv_data()
    ws.send_binary(b"again\n")
    assert read_until(ws, b"got-again", pty=False) == b"got-again\n"
    ws.close()


def test_slow_websocket_reader_throttles_the_writer(server, org_a, sandbox):
    total = 48 * 1024 * 1024
    # It writes only once attached: started free, a slow machine could let it
    # fill the 1 MiB ring before the attach, and the attach would then see a
    # "dropped" frame first (not the back-pressure this test is about).
    pid = start_background(org_a, sandbox, "/bin/sh", "-c", f"read go; head -c {total} /dev/zero", stdin=True)
    ws = ws_attach(org_a, sandbox, pid)
    ws.recv_data()
    ws.send_binary(b"go\n")
    spid = serve_pid(server)
    before = rss_kib(spid)
    op, first = ws.recv_data()
    assert op == BINARY and first[0] == 1
    time.sleep(3 if SLOW else 1.5)                       # the client reads nothing meanwhile
    assert org_a.get(f"/sandboxes/{sandbox}/processes/{pid}").json()["state"] == "running"
    if not SLOW:
        assert rss_kib(spid) - before < 16 * 1024
    got = len(first) - 1
    for op, data in ws_frames(ws):
        if op == BINARY:
            got += len(data) - 1
        elif op == TEXT:
            assert json.loads(data)["exit"]["exitCode"] == 0
    assert got == total                                  # nothing lost while held back
    ws.close()


def test_500_concurrent_streams_on_one_server():
    """500 SSE streams at once (250 attached to each of two processes, under
    the shim's 256 connections), on the one loop: serve's thread count stays
    what it was and its memory grows by a bounded amount per stream; every
    stream gets the line the process prints after all of them are open."""
    count = 500
    with private_server("org-500", max_connections_per_address=2000) as srv:
        c = srv.client
        boxes = [c.create(), c.create()]
        pids = [start_background(c, b, "/bin/sh", "-c", "read x; echo go-$x", stdin=True) for b in boxes]
        spid = serve_pid(srv)
        threads_before, rss_before = threads(spid), rss_kib(spid)
        socks = []
        for i in range(count):
            box, pid = boxes[i % 2], pids[i % 2]
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall((f"GET /sandboxes/{box}/processes/{pid}/output HTTP/1.1\r\nHost: x\r\n"
                       f"Authorization: Bearer {c.key}\r\nAccept: text/event-stream\r\n\r\n").encode())
            socks.append(s)
        for s in socks:
            s.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
        assert threads(spid) == threads_before
        grown = rss_kib(spid) - rss_before
        print(f"500 streams: serve threads {threads_before} -> {threads(spid)}, RSS +{grown} KiB")
        if not SLOW:
            assert grown < count * 100, f"{grown} KiB for {count} streams"
        for box, pid in zip(boxes, pids):
            assert c.post(f"/sandboxes/{box}/processes/{pid}/stdin", json={"data": "now\n"}).status_code == 204
        for s in socks:
            got = b""
            while b"go-now" not in got:
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
            s.close()
