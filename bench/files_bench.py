"""Driver for bench/files.sh: a real `sandbase serve` on loopback with a
temporary data dir (in --work, so the sandbox's disk image, the source file
and cp's copy share one disk), a --from host template, and the file API
measured beside cp and cat in the same run. curl carries the 1 GiB
transfers (as a user would; Python's http.client tops out below the
server); the small requests use one kept-alive http.client connection."""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse

SIZE = 1 << 30
BLOCK = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(args, data_dir, *argv):
    return subprocess.run([args.bin, *argv, "--data-dir", data_dir], capture_output=True, text=True,
                          check=True).stdout.strip()


class Rss:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, False
        self.base = self.read()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def read(self):
        for line in open(f"/proc/{self.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def loop(self):
        while not self.stop:
            self.peak = max(self.peak, self.read())
            time.sleep(0.05)

    def done(self):
        self.stop = True
        self.t.join()
        return (self.peak - self.base) / 1024


def conn(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=BLOCK)
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    data_dir = os.path.join(args.work, "data")
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "config.json"), "w") as f:
        json.dump({"pool_size": 1, "defaults": {"disk_mb": 4096}}, f)
    cli(args, data_dir, "template", "build", "base", "--from", "host")
    cli(args, data_dir, "org", "create", "bench")
    key = cli(args, data_dir, "key", "create", "--org", "bench")
    port = free_port()
    log = open(os.path.join(args.work, "serve.log"), "ab")
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
                             "--log-format", "json"], stdout=log, stderr=log)
    hdr = {"X-API-Key": key}
    sid = None
    try:
        for _ in range(300):
            try:
                c = conn(port)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        c = conn(port)
        c.request("POST", "/sandboxes", body=json.dumps({"templateID": "base"}),
                  headers=dict(hdr, **{"Content-Type": "application/json"}))
        r = c.getresponse()
        sid = json.loads(r.read())["sandboxID"]
        base = f"/sandboxes/{sid}/filesystem"

        src = os.path.join(args.work, "src.bin")
        with open(src, "wb") as f:
            block = os.urandom(BLOCK)
            for i in range(SIZE // BLOCK):
                f.write(i.to_bytes(8, "little") + block[8:])
        # warm the page cache for every contender alike
        subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)

        # every transfer ends in the page cache (no fsync: the sandbox's disk
        # is an image behind a loop device, whose inner dirty pages no sync
        # of ours reaches); what earlier steps left dirty is flushed before
        # each, untimed
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        subprocess.run(["cp", src, os.path.join(args.work, "copy.bin")], check=True)
        cp_s = time.perf_counter() - t
        os.unlink(os.path.join(args.work, "copy.bin"))

        # curl moves the bytes (Python's http.client is slower than the server)
        def curl(*argv):
            out = subprocess.run(["curl", "-sS", "-o", os.path.join(args.work, "curl.out"), "-w", "%{http_code}",
                                  "-H", f"X-API-Key: {key}", *argv], capture_output=True, text=True, check=True)
            assert out.stdout == "200", (out.stdout, open(os.path.join(args.work, "curl.out")).read()[:500])

        url = f"http://127.0.0.1:{port}{base}"

        def upload_octet():
            curl("-X", "POST", "-T", src, "-H", "Content-Type: application/octet-stream",
                 url + "/upload?path=/home/user/big.bin")

        def upload_multipart():
            curl("-F", f"file=@{src};filename=/home/user/big2.bin", url + "/upload")

        def download():
            subprocess.run(["curl", "-sS", "-f", "-o", os.path.join(args.work, "down.bin"), "-H",
                            f"X-API-Key: {key}", url + "/download?path=/home/user/big.bin"], check=True)

        # E2B's envd routes (what the e2b SDK's files.write / files.read send):
        # the same upload and download under another encoding
        envd_url = f"http://127.0.0.1:{port}/files"

        def envd_upload():
            curl("-X", "POST", "-T", src, "-H", "Content-Type: application/octet-stream",
                 "-H", f"E2b-Sandbox-Id: {sid}", envd_url + "?path=/home/user/big3.bin")

        def envd_download():
            subprocess.run(["curl", "-sS", "-f", "-o", os.path.join(args.work, "down.bin"), "-H",
                            f"E2b-Sandbox-Id: {sid}", envd_url + "?path=/home/user/big3.bin"], check=True)

        def measure(fn):
            subprocess.run(["sync"], check=True)
            rss = Rss(proc.pid)
            t = time.perf_counter()
            fn()
            s = time.perf_counter() - t
            return s, rss.done()

        def remove(path):
            c = conn(port)
            c.request("DELETE", base + "?path=" + urllib.parse.quote(path), headers=hdr)
            assert c.getresponse().status == 204

        results = {}
        results["upload (octet-stream)"] = measure(upload_octet)
        results["download"] = measure(download)
        os.unlink(os.path.join(args.work, "down.bin"))
        remove("/home/user/big.bin")
        results["upload (multipart)"] = measure(upload_multipart)
        remove("/home/user/big2.bin")
        results["envd POST /files (octet-stream)"] = measure(envd_upload)
        results["envd GET /files"] = measure(envd_download)
        os.unlink(os.path.join(args.work, "down.bin"))
        remove("/home/user/big3.bin")

        # small write and read against a synchronous cat of a small file
        c = conn(port)
        small = os.path.join(args.work, "small.txt")
        with open(small, "w") as f:
            f.write("x" * 100)

        def small_write():
            c.request("POST", base, body=json.dumps({"path": "/home/user/small.txt", "text": "x" * 100}),
                      headers=dict(hdr, **{"Content-Type": "application/json"}))
            r = c.getresponse()
            r.read()
            assert r.status == 200

        def small_read():
            c.request("GET", base + "?path=/home/user/small.txt", headers=hdr)
            r = c.getresponse()
            r.read()
            assert r.status == 200

        def cat():
            subprocess.run(["cat", small], stdout=subprocess.DEVNULL, check=True)

        def lat(fn, n=300):
            for _ in range(20):
                fn()
            samples = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t) * 1e6)
            samples.sort()
            return statistics.median(samples), samples[int(n * 0.99)]

        cp_mibs = SIZE / BLOCK / cp_s
        print(f"{'transfer of 1 GiB':34} {'MiB/s':>8} {'x cp':>6} {'serve RSS +MiB':>15}")
        print(f"{'cp (same disk)':34} {cp_mibs:8.0f} {1.0:6.2f} {'':>15}")
        for name, (s, rss) in results.items():
            mibs = SIZE / BLOCK / s
            print(f"{name:34} {mibs:8.0f} {mibs / cp_mibs:6.2f} {rss:15.1f}")
        print()
        print(f"{'100-byte file':34} {'p50 µs':>8} {'p99 µs':>8}")
        for name, fn in (("cat (fork+exec, synchronous)", cat), ("POST /filesystem (write)", small_write),
                         ("GET /filesystem (read)", small_read)):
            p50, p99 = lat(fn)
            print(f"{name:34} {p50:8.0f} {p99:8.0f}")
    finally:
        if sid:     # a graceful stop leaves sandboxes to their shims: delete it first
            c = conn(port)
            c.request("DELETE", f"/sandboxes/{sid}", headers=hdr)
            c.getresponse().read()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
