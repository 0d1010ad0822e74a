"""Server memory under many large synchronous execs (issue 7's bound): CLIENTS
concurrent POST /sandboxes/:id/processes, each printing MB megabytes to
stdout, across SANDBOXES sandboxes. Prints serve's RSS idle (the baseline),
its peak while the calls run (sampled every 20 ms) and after they all
answered, with the ratio to the baseline, and the answers' statuses.

Usage: python3 bench/exec_memory.py --bin build/sandbase [--clients 200] [--mb 20]
(as root; loopback only; starts and removes its own server and data dir)."""
import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def post(port, path, key, body):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    data = json.dumps(body).encode()
    writer.write((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                  f"Connection: close\r\n\r\n").encode() + data)
    await writer.drain()
    size, status = 0, 0
    while True:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        if not size:
            status = int(chunk.split(b" ", 2)[1])
        size += len(chunk)
    writer.close()
    return status, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--sandboxes", type=int, default=10)
    args = ap.parse_args()
    os.environ["SANDBASE_BIN"] = os.path.abspath(args.bin)
    import conftest
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16384), hard))
    config = {"pool_size": 0, "max_connections_per_address": 2048, "max_connections": 4096}
    with conftest.private_server("org-mem", **config) as srv:
        c = srv.client
        ids = [c.create() for _ in range(args.sandboxes)]
        pid = srv.proc.pid
        time.sleep(0.5)
        idle = rss_kib(pid)
        peak = [idle]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.02)
        t = threading.Thread(target=sample)
        t.start()
        body = {"cmd": "head", "args": ["-c", str(args.mb * 1000 * 1000), "/dev/zero"], "timeout": 600}

        async def run_all():
            return await asyncio.gather(*[post(srv.port, f"/sandboxes/{ids[i % len(ids)]}/processes", c.key, body)
                                          for i in range(args.clients)])
        start = time.monotonic()
        results = asyncio.run(run_all())
        took = time.monotonic() - start
        time.sleep(1.0)
        stop.set()
        t.join()
        after = rss_kib(pid)
        statuses = {}
        for s, _ in results:
            statuses[s] = statuses.get(s, 0) + 1
        received = sum(n for _, n in results) / 1e6
        print(f"{args.clients} clients x {args.mb} MB of stdout across {len(ids)} sandboxes: "
              f"{took:.1f} s, statuses {statuses}, {received:.0f} MB of answers received")
        print(f"{'serve RSS idle (baseline)':44} {idle / 1024:10.1f}MiB")
        print(f"{'serve RSS peak while running':44} {peak[0] / 1024:10.1f}MiB {peak[0] / idle:7.2f}x")
        print(f"{'serve RSS 1 s after the last answer':44} {after / 1024:10.1f}MiB {after / idle:7.2f}x")


if __name__ == "__main__":
    main()
