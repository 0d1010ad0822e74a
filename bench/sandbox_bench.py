"""Driver for bench/sandbox.sh: starts a real `sandbase serve` on loopback
with a temporary data dir and a --from host template, measures the hot
paths, and prints each beside its baseline from the same run."""
import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port, key):
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data,
                          headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        resp = self.conn.getresponse()
        payload = resp.read()
        return resp.status, (json.loads(payload) if payload else None)


def timed(fn, n):
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(samples), statistics.mean(samples)


def start_server(args, data_dir, pool_size, network=None):
    with open(os.path.join(data_dir, "config.json"), "w") as f:
        cfg = {"pool_size": pool_size, "org_sandbox_cap": 1000}
        if network:
            cfg["network"] = network
        json.dump(cfg, f)
    port = free_port()
    log = open(os.path.join(data_dir, "serve.log"), "ab")
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                             data_dir, "--log-format", "json"], stdout=log, stderr=log)
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def baseline(args, n, *cmd):
    out = subprocess.run([args.spawn, str(n), *cmd], capture_output=True, text=True, check=True)
    median_mean = out.stdout.split()
    return float(median_mean[1]), float(median_mean[0])


def idle_memory_kib(run_dir, ids):
    """PSS of each sandbox's shim and its PID 1 (what the host pays while idle)."""
    total = 0
    for sid in ids:
        shim = int(open(os.path.join(run_dir, sid, "shim.pid")).read())
        pids = [shim] + [int(p) for p in open(f"/proc/{shim}/task/{shim}/children").read().split()]
        for pid in pids:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / len(ids)


class BenchUplink:
    """A veth whose peer sits in a network namespace of its own (TEST-NET-2
    addresses): the servers' uplink for the egress measurements, so no
    sandbox is ever NATed to a real interface. Removed on exit."""

    def __init__(self):
        tag = f"{os.getpid() % 100000:05d}"
        self.ns, self.link, self.peer = f"sbb-{tag}", f"sbbu{tag}", f"sbbp{tag}"

    def __enter__(self):
        for cmd in (["ip", "netns", "add", self.ns],
                    ["ip", "link", "add", self.link, "type", "veth", "peer", "name", self.peer],
                    ["ip", "link", "set", self.peer, "netns", self.ns],
                    ["ip", "addr", "add", "198.51.100.1/24", "dev", self.link],
                    ["ip", "link", "set", self.link, "up"],
                    ["ip", "-n", self.ns, "addr", "add", "198.51.100.2/24", "dev", self.peer],
                    ["ip", "-n", self.ns, "link", "set", self.peer, "up"]):
            subprocess.run(cmd, check=True, capture_output=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True)
        # a stopped server leaves its host table (it fences surviving sandboxes): remove it
        subprocess.run(["nft", "delete", "table", "inet", "sandbase_0ad70000_24"], capture_output=True)


def pooled_creates(api, body, count=10):
    """Pooled create latency after 0.5 s idle each, and the idle round-trip floor."""
    created, floor, ids = [], [], []
    for _ in range(count):
        # The same idle gap before a health check gives the round-trip floor
        # for a request that arrives at an idle server (CPU wake-up included).
        time.sleep(0.5)
        t0 = time.perf_counter()
        api.call("GET", "/health")
        floor.append((time.perf_counter() - t0) * 1e6)
        time.sleep(0.5)
        t0 = time.perf_counter()
        status, answer = api.call("POST", "/sandboxes", body)
        created.append((time.perf_counter() - t0) * 1e6)
        assert status == 201, answer
        ids.append(answer["sandboxID"])
    for sid in ids:
        api.call("DELETE", f"/sandboxes/{sid}")
    return statistics.median(created), statistics.median(floor)


def exec_throughput(port, key, sid, clients, seconds=5.0):
    def worker(_):
        api, count, end = Api(port, key), 0, time.time() + seconds
        while time.time() < end:
            status, _ = api.call("POST", f"/sandboxes/{sid}/processes", {"cmd": "true"})
            assert status == 200
            count += 1
        return count
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        total = sum(ex.map(worker, range(clients)))
    return total / seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--spawn", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    data_dir = os.path.join(args.work, "data")
    os.makedirs(data_dir)
    subprocess.run([args.bin, "template", "build", "base", "--from", "host", "--data-dir", data_dir], check=True,
                   capture_output=True)
    subprocess.run([args.bin, "org", "create", "bench", "--data-dir", data_dir], check=True, capture_output=True)
    key = subprocess.run([args.bin, "key", "create", "--org", "bench", "--data-dir", data_dir], check=True,
                         capture_output=True, text=True).stdout.strip()

    fork_med, _ = baseline(args, 2000, "/bin/true")
    bwrap_med, _ = baseline(args, 100, "bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr",
                            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                            "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "/bin/true")

    # Cold creates: no pool.
    proc, port = start_server(args, data_dir, 0)
    api = Api(port, key)
    health_med, _ = timed(lambda: api.call("GET", "/health"), 500)
    ids = []
    def cold():
        status, body = api.call("POST", "/sandboxes", {"templateID": "base"})
        assert status == 201, body
        ids.append(body["sandboxID"])
    cold_med, _ = timed(cold, 20)
    exec_med, _ = timed(lambda: api.call("POST", f"/sandboxes/{ids[0]}/processes", {"cmd": "true"}), 200)
    mem_kib = idle_memory_kib(os.path.join(data_dir, "run", "sandboxes"), ids)
    rates = {n: exec_throughput(port, key, ids[0], n) for n in (1, 8, 64)}
    for sid in ids:
        api.call("DELETE", f"/sandboxes/{sid}")
    stop_server(proc)

    # Pooled creates: let the pool fill between creates.
    proc, port = start_server(args, data_dir, 4)
    api = Api(port, key)
    time.sleep(3)
    pooled_med, idle_med = pooled_creates(api, {"templateID": "base"})
    stop_server(proc)

    # Pooled creates with egress (veth, addresses, nftables table, resolver
    # attached at claim), uplink = a veth into a namespace of the bench's own.
    with BenchUplink() as uplink:
        proc, port = start_server(args, data_dir, 4, {"uplink": uplink.link, "range": "10.215.0.0/24",
                                                      "dns_upstream": "198.51.100.2"})
        api = Api(port, key)
        time.sleep(3)
        net_med, net_idle_med = pooled_creates(api, {"templateID": "base"})
        stop_server(proc)

    print(f"{'measure':44} {'sandbase':>12} {'baseline':>12} {'ratio':>7}")
    def row(name, ours, base, unit="us"):
        ratio = f"{ours / base:7.2f}" if base else "      -"
        print(f"{name:44} {ours:10.0f}{unit} {base:10.0f}{unit} {ratio}")
    row("HTTP round trip GET /health (client floor)", health_med, 0)
    row("create, cold (median) vs bwrap spawn", cold_med, bwrap_med)
    row("create, from the pool (median) vs bwrap", pooled_med, bwrap_med)
    row("HTTP round trip GET /health after 0.5 s idle", idle_med, 0)
    row("create, from the pool, minus that floor", pooled_med - idle_med, bwrap_med)
    row("create, pooled, with egress, minus floor", net_med - net_idle_med, pooled_med - idle_med)
    row("exec `true` (median) vs fork+exec", exec_med, fork_med)
    row("exec `true` minus HTTP floor vs fork+exec", exec_med - health_med, fork_med)
    for n, rate in rates.items():
        print(f"{'execs/s with %d client(s)' % n:44} {rate:10.0f}/s")
    print(f"{'host memory per idle sandbox (PSS)':44} {mem_kib:10.0f}KiB")


if __name__ == "__main__":
    main()
