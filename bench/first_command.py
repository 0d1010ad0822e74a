"""Time to first command: a create from the warm pool, then the first exec of
`echo` in it (the figure public sandbox benchmarks compare), beside a second
exec in the same sandbox (the baseline of the same run). 30 rounds, each after
a pause that lets the pool refill; prints the medians.

Usage: python3 bench/first_command.py --bin build/sandbase   (as root; loopback
only; its own server and data dir, removed afterwards)."""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    os.environ["SANDBASE_BIN"] = os.path.abspath(args.bin)
    import conftest
    with conftest.private_server("org-ttfc", pool_size=4) as srv:
        c = srv.client
        create, first, second = [], [], []
        for _ in range(args.rounds):
            time.sleep(0.3)
            t0 = time.perf_counter()
            sid = c.create()
            t1 = time.perf_counter()
            assert c.run(sid, "echo", "hi").status_code == 200
            t2 = time.perf_counter()
            assert c.run(sid, "echo", "hi").status_code == 200
            t3 = time.perf_counter()
            c.delete(f"/sandboxes/{sid}")
            create.append((t1 - t0) * 1000)
            first.append((t2 - t1) * 1000)
            second.append((t3 - t2) * 1000)
        ttfc = statistics.median([a + b for a, b in zip(create, first)])
        print(f"{'pooled create (median)':44} {statistics.median(create):8.2f}ms")
        print(f"{'first exec in it vs a second one':44} {statistics.median(first):8.2f}ms "
              f"{statistics.median(second):8.2f}ms {statistics.median(first) / statistics.median(second):6.2f}x")
        print(f"{'time to first command (p50)':44} {ttfc:8.2f}ms")


if __name__ == "__main__":
    main()
