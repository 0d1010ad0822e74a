"""Driver for bench/network.sh: egress throughput from a sandbox (veth, NAT,
both nftables tables) to a test host in a network namespace of the bench's
own, beside the host's own throughput to the same receiver, same run, same
sender code. Nothing leaves the machine: the uplink is the bench's veth."""
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    data_dir = os.path.join(args.work, "data")
    os.makedirs(data_dir)
    for cmd in (["template", "build", "base", "--from", "host"], ["org", "create", "bench"]):
        subprocess.run([args.bin, *cmd, "--data-dir", data_dir], check=True, capture_output=True)
    key = subprocess.run([args.bin, "key", "create", "--org", "bench", "--data-dir", data_dir], check=True,
                         capture_output=True, text=True).stdout.strip()
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
