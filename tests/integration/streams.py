"""Helpers for the interactive-process tests: reading Server-Sent Events off
a real HTTP response, opening the attach WebSocket with a real client
library (python3-websocket), and reading a process's memory figures."""
import base64
import json
import os

import websocket


class Event:
    def __init__(self, id, event, data):
        self.id = id
        self.event = event
        self.data = data

    def bytes(self):
        """The output bytes of a stdout/stderr event, whichever way they came."""
        if "dataB64" in self.data:
            return base64.b64decode(self.data["dataB64"])
        return self.data["data"].encode()

    def __repr__(self):
        return f"Event({self.id!r}, {self.event!r}, {self.data!r})"


def sse_events(resp):
    """Yields the events of a streamed requests response as they arrive;
    comments (keepalives) are skipped. Fields are kept per event, as the
    SSE spec says (an id applies to its event)."""
    id = event = None
    data = []
    buf = b""
    for piece in resp.iter_content(chunk_size=1 << 16):
        buf += piece
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.decode()
            if line == "":
                if data or event:
                    yield Event(id, event, json.loads("\n".join(data)))
                id = event = None
                data = []
            elif line.startswith(":"):
                continue
            elif line.startswith("id: "):
                id = line[4:]
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])


def collect(events, until="end"):
    """Reads events up to and including the first `until` (or error) one."""
    out = []
    for ev in events:
        out.append(ev)
        if ev.event in (until, "error"):
            break
    return out


def stream_bytes(events, stream="stdout"):
    return b"".join(ev.bytes() for ev in events if ev.event == stream)


def start_stream(client, sandbox, cmd, *args, **body):
    body.update(cmd=cmd, args=list(args), stream=True)
    r = client.post(f"/sandboxes/{sandbox}/processes", json=body, stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    return r


def start_background(client, sandbox, cmd, *args, **body):
    body.update(cmd=cmd, args=list(args), background=True)
    r = client.post(f"/sandboxes/{sandbox}/processes", json=body)
    assert r.status_code == 202, r.text
    return r.json()["processID"]


def ws_url(client, path):
    return client.server.url.replace("http://", "ws://") + path


def ws_attach(client, sandbox, pid, query="", timeout=30):
    return websocket.create_connection(
        ws_url(client, f"/sandboxes/{sandbox}/processes/{pid}/attach{query}"),
        header=[f"Authorization: Bearer {client.key}"], timeout=timeout)


def ws_frames(ws):
    """Yields (opcode, payload) until the server's close frame, which is
    yielded last as (8, payload)."""
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_PING or op == websocket.ABNF.OPCODE_PONG:
            continue
        yield op, data
        if op == websocket.ABNF.OPCODE_CLOSE:
            return


def serve_pid(server):
    return server.proc.pid


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


SLOW = os.environ.get("SANDBASE_ASAN") == "1"
