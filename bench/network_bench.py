"""Driver for bench/network.sh.

egress: throughput from a sandbox (veth, NAT, both nftables tables) to a
test host in a network namespace of the bench's own, beside the host's own
throughput to the same receiver, same run, same sender code. Nothing leaves
the machine: the uplink is the bench's veth.

proxy: HTTP requests/s and latency through the port proxy (Host form, wrk
on the host with keep-alive to serve) to a small keep-alive HTTP server
inside a sandbox, beside the same wrk talking to the same server directly
inside the sandbox's network namespace (nsenter --net=/proc/<init>/ns/net),
same run, alternating. The sandbox has no egress: loopback only."""
import argparse
import os
import statistics
import subprocess
import time

from sandbox_bench import Api, BenchUplink, start_server, stop_server

RECEIVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.51.100.2", 5201)); s.listen(4)
buf = bytearray(1 << 20)
while True:
    c, _ = s.accept()
    while c.recv_into(buf):
        pass
    c.sendall(b"k"); c.close()
"""

SENDER = """
import socket, sys, time
mib = int(sys.argv[1])
s = socket.create_connection(("198.51.100.2", 5201))
buf = b"\\0" * (1 << 20)
t = time.perf_counter()
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(mib * 8 / 1024 / (time.perf_counter() - t))
"""


# A small keep-alive HTTP/1.1 server (asyncio, stdlib): "hello, world\n" to
# every request, so that what is measured is the path, not the server.
UPSTREAM = """
import asyncio
BODY = b"hello, world\\n"
ANSWER = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\nContent-Type: text/plain\\r\\n\\r\\n" % len(BODY) + BODY
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            writer.write(ANSWER)
            if b"connection: close" in head.lower():
                break
            await writer.drain()
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 8000, backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def wrk(prefix, url, host, seconds, connections, close=False):
    """requests/s and the median and p99 latency in ms, from wrk's text."""
    cmd = [*prefix, "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    rps = lat50 = lat99 = None
    errors = "Non-2xx" in out or "Socket errors" in out
    if errors:
        print(" ".join(cmd), "|", " ".join(l.strip() for l in out.splitlines() if "rror" in l or "Non-2xx" in l))

    def ms(text):
        for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if text.endswith(unit):
                return float(text[:-len(unit)]) * scale
        return float(text)

    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(words[1])
        elif words[:1] == ["50%"]:
            lat50 = ms(words[1])
        elif words[:1] == ["99%"]:
            lat99 = ms(words[1])
    return rps, lat50, lat99, errors


def sandbox_netns(data_dir, sid):
    with open(os.path.join(data_dir, "run", "sandboxes", sid, "shim.pid")) as f:
        shim = int(f.read())
    with open(f"/proc/{shim}/task/{shim}/children") as f:
        return f"/proc/{int(f.read().split()[0])}/ns/net"


def proxy_bench(args, data_dir, key):
    proc, port = start_server(args, data_dir, 1)
    try:
        api = Api(port, key)
        status, sb = api.call("POST", "/sandboxes", {"templateID": "base", "timeout": 600})
        assert status == 201, sb
        sid = sb["sandboxID"]
        status, out = api.call("POST", f"/sandboxes/{sid}/processes",
                               {"cmd": "python3", "args": ["-c", UPSTREAM], "background": True, "timeout": 0})
        assert status == 202, out
        netns = sandbox_netns(data_dir, sid)
        direct_prefix = ["nsenter", f"--net={netns}"]
        for _ in range(100):
            if subprocess.run([*direct_prefix, "python3", "-c",
                               "import socket; socket.create_connection(('127.0.0.1', 8000))"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        host = f"8000-{sid}.localhost:{port}"
        proxied_url = f"http://127.0.0.1:{port}/"
        wrk([], proxied_url, host, 1, args.connections)             # warm up both paths
        wrk(direct_prefix, "http://127.0.0.1:8000/", None, 1, args.connections)
        direct, closing, proxied = [], [], []
        for _ in range(args.runs):
            direct.append(wrk(direct_prefix, "http://127.0.0.1:8000/", None, args.seconds, args.connections))
            closing.append(wrk(direct_prefix, "http://127.0.0.1:8000/", None, args.seconds, args.connections,
                               close=True))
            proxied.append(wrk([], proxied_url, host, args.seconds, args.connections))
        api.call("DELETE", f"/sandboxes/{sid}")
    finally:
        stop_server(proc)

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    print(f"{'HTTP, %d connections (median of %d x %d s)' % (args.connections, args.runs, args.seconds):44}"
          f" {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}")
    d, p_ = med(direct, 0), med(proxied, 0)
    print(f"{'direct, inside the sandbox netns':44} {d:9.0f} {med(direct, 1):7.2f} {med(direct, 2):7.2f}")
    print(f"{'direct, a new connection per request':44} {med(closing, 0):9.0f} {med(closing, 1):7.2f}"
          f" {med(closing, 2):7.2f} {med(closing, 0) / d:6.2f}")
    print(f"{'through the port proxy (Host form)':44} {p_:9.0f} {med(proxied, 1):7.2f} {med(proxied, 2):7.2f}"
          f" {p_ / d:6.2f}")
    pairs = sorted(p[0] / d[0] for p, d in zip(proxied, direct))
    print(f"proxied / direct per alternating pair: {', '.join(f'{r:.2f}' for r in pairs)}"
          f" (median {statistics.median(pairs):.2f})")
    for name, rows in (("direct", direct), ("direct, new connections", closing), ("proxied", proxied)):
        if any(r[3] for r in rows):
            print(f"wrk reported socket errors or non-2xx answers in a {name} run")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", choices=("egress", "proxy"))
    p.add_argument("--seconds", type=int, default=5, help="proxy: length of one wrk run")
    p.add_argument("--connections", type=int, default=32, help="proxy: wrk's connections")
    args = p.parse_args()
    data_dir = os.path.join(args.work, "data")
    os.makedirs(data_dir)
    for cmd in (["template", "build", "base", "--from", "host"], ["org", "create", "bench"]):
        subprocess.run([args.bin, *cmd, "--data-dir", data_dir], check=True, capture_output=True)
    key = subprocess.run([args.bin, "key", "create", "--org", "bench", "--data-dir", data_dir], check=True,
                         capture_output=True, text=True).stdout.strip()
    if args.only != "egress":
        proxy_bench(args, data_dir, key)
    if args.only == "proxy":
        return
    egress_bench(args, data_dir, key)


def egress_bench(args, data_dir, key):
    with BenchUplink() as uplink:
        receiver = subprocess.Popen(["ip", "netns", "exec", uplink.ns, "python3", "-c", RECEIVER])
        try:
            time.sleep(0.5)
            host = [float(subprocess.run(["python3", "-c", SENDER, str(args.mib)], check=True,
                                         capture_output=True, text=True).stdout) for _ in range(args.runs)]
            proc, port = start_server(args, data_dir, 1, {"uplink": uplink.link, "range": "10.215.0.0/24",
                                                          "dns_upstream": "198.51.100.2"})
            try:
                api = Api(port, key)
                status, sb = api.call("POST", "/sandboxes", {"templateID": "base", "timeout": 600})
                assert status == 201, sb
                sandbox = []
                for _ in range(args.runs):
                    status, out = api.call("POST", f"/sandboxes/{sb['sandboxID']}/processes",
                                           {"cmd": "python3", "args": ["-c", SENDER, str(args.mib)], "timeout": 600})
                    assert status == 200 and out["exitCode"] == 0, out
                    sandbox.append(float(out["stdout"]))
                api.call("DELETE", f"/sandboxes/{sb['sandboxID']}")
            finally:
                stop_server(proc)
        finally:
            receiver.kill()
            receiver.wait()
    h, s = statistics.median(host), statistics.median(sandbox)
    print(f"{'measure (median of %d x %d MiB)' % (args.runs, args.mib):44} {'Gbit/s':>10} {'ratio':>7}")
    print(f"{'TCP to the test host from the host':44} {h:10.2f}")
    print(f"{'TCP to the test host from a sandbox':44} {s:10.2f} {s / h:7.2f}")


if __name__ == "__main__":
    main()
