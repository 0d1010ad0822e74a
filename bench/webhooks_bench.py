"""Driver for bench/webhooks.sh: a real `sandbase serve` on loopback (fresh
data dir, --from host template, webhook_allow_private for receivers on
127.0.0.1) and receivers in this process.

1. Throughput: while the receiver is down, SANDBOXES sandboxes make EVENTS
   events in all; then the receiver starts and the time until it has every
   event gives events/s (deliveries of different sandboxes overlap, one
   sandbox's go in order).
2. API latency: p50/p99 of sequential GET /sandboxes, idle, then while
   WEBHOOKS x SANDBOXES (1,000) deliveries are held open by a receiver that
   answers after 10 s."""
import argparse
import http.client
import http.server
import json
import os
import signal
import statistics
import subprocess
import threading
import time

from sandbox_bench import Api, free_port    # the same driver pieces as bench/sandbox.sh


def call(api, method, path, body=None):
    """api.call, raising unless the answer is a success; returns its JSON."""
    status, payload = api.call(method, path, body)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {payload}")
    return payload


class Receiver:
    """Counts POSTs; answers 200 after `delay` seconds."""

    def __init__(self, port, delay=0.0):
        self.count, self.lock, self.delay = 0, threading.Lock(), delay
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if rx.delay:
                    time.sleep(rx.delay)
                with rx.lock:
                    rx.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.request_queue_size = 2048
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def latency(api, n=300):
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        call(api, "GET", "/sandboxes")
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(n * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sandboxes", type=int, default=20)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--webhooks", type=int, default=50)
    args = ap.parse_args()
    data = os.path.join(args.work, "data")
    os.makedirs(data)
    with open(os.path.join(data, "config.json"), "w") as f:
        json.dump({"pool_size": 0, "webhook_allow_private": True, "webhook_retry_base_ms": 50,
                   "webhook_retry_max_delay_s": 1, "webhook_max_in_flight": 1024, "webhook_max_attempts": 100}, f)
    run = lambda *a: subprocess.run([args.bin, *a, "--data-dir", data], check=True, capture_output=True,
                                    text=True).stdout.strip()
    run("template", "build", "base", "--from", "host")
    run("org", "create", "bench")
    key = run("key", "create", "--org", "bench")
    port = free_port()
    log = open(os.path.join(args.work, "serve.log"), "w")
    serve = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                              "--log-format", "json"], stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
                break
            except OSError:
                time.sleep(0.05)
        api = Api(port, key)

        # 1. throughput
        rx_port = free_port()
        hook = call(api, "POST", "/events/webhooks", {"name": "bench", "url": f"http://127.0.0.1:{rx_port}/"})
        sids = [call(api, "POST", "/sandboxes", {"templateID": "base"})["sandboxID"] for _ in range(args.sandboxes)]
        made = len(sids)
        i = 0
        while made < args.events:
            call(api, "POST", f"/sandboxes/{sids[i % len(sids)]}/timeout", {"timeout": 600 + i})
            made += 1
            i += 1
        rx = Receiver(rx_port)
        t0 = time.perf_counter()
        while rx.count < made:
            time.sleep(0.01)
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"only {rx.count} of {made} delivered in 300 s")
        took = time.perf_counter() - t0
        rx.stop()
        print(f"throughput: {made} events over {args.sandboxes} sandboxes delivered in {took:.2f} s "
              f"= {made / took:.0f} events/s (receiver: Python http.server, one thread per request)")
        call(api, "DELETE", f"/events/webhooks/{hook['id']}")

        # 2. API latency, idle vs 1,000 deliveries in flight
        idle50, idle99 = latency(api)
        slow_port = free_port()
        slow = Receiver(slow_port, delay=10)
        for n in range(args.webhooks):
            call(api, "POST", "/events/webhooks", {"name": f"slow{n}", "url": f"http://127.0.0.1:{slow_port}/",
                                                  "events": ["sandbox.lifecycle.updated"]})
        for sid in sids:    # one event per sandbox, a delivery per webhook: the list stays the same
            call(api, "POST", f"/sandboxes/{sid}/timeout", {"timeout": 900})
        time.sleep(1.0)
        busy50, busy99 = latency(api)
        inflight = args.webhooks * len(sids) - slow.count
        print(f"GET /sandboxes ({len(sids)} sandboxes) idle:           p50 {idle50:.2f} ms  p99 {idle99:.2f} ms")
        print(f"GET /sandboxes ({len(sids)} sandboxes) {inflight:4d} in flight: p50 {busy50:.2f} ms  p99 {busy99:.2f} ms")
        slow.stop()
        for sid in sids:
            call(api, "DELETE", f"/sandboxes/{sid}")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)


if __name__ == "__main__":
    main()
