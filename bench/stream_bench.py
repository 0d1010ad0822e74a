"""Driver for bench/stream.sh: a real `sandbase serve` on loopback with a
temporary data dir and a --from host template; each figure is printed
beside its baseline from the same run."""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sandbox_bench import Api  # noqa: E402


def sse_request(port, key, path, body=None, method="POST"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"X-API-Key": key, "Content-Type": "application/json", "Accept": "text/event-stream"})
    return conn, conn.getresponse()


def drain(resp):
    """Reads the whole SSE body as fast as possible; returns the bytes read."""
    total = 0
    while True:
        chunk = resp.read1(1 << 20)
        if not chunk:
            return total
        total += len(chunk)


def sse_output_bytes(port, key, sid, script):
    """Time and stdout bytes of script streamed over SSE. The client reads
    the events as they come without decoding them (the server's rate, not
    Python's JSON); the byte count is the stdout offset in the last id."""
    t0 = time.perf_counter()
    conn, resp = sse_request(port, key, f"/sandboxes/{sid}/processes",
                             {"cmd": "/bin/sh", "args": ["-c", script], "stream": True, "timeout": 0})
    assert resp.status == 200, resp.read()
    tail = b""
    while True:
        chunk = resp.read1(1 << 20)
        if not chunk:
            break
        tail = (tail + chunk)[-4096:]
    conn.close()
    last_id = tail[tail.rindex(b"id: ") + 4:].split(b"\n", 1)[0].decode()
    assert b"event: end" in tail, tail[-300:]
    return time.perf_counter() - t0, int(last_id.split("-")[0])


def pipe_output_bytes(script):
    t0 = time.perf_counter()
    p = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE)
    got = 0
    while True:
        chunk = p.stdout.read1(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    p.wait()
    return time.perf_counter() - t0, got


def size_bytes(size):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def throughput(port, key, sid, size):
    n = size_bytes(size)
    for label, script in (("head -c %s /dev/zero" % size, f"head -c {size} /dev/zero"),
                          ("the same, printable (tr '\\0' a)", f"head -c {size} /dev/zero | tr '\\0' a")):
        pt, pgot = pipe_output_bytes(script)
        st, sgot = sse_output_bytes(port, key, sid, script)
        assert pgot == n and sgot == n, (pgot, sgot, n)
        print(f"  {label}: SSE {n / st / 1e6:7.1f} MB/s   raw pipe {n / pt / 1e6:7.1f} MB/s   "
              f"ratio {pt / st:.2f}x (target >= 0.5x)")


def first_byte(port, key, sid, runs=50):
    api = Api(port, key)
    sync, streamed = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        status, _ = api.call("POST", f"/sandboxes/{sid}/processes", {"cmd": "echo", "args": ["hi"]})
        sync.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        conn, resp = sse_request(port, key, f"/sandboxes/{sid}/processes",
                                 {"cmd": "echo", "args": ["hi"], "stream": True})
        buf = b""
        while b"event: stdout" not in buf:
            chunk = resp.read1(4096)
            if not chunk:
                break
            buf += chunk
        streamed.append((time.perf_counter() - t0) * 1e3)
        conn.close()
    print(f"  first stdout byte of a streamed echo: median {statistics.median(streamed):.2f} ms   "
          f"synchronous exec of it: median {statistics.median(sync):.2f} ms")


def rss_and_threads(pid):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            vals[k] = v.split()[0] if v.split() else ""
    return int(vals["VmRSS"]), int(vals["Threads"])


def open_streams(port, key, pid, sids, count=500):
    procs = []
    api = Api(port, key)
    for sid in sids:
        status, body = api.call("POST", f"/sandboxes/{sid}/processes",
                                {"cmd": "sleep", "args": ["600"], "background": True, "timeout": 0})
        procs.append((sid, body["processID"]))
    rss0, th0 = rss_and_threads(pid)
    socks = []
    for i in range(count):
        sid, p = procs[i % len(procs)]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall((f"GET /sandboxes/{sid}/processes/{p}/output HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode())
        socks.append(s)
    for s in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
    time.sleep(1)
    rss1, th1 = rss_and_threads(pid)
    print(f"  {count} open streams: serve RSS {rss0} -> {rss1} KiB (+{(rss1 - rss0) / count:.0f} KiB per stream), "
          f"threads {th0} -> {th1}")
    for s in socks:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--size", default="1G")
    args = ap.parse_args()
    data_dir = os.path.join(args.work, "data")
    os.makedirs(data_dir)
    subprocess.run([args.bin, "template", "build", "base", "--from", "host", "--data-dir", data_dir], check=True,
                   capture_output=True)
    subprocess.run([args.bin, "org", "create", "bench", "--data-dir", data_dir], check=True, capture_output=True)
    key = subprocess.run([args.bin, "key", "create", "--org", "bench", "--data-dir", data_dir], check=True,
                         capture_output=True, text=True).stdout.strip()
    with open(os.path.join(data_dir, "config.json"), "w") as f:
        json.dump({"pool_size": 0, "org_sandbox_cap": 100, "max_connections_per_address": 2000}, f)
    proc, port = start_server_raw(args.bin, data_dir)
    try:
        api = Api(port, key)
        sids = [api.call("POST", "/sandboxes", {"templateID": "base"})[1]["sandboxID"] for _ in range(2)]
        print("stream throughput (SSE, read as it comes) vs a raw pipe, same command, same run:")
        throughput(port, key, sids[0], args.size)
        print("time to first byte:")
        first_byte(port, key, sids[0])
        print("many streams:")
        open_streams(port, key, proc.pid, sids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def start_server_raw(binary, data_dir):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    p = port.getsockname()[1]
    port.close()
    log = open(os.path.join(data_dir, "serve.log"), "ab")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{p}", "--data-dir", data_dir,
                             "--log-format", "json"], stdout=log, stderr=log)
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", p, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, p
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


if __name__ == "__main__":
    main()
