"""Density: how the cost of a cold create grows with the number of live
sandboxes. Creates N sandboxes one after another (warm pool off, small
disks), prints the median create time of each fifth, the last fifth against
the first (the baseline of the same run), an exec's latency across the full
fleet, and serve's and the shims' memory; then deletes them all.

Usage: python3 bench/density.py --bin build/sandbase [--count 2000] [--disk-mb 16]
(as root; loopback only; its own server and data dir, removed afterwards)."""
import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--disk-mb", type=int, default=16)
    args = ap.parse_args()
    os.environ["SANDBASE_BIN"] = os.path.abspath(args.bin)
    import conftest
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = {"pool_size": 0, "org_sandbox_cap": args.count + 10, "disk_reserve_mb": 64,
              "defaults": {"cpu_count": 1, "memory_mb": 128, "pids": 64, "disk_mb": args.disk_mb}}
    with conftest.private_server("org-density", **config) as srv:
        c = srv.client
        times, ids = [], []
        for i in range(args.count):
            t = time.perf_counter()
            r = c.post("/sandboxes", json={"templateID": "base"})
            if r.status_code != 201:
                print(f"create {i} failed: {r.status_code} {r.text}")
                break
            times.append((time.perf_counter() - t) * 1000)
            ids.append(r.json()["sandboxID"])
        fifth = max(1, len(times) // 5)
        parts = [statistics.median(times[k * fifth:(k + 1) * fifth]) for k in range(5) if times[k * fifth:]]
        print(f"{len(ids)} live sandboxes; cold create median per fifth (ms): "
              + " ".join(f"{p:.1f}" for p in parts))
        print(f"{'last fifth vs first fifth (baseline)':44} {parts[-1]:8.1f}ms {parts[0]:8.1f}ms "
              f"{parts[-1] / parts[0]:6.2f}x")
        lat = []
        for sid in ids[::max(1, len(ids) // 50)]:
            t = time.perf_counter()
            assert c.run(sid, "true").status_code == 200
            lat.append((time.perf_counter() - t) * 1000)
        print(f"{'exec `true` across the fleet (median)':44} {statistics.median(lat):8.2f}ms")
        t = time.perf_counter()
        c.get("/sandboxes")
        print(f"{'GET /sandboxes with the fleet':44} {(time.perf_counter() - t) * 1000:8.2f}ms")
        with open(f"/proc/{srv.proc.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        print(f"{'serve RSS':44} {rss / 1024:8.1f}MiB")
        t = time.perf_counter()
        for sid in ids:
            c.delete(f"/sandboxes/{sid}")
        print(f"deleted {len(ids)} in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
