"""Sandbox egress (issue 12): veth + NAT + per-sandbox nftables rules, the
allowOut/denyOut rules, the DNS forwarder for allowOut names, and what is
always blocked.

No packet leaves this machine. The "internet" is a test host in a network
namespace this module creates: a veth pair whose host side is the server's
uplink (config network.uplink), addresses from one of the documentation
ranges (TEST-NET-2/3/1, the first that this host neither routes nor reaches
its package mirrors through: in some environments the mirrors themselves sit
at such addresses, and routing that /24 to the test veth would cut this
machine off from them while the tests run), an HTTP server on every address
and a fake DNS server. A private address (10.213.77.2) and the metadata address
(169.254.169.254) are put on the test host too, routed on the host through
the test veth only, so "blocked" below is the rules' doing, not a missing
route. The namespace, the veth (and with it those routes) and the servers'
nft tables (which a stopped server leaves in place, so that sandboxes
outliving it stay fenced) are removed at the end, also after failures."""
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time

import pytest
import requests

from conftest import Client, Server, cli, make_data_dir, private_server

TAG = f"{os.getpid() % 100000:05d}"
NETNS = f"sbt-{TAG}"
UPLINK = f"sbtu{TAG}"           # host side of the test veth: the servers' uplink
PEER = f"sbtp{TAG}"


def _pick_test_net():
    """The first documentation /24 that no route or address of this host
    covers and that holds none of the addresses the package mirrors resolve
    to; None when all are taken."""
    import ipaddress
    taken = []
    for args in (["ip", "-4", "route", "show", "table", "all"], ["ip", "-4", "-o", "addr"]):
        out = subprocess.run(args, capture_output=True, text=True).stdout
        for word in out.split():
            try:
                net = ipaddress.ip_network(word, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0:
                taken.append(net)
    for name in ("deb.debian.org", "registry.npmjs.org", "security.debian.org"):
        try:
            for info in socket.getaddrinfo(name, None, socket.AF_INET):
                taken.append(ipaddress.ip_network(info[4][0]))
        except OSError:
            pass
    for prefix in ("198.51.100", "203.0.113", "192.0.2"):
        net = ipaddress.ip_network(prefix + ".0/24")
        if not any(net.overlaps(t) for t in taken):
            return prefix
    return None


TEST_NET = _pick_test_net()
if TEST_NET is None:
    pytest.skip("every documentation /24 is routed on this host or holds its package mirrors",
                allow_module_level=True)
HOST_SIDE = f"{TEST_NET}.1"
TEST_HOST = f"{TEST_NET}.2"     # answers by IP
NAMED = f"{TEST_NET}.3"         # what allowed.test resolves to
WILD = f"{TEST_NET}.4"          # what a.wild.test resolves to
PRIVATE = "10.213.77.2"
METADATA = "169.254.169.254"
HTTP_PORT = 8080
_ranges = itertools.count(1)
_used_ranges = []               # third octets of the 10.214.N.0/24 ranges handed to servers

DNS_SERVER = textwrap.dedent("""
    import socket, struct, sys
    names = {b"allowed.test": "%s", b"a.wild.test": "%s", b"other.test": "%s", b"wild.test": "%s"}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("%s", 53))
    while True:
        q, addr = s.recvfrom(1500)
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]]); i += q[i] + 1
        name, qend = b".".join(labels).lower(), i + 5
        ip = names.get(name)
        flags = 0x8180 if ip else 0x8183
        head = q[:2] + struct.pack(">HHHHH", flags, 1, 1 if ip else 0, 0, 0)
        ans = b""
        if ip:
            ans = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
        s.sendto(head + q[12:qend] + ans, addr)
""") % (NAMED, WILD, WILD, WILD, TEST_HOST)


def sh(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


def netns(*args, check=True):
    return sh("ip", "netns", "exec", NETNS, *args, check=check)


def tables(netns_path=None):
    prefix = ["nsenter", f"--net={netns_path}"] if netns_path else []
    return sh(*prefix, "nft", "list", "tables", "inet").stdout


def host_table(n):
    """The server's table in the host namespace for range 10.214.n.0/24."""
    return "sandbase_%08x_24" % (0x0AD60000 | n << 8)


def sandbox_netns(srv, sid):
    """/proc/<PID 1>/ns/net of a sandbox (PID 1 is its shim's child)."""
    run = os.path.join(srv.data_dir, "run", "sandboxes", sid)
    with open(os.path.join(run, "shim.pid")) as f:
        shim = int(f.read())
    with open(f"/proc/{shim}/task/{shim}/children") as f:
        init = int(f.read().split()[0])
    return f"/proc/{init}/ns/net"


def links():
    return sh("ip", "-o", "link").stdout


def teardown_test_host(procs):
    for p in procs:
        p.kill()
        p.wait()
    sh("ip", "netns", "del", NETNS, check=False)
    sh("ip", "link", "del", UPLINK, check=False)     # its routes go with it
    for n in _used_ranges:
        sh("nft", "delete", "table", "inet", host_table(n), check=False)


@pytest.fixture(scope="module")
def test_host():
    procs = []
    try:
        sh("ip", "netns", "add", NETNS)
        sh("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", PEER)
        sh("ip", "link", "set", PEER, "netns", NETNS)
        sh("ip", "addr", "add", f"{HOST_SIDE}/24", "dev", UPLINK)
        sh("ip", "link", "set", UPLINK, "up")
        for addr in (f"{TEST_HOST}/24", f"{NAMED}/24", f"{WILD}/24", f"{PRIVATE}/32", f"{METADATA}/32"):
            netns("ip", "addr", "add", addr, "dev", PEER)
        netns("ip", "link", "set", PEER, "up")
        netns("ip", "link", "set", "lo", "up")
        # reachable from the host only through the test veth ("replace": a
        # crashed earlier run may have left the route behind)
        for addr in (PRIVATE, METADATA):
            sh("ip", "route", "replace", f"{addr}/32", "via", TEST_HOST, "dev", UPLINK)
        web = tempfile.mkdtemp(prefix="sbt-web-")
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("test host\n")
        procs.append(subprocess.Popen(["ip", "netns", "exec", NETNS, "python3", "-m", "http.server",
                                       str(HTTP_PORT), "--directory", web],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["ip", "netns", "exec", NETNS, "python3", "-c", DNS_SERVER],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 10
        while True:     # the host reaches the test host directly: the setup works
            try:
                assert requests.get(f"http://{TEST_HOST}:{HTTP_PORT}/", timeout=1).text == "test host\n"
                break
            except requests.RequestException:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        yield
    finally:
        teardown_test_host(procs)
        assert NETNS not in sh("ip", "netns", "list").stdout
        assert UPLINK not in links()


def net_server(org, **network):
    """A private server whose uplink is the test veth, with its own range."""
    n = next(_ranges)
    _used_ranges.append(n)
    cfg = {"uplink": UPLINK, "range": f"10.214.{n}.0/24", "dns_upstream": TEST_HOST}
    cfg.update(network)
    return private_server(org, pool_size=1, network=cfg)


def create(c, **body):
    return c.create(**body)


PROBE = textwrap.dedent("""
    import socket, sys
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        ip = socket.gethostbyname(host)
    except OSError as e:
        print("NODNS", e); sys.exit(0)
    try:
        s = socket.create_connection((ip, port), timeout=float(sys.argv[3]))
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print("OK", ip, data.decode(errors="replace").split("\\r\\n\\r\\n")[-1].strip())
    except OSError as e:
        print("FAIL", ip, type(e).__name__, e)
""")


def probe(c, sid, host, port=HTTP_PORT, timeout=1.5):
    """Connects from inside sid: 'OK <ip> <body>', 'FAIL ...' or 'NODNS ...'."""
    r = c.sh(sid, f"python3 -c '{PROBE}' {host} {port} {timeout}")
    assert r["exitCode"] == 0, r
    return r["stdout"].strip()


def reaches(c, sid, host, port=HTTP_PORT):
    out = probe(c, sid, host, port)
    ok = out.startswith("OK") and out.endswith("test host")
    if not ok:
        print(f"{sid} -> {host}:{port}: {out}")
    return ok


def test_egress_to_the_test_host_by_default(test_host):
    with net_server("net-default") as srv:
        c = srv.client
        sid = create(c)
        info = c.get(f"/sandboxes/{sid}").json()
        assert info["allowInternetAccess"] is True
        assert info["network"]["allowOut"] == [] and info["network"]["denyOut"] == []
        assert info["network"]["address"].startswith("10.214.")
        assert reaches(c, sid, TEST_HOST)
        # NAT: the test host sees the uplink's address, not the sandbox's
        out = c.sh(sid, "cat /etc/resolv.conf; ip -o -4 addr show dev eth0")["stdout"]
        assert "nameserver 10.214." in out and info["network"]["address"] in out


def test_allow_internet_access_false_has_no_interface(test_host):
    with net_server("net-off") as srv:
        c = srv.client
        on = create(c)
        assert reaches(c, on, TEST_HOST)        # the same server does give egress
        for field in ("allow_internet_access", "allowInternetAccess"):
            sid = create(c, **{field: False})
            assert c.get(f"/sandboxes/{sid}").json()["allowInternetAccess"] is False
            assert "eth0" not in c.sh(sid, "ip -o link")["stdout"]
            assert probe(c, sid, TEST_HOST).startswith("FAIL")


def test_default_none_and_template_override(test_host):
    with net_server("net-none", default="none") as srv:
        c = srv.client
        sid = create(c)
        assert c.get(f"/sandboxes/{sid}").json()["allowInternetAccess"] is False
        assert probe(c, sid, TEST_HOST).startswith("FAIL")
        sid = create(c, allow_internet_access=True)
        assert reaches(c, sid, TEST_HOST)
    with net_server("net-tpl") as srv:
        c = srv.client
        path = os.path.join(srv.data_dir, "templates", "base", "template.json")
        with open(path) as f:
            tpl = json.load(f)
        tpl["network"] = "none"
        with open(path, "w") as f:
            json.dump(tpl, f)
        sid = create(c)
        assert c.get(f"/sandboxes/{sid}").json()["allowInternetAccess"] is False
        sid = create(c, allow_internet_access=True)     # the create's word wins
        assert reaches(c, sid, TEST_HOST)


def test_deny_out_cidr_and_ip(test_host):
    with net_server("net-deny") as srv:
        c = srv.client
        sid = create(c, network={"denyOut": [f"{WILD}/30"]})
        assert probe(c, sid, WILD).startswith("FAIL")           # .4 is in the /30
        assert reaches(c, sid, NAMED)                           # .3 is not
        sid = create(c, network={"denyOut": [NAMED]})
        assert reaches(c, sid, TEST_HOST)
        assert probe(c, sid, NAMED).startswith("FAIL")


def test_allow_out_wins_over_deny_out(test_host):
    with net_server("net-allow") as srv:
        c = srv.client
        sid = create(c, network={"denyOut": ["0.0.0.0/0"], "allowOut": [TEST_HOST]})
        assert reaches(c, sid, TEST_HOST)
        assert probe(c, sid, NAMED).startswith("FAIL")
        assert probe(c, sid, "allowed.test").startswith("NODNS")  # DNS answers allowed names only


def test_allow_out_domain_through_the_dns_forwarder(test_host):
    with net_server("net-dns") as srv:
        c = srv.client
        sid = create(c, network={"denyOut": ["0.0.0.0/0"], "allowOut": ["Allowed.Test"]})
        assert c.get(f"/sandboxes/{sid}").json()["network"]["allowOut"] == ["allowed.test"]
        assert probe(c, sid, NAMED).startswith("FAIL")          # not before the lookup
        out = probe(c, sid, "allowed.test")
        assert out == f"OK {NAMED} test host", out
        assert probe(c, sid, TEST_HOST).startswith("FAIL")      # other addresses stay shut
        assert probe(c, sid, "other.test").startswith("NODNS")  # names not allowed are refused
        assert probe(c, sid, WILD).startswith("FAIL")
        sid = create(c, network={"denyOut": ["0.0.0.0/0"], "allowOut": ["*.wild.test"]})
        assert probe(c, sid, "a.wild.test") == f"OK {WILD} test host"
        assert probe(c, sid, "wild.test").startswith("NODNS")   # the wildcard is for names below it
        # without denyOut every name resolves, but only the allowed one is granted by DNS
        sid = create(c, network={"denyOut": [WILD, NAMED], "allowOut": ["allowed.test"]})
        assert probe(c, sid, "allowed.test") == f"OK {NAMED} test host"
        assert probe(c, sid, "other.test").startswith(f"FAIL {WILD}")


class HostListener:
    """A TCP listener on every host address, counting connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


def host_addresses():
    out = sh("ip", "-o", "-4", "addr").stdout.split("\n")
    return [line.split()[3].split("/")[0] for line in out if line.strip() and " lo " not in line]


def test_host_sandboxes_metadata_and_private_ranges_blocked(test_host):
    listener = HostListener()
    try:
        with net_server("net-block") as srv:
            c = srv.client
            everything = ["0.0.0.0/0", PRIVATE, METADATA, "169.254.0.0/16", "10.0.0.0/8"]
            a = create(c, network={"allowOut": everything})
            b = create(c, network={"allowOut": everything})
            addr_b = c.get(f"/sandboxes/{b}").json()["network"]["address"]
            gateway = addr_b.rsplit(".", 1)[0] + ".1"
            api_port = srv.port
            # the host: every address it has, the gateway, the API port and another listener
            for addr in set(host_addresses() + [gateway, HOST_SIDE]):
                for port in (api_port, listener.port):
                    assert probe(c, a, addr, port, timeout=0.7).startswith("FAIL"), (addr, port)
            assert listener.accepted == 0
            # another sandbox: b serves on its address (the host reaches it), a cannot
            c.sh(b, "setsid python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &")
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    requests.get(f"http://{addr_b}:8000/", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.1)
            assert requests.get(f"http://{addr_b}:8000/", timeout=2).status_code == 200
            assert probe(c, a, addr_b, 8000).startswith("FAIL")
            # the metadata address and a private one answer the host, never a sandbox, even allowed
            assert requests.get(f"http://{METADATA}:{HTTP_PORT}/", timeout=2).text == "test host\n"
            assert requests.get(f"http://{PRIVATE}:{HTTP_PORT}/", timeout=2).text == "test host\n"
            assert probe(c, a, METADATA).startswith("FAIL")
            assert probe(c, a, PRIVATE).startswith("FAIL")
            assert reaches(c, a, TEST_HOST)
        # the operator may open a private range
        with net_server("net-private", allow_private=["10.213.77.0/24"]) as srv:
            c = srv.client
            sid = create(c)
            assert reaches(c, sid, PRIVATE)
            assert probe(c, sid, METADATA).startswith("FAIL")
    finally:
        listener.close()


def conntrack_entries(addr):
    with open("/proc/net/nf_conntrack") as f:
        return sum(1 for line in f if f"src={addr} " in line)


def test_rules_removed_at_delete(test_host):
    with net_server("net-delete") as srv:
        c = srv.client
        sid = create(c)
        addr = c.get(f"/sandboxes/{sid}").json()["network"]["address"]
        veth = "sb%08x" % int.from_bytes(socket.inet_aton(addr), "big")
        assert reaches(c, sid, TEST_HOST)
        netns_path = sandbox_netns(srv, sid)
        assert "table inet sandbase\n" in tables(netns_path) and veth in links()
        assert conntrack_entries(addr) > 0      # the connection just made (TIME_WAIT)
        assert c.delete(f"/sandboxes/{sid}").status_code == 204
        assert not os.path.exists(netns_path)   # its namespace, and the table in it, are gone
        assert veth not in links()
        assert conntrack_entries(addr) == 0, [l for l in open("/proc/net/nf_conntrack") if addr + " " in l]
        assert sid not in sh("nft", "list", "ruleset").stdout   # nothing of it on the host
        assert c.get(f"/sandboxes/{sid}").json()["network"]["address"] == addr   # kept in the record


def test_rules_readopted_after_kill_9(test_host):
    with net_server("net-restart") as srv:
        c = srv.client
        kept = create(c, network={"denyOut": [NAMED]})
        lost_rules = create(c, network={"denyOut": [NAMED]})
        assert reaches(c, kept, TEST_HOST) and reaches(c, lost_rules, TEST_HOST)
        srv.stop(signal.SIGKILL)
        table = host_table(_used_ranges[-1])
        assert table in tables()                # left in place: the sandboxes stay fenced
        lost_netns = sandbox_netns(srv, lost_rules)
        sh("nsenter", f"--net={lost_netns}", "nft", "delete", "table", "inet", "sandbase")
        # without its table the sandbox's namespace reaches NAMED (so the check below can fail)
        out = sh("nsenter", f"--net={lost_netns}", "python3", "-c", PROBE, NAMED, str(HTTP_PORT), "1.5").stdout
        assert out.startswith("OK"), out
        srv.start()
        for sid in (kept, lost_rules):
            assert "table inet sandbase\n" in tables(sandbox_netns(srv, sid))
            assert reaches(c, sid, TEST_HOST)
            assert probe(c, sid, NAMED).startswith("FAIL")
        fresh = create(c)           # the re-adopted addresses are not handed out again
        addrs = {c.get(f"/sandboxes/{s}").json()["network"]["address"] for s in (kept, lost_rules, fresh)}
        assert len(addrs) == 3
        assert reaches(c, fresh, TEST_HOST)
        for sid in (kept, lost_rules, fresh):
            netns_path = sandbox_netns(srv, sid)
            assert c.delete(f"/sandboxes/{sid}").status_code == 204
            assert not os.path.exists(netns_path)


@pytest.fixture(scope="module")
def bad_rules_server(test_host):
    with net_server("net-bad") as srv:
        yield srv


@pytest.mark.parametrize("body,names", [
    ({"network": {"denyOut": ["not-a-cidr"]}}, "not-a-cidr"),
    ({"network": {"denyOut": ["example.com"]}}, "example.com"),
    ({"network": {"allowOut": ["10.0.0.1/8"]}}, "10.0.0.1/8"),
    ({"network": {"allowOut": ["bad_name!"]}}, "bad_name!"),
    ({"network": {"allowOut": ["ok.example", "*."]}}, "*."),
    ({"network": {"allowOut": ["1.2.3.4/33"]}}, "1.2.3.4/33"),
    ({"network": {"allowOut": ["2001:db8::1"]}}, "no IPv6 egress"),
    ({"network": {"allowOut": "example.com"}}, "allowOut"),
    ({"network": {"allowOut": [1]}}, "allowOut[0]"),
    ({"network": {"egressProxy": {}}}, "egressProxy"),
    ({"network": {"allowPublicTraffic": "yes"}}, "allowPublicTraffic"),
    ({"network": []}, "network"),
    ({"allow_internet_access": "yes"}, "allow_internet_access"),
    ({"allowInternetAccess": 1}, "allowInternetAccess"),
    ({"allow_internet_access": True, "allowInternetAccess": True}, "not both"),
    ({"allow_internet_access": False, "network": {"allowOut": ["1.2.3.4"]}}, "allowOut"),
])
def test_bad_rules_are_400_naming_the_entry(bad_rules_server, body, names):
    c = bad_rules_server.client
    r = c.post("/sandboxes", json={"templateID": "base", **body})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 400 and names in r.json()["message"], r.text
    assert c.get("/sandboxes").json() == []     # nothing was made


def test_no_uplink_means_no_egress_and_says_so():
    with private_server("net-nouplink", pool_size=1) as srv:
        c = srv.client
        sid = c.create()
        info = c.get(f"/sandboxes/{sid}").json()
        assert info["allowInternetAccess"] is False and "address" not in info["network"]
        assert "eth0" not in c.sh(sid, "ip -o link")["stdout"]
        for body in ({"allow_internet_access": True}, {"network": {"allowOut": ["example.com"]}}):
            r = c.post("/sandboxes", json={"templateID": "base", **body})
            assert r.status_code == 400 and "network.uplink" in r.json()["message"], r.text
        sid = c.create(allow_internet_access=False, network={"denyOut": ["0.0.0.0/0"]})
        assert c.get(f"/sandboxes/{sid}").json()["network"]["denyOut"] == ["0.0.0.0/0"]


def test_an_uplink_that_does_not_exist_stops_the_start():
    data_dir = make_data_dir()
    try:
        cli(data_dir, "template", "build", "base", "--from", "host")
        srv = Server(data_dir, config={"network": {"uplink": "sbnope0"}})
        with pytest.raises(AssertionError, match="serve exited"):
            srv.start()
        assert 'network.uplink "sbnope0" is not a network interface' in srv.log(), srv.log()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


UDP_PROBE = textwrap.dedent("""
    import socket, struct, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.5)
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\\x07allowed\\x04test\\x00" + struct.pack(">HH", 1, 1)
    try:
        s.sendto(q, (sys.argv[1], 53))  # a drop in the sandbox table is EPERM here
        print("OK", len(s.recv(1500)))
    except OSError as e:
        print("FAIL", e)
""")


def test_udp_egress_follows_the_rules(test_host):
    with net_server("net-udp") as srv:
        c = srv.client
        # straight to the test host's DNS server (not the forwarder): plain UDP egress
        sid = create(c)
        r = c.sh(sid, f"python3 -c '{UDP_PROBE}' {TEST_HOST}")
        assert r["stdout"].startswith("OK"), r["stderr"]
        sid = create(c, network={"denyOut": [TEST_HOST]})
        assert c.sh(sid, f"python3 -c '{UDP_PROBE}' {TEST_HOST}")["stdout"].startswith("FAIL")


FORGE = textwrap.dedent("""
    import socket, struct, sys
    gw, ip = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for qid in range(0, 65536, 7):      # answers for allowed.test -> ip, under many ids
        head = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
        q = b"\\x07allowed\\x04test\\x00" + struct.pack(">HH", 1, 1)
        ans = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 600, 4) + socket.inet_aton(ip)
        s.sendto(head + q + ans, (gw, 53))
    print("sent")
""")


def test_forged_dns_answers_grant_nothing(test_host):
    with net_server("net-forge") as srv:
        c = srv.client
        sid = create(c, network={"denyOut": ["0.0.0.0/0"], "allowOut": ["allowed.test"]})
        gateway = c.get(f"/sandboxes/{sid}").json()["network"]["address"].rsplit(".", 1)[0] + ".1"
        assert c.sh(sid, f"python3 -c '{FORGE}' {gateway} {WILD}")["stdout"] == "sent\n"
        # a real lookup in flight while forgeries arrive does not take them either
        c.sh(sid, f"python3 -c '{FORGE}' {gateway} {WILD} & python3 -c 'import socket; socket.gethostbyname(\"allowed.test\")'")
        assert probe(c, sid, WILD).startswith("FAIL")
        assert probe(c, sid, "allowed.test") == f"OK {NAMED} test host"
        assert srv.proc.poll() is None


def test_parallel_creates_get_distinct_addresses(test_host):
    import concurrent.futures
    with net_server("net-parallel") as srv:
        c = srv.client
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            ids = list(ex.map(lambda _: create(c), range(8)))
        addrs = {c.get(f"/sandboxes/{sid}").json()["network"]["address"] for sid in ids}
        assert len(addrs) == 8
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            assert all(ex.map(lambda sid: reaches(c, sid, TEST_HOST), ids))


def test_resolv_conf_symlink_in_the_template_is_replaced_not_followed(test_host):
    data_dir = make_data_dir()
    n = next(_ranges)
    _used_ranges.append(n)
    srv = None
    try:
        cli(data_dir, "template", "build", "base", "--from", "host")
        etc = os.path.join(data_dir, "templates", "base", "rootfs", "etc")
        os.unlink(os.path.join(etc, "resolv.conf"))
        os.symlink("/etc/hostname", os.path.join(etc, "resolv.conf"))   # as systemd's stub link would
        srv = Server(data_dir, config={"pool_size": 1, "network": {
            "uplink": UPLINK, "range": f"10.214.{n}.0/24", "dns_upstream": TEST_HOST}}).start()
        from conftest import Client
        c = Client(srv, srv.new_key("net-resolv"))
        sid = create(c, network={"denyOut": ["0.0.0.0/0"], "allowOut": ["allowed.test"]})
        out = c.sh(sid, "test -L /etc/resolv.conf && echo link; cat /etc/resolv.conf; cat /etc/hostname")
        assert out["stdout"].startswith(f"nameserver 10.214.{n}.1\n"), out
        assert out["stdout"].count("nameserver") == 1, out      # /etc/hostname was not written to
        assert probe(c, sid, "allowed.test") == f"OK {NAMED} test host"
        assert os.readlink(os.path.join(etc, "resolv.conf")) == "/etc/hostname"   # the template is untouched
        c.delete(f"/sandboxes/{sid}")
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_ports_of_a_sandbox_with_egress(test_host):
    """The port proxy (test_ports.py) with a veth in the sandbox: it still
    goes to the sandbox's own loopback (which the sandbox's rules never
    drop, even denyOut 0.0.0.0/0), and a server bound to the sandbox's eth0
    address alone is not what it reaches."""
    with net_server("net-ports") as srv:
        c = srv.client
        sid = c.create(network={"denyOut": ["0.0.0.0/0"]})
        assert c.get(f"/sandboxes/{sid}").json()["allowInternetAccess"] is True
        script = ("import http.server, sys\n"
                  "class H(http.server.BaseHTTPRequestHandler):\n"
                  "    def do_GET(self):\n"
                  "        body = sys.argv[1].encode()\n"
                  "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
                  "        self.end_headers(); self.wfile.write(body)\n"
                  "http.server.HTTPServer((sys.argv[2], int(sys.argv[3])), H).serve_forever()\n")
        address = c.get(f"/sandboxes/{sid}").json()["network"]["address"]
        for body, bind, port in (("any", "0.0.0.0", "8000"), ("eth0", address, "8001")):
            assert c.run(sid, "python3", "-c", script, body, bind, port, background=True).status_code == 202
        deadline = time.time() + 20
        while True:
            r = requests.get(srv.url + "/", headers={"Host": f"8000-{sid}.localhost"}, timeout=10)
            if r.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 200 and r.text == "any", r.text
        assert c.get(f"/sandboxes/{sid}/ports/8000/").text == "any"
        r = requests.get(srv.url + "/", headers={"Host": f"8001-{sid}.localhost"}, timeout=10)
        assert r.status_code == 502 and "nothing listens on port 8001" in r.json()["message"], r.text


# ---- PUT /sandboxes/:id/network (E2B's sbx.updateNetwork) ----

def put_network(c, sid, body):
    return c.request("PUT", f"/sandboxes/{sid}/network", json=body)


def update(c, sid, body):
    r = put_network(c, sid, body)
    assert r.status_code == 204, r.text
    return r


HOLDER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(4)
    out = open(sys.argv[3], "ab", buffering=0)
    while True:
        conn, _ = s.accept()
        while True:
            data = conn.recv(4096)
            if not data:
                break
            out.write(data)
        conn.close()
""")

# In the sandbox: one TCP connection held open; a line sent at once, then
# one more each time the file sys.argv[3] appears (the test creates it).
HELD = textwrap.dedent("""
    import os, socket, sys, time
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    s.sendall(b"before\\n")
    n = 0
    while True:
        if os.path.exists(sys.argv[3]):
            os.unlink(sys.argv[3])
            n += 1
            try:
                s.sendall(b"after%d\\n" % n)
            except OSError:
                pass
        time.sleep(0.05)
""")


class Holder:
    """A TCP server on the test host that keeps every connection open and
    appends what it receives to a file."""

    def __init__(self, port=9009):
        self.port = port
        fd, self.path = tempfile.mkstemp(prefix="sbt-held-")
        os.close(fd)
        self.proc = subprocess.Popen(["ip", "netns", "exec", NETNS, "python3", "-c", HOLDER, TEST_HOST,
                                      str(port), self.path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            if netns("python3", "-c", f"import socket; socket.create_connection(('{TEST_HOST}', {port}), 1)",
                     check=False).returncode == 0:
                break
            assert time.time() < deadline, "the holder on the test host did not start"
            time.sleep(0.1)

    def received(self):
        with open(self.path) as f:
            return f.read()

    def wait_for(self, text, timeout=5):
        deadline = time.time() + timeout
        while text not in self.received():
            if time.time() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.unlink(self.path)


def e2b_client(srv, sandbase_key):
    """Speaks as E2B's SDK does: X-API-KEY with the key written e2b_..."""
    c = Client(srv, "e2b_" + sandbase_key[len("sk-sb-"):])
    del c.session.headers["Authorization"]
    c.session.headers["X-API-KEY"] = c.key
    return c


def updated_events(c, sid):
    return [e for e in c.get(f"/events/sandboxes/{sid}").json() if e["type"] == "sandbox.lifecycle.updated"]


def test_update_network_closes_at_once_cuts_open_connections_and_reopens(test_host):
    holder = Holder()
    try:
        with net_server("net-upd") as srv:
            c = srv.client
            sid = create(c)
            assert reaches(c, sid, TEST_HOST)
            r = c.run(sid, "python3", "-c", HELD, TEST_HOST, str(holder.port), "/tmp/go", background=True)
            assert r.status_code == 202, r.text
            assert holder.wait_for("before\n")
            c.sh(sid, "touch /tmp/go")
            assert holder.wait_for("after1\n")          # the held connection carries data

            update(c, sid, {"denyOut": ["0.0.0.0/0"]})
            for _ in range(3):                          # every new connection, from the first on
                assert probe(c, sid, TEST_HOST, timeout=0.7).startswith("FAIL")
            assert probe(c, sid, NAMED, timeout=0.7).startswith("FAIL")
            c.sh(sid, "touch /tmp/go")                  # the open connection is cut too
            assert not holder.wait_for("after2\n", timeout=3), holder.received()
            info = c.get(f"/sandboxes/{sid}").json()
            assert info["network"]["denyOut"] == ["0.0.0.0/0"] and info["network"]["allowOut"] == []
            assert info["allowInternetAccess"] is True and info["network"]["address"].startswith("10.214.")
            events = updated_events(c, sid)
            assert len(events) == 1
            assert events[0]["data"]["network"]["denyOut"] == ["0.0.0.0/0"]
            assert "address" not in events[0]["data"]["network"]

            update(c, sid, {})                          # what is left out is cleared: open again
            assert reaches(c, sid, TEST_HOST) and reaches(c, sid, NAMED)
            assert c.get(f"/sandboxes/{sid}").json()["network"]["denyOut"] == []
            assert len(updated_events(c, sid)) == 2
            # allowed again, the connection that was held is picked up where it stalled
            c.sh(sid, "touch /tmp/go")
            assert holder.wait_for("after3\n", timeout=10), holder.received()
    finally:
        holder.close()


def test_update_network_allow_out_name_and_allow_internet_access_false(test_host):
    with net_server("net-upd-dns") as srv:
        c = srv.client
        sid = create(c)
        assert probe(c, sid, "other.test").startswith(f"OK {WILD}")
        update(c, sid, {"denyOut": ["0.0.0.0/0"], "allowOut": ["allowed.test"]})
        assert probe(c, sid, "allowed.test") == f"OK {NAMED} test host"
        assert probe(c, sid, TEST_HOST).startswith("FAIL")
        assert probe(c, sid, "other.test").startswith("NODNS")
        # the name taken away: its DNS grant goes with it
        update(c, sid, {"allowInternetAccess": False, "allowOut": [TEST_HOST]})
        assert probe(c, sid, NAMED).startswith("FAIL")
        assert probe(c, sid, "allowed.test").startswith("NODNS")
        assert reaches(c, sid, TEST_HOST)               # allowOut wins over false's 0.0.0.0/0
        info = c.get(f"/sandboxes/{sid}").json()
        assert info["allowInternetAccess"] is False
        assert info["network"]["denyOut"] == ["0.0.0.0/0"] and info["network"]["allowOut"] == [TEST_HOST]
        assert "eth0" in c.sh(sid, "ip -o link")["stdout"]      # the interface stays, shut


def test_update_network_bad_entry_changes_nothing_and_other_orgs_get_404(test_host):
    with net_server("net-upd-bad") as srv:
        c = srv.client
        sid = create(c, network={"denyOut": [NAMED]})
        before = c.get(f"/sandboxes/{sid}").json()["network"]
        for body, names in (({"denyOut": [TEST_HOST, "not-a-cidr"]}, "not-a-cidr"),
                            ({"allowOut": ["ok.test", "bad_name!"]}, "bad_name!"),
                            ({"denyOut": ["example.com"]}, "example.com"),
                            ({"allowOut": ["10.0.0.1/8"]}, "10.0.0.1/8"),
                            ({"denyOut": "0.0.0.0/0"}, "denyOut"),
                            ({"egressProxy": {"address": "127.0.0.1:1080"}}, "egressProxy"),
                            ({"network": {"denyOut": ["0.0.0.0/0"]}}, "network"),
                            ({"allowInternetAccess": "no"}, "allowInternetAccess"),
                            ([], "object")):
            r = put_network(c, sid, body)
            assert r.status_code == 400 and names in r.json()["message"], (body, r.text)
        r = c.request("PUT", f"/sandboxes/{sid}/network", data="")
        assert r.status_code == 400, r.text             # no body is not "clear everything"
        assert c.get(f"/sandboxes/{sid}").json()["network"] == before
        assert reaches(c, sid, TEST_HOST)               # the old rules still hold, both ways
        assert probe(c, sid, NAMED).startswith("FAIL")
        assert updated_events(c, sid) == []
        # another org's sandbox and an unknown one: 404, nothing changes
        other = Client(srv, srv.new_key("net-upd-other"))
        for who, target in ((other, sid), (c, "sbx_aaaaaaaaaaaaaaaaaaaa")):
            r = put_network(who, target, {"denyOut": [TEST_HOST]})
            assert r.status_code == 404 and "sandbox not found" in r.json()["message"], r.text
        r = put_network(c, "nope", {})
        assert r.status_code == 400, r.text
        assert reaches(c, sid, TEST_HOST)
        # E2B's dialect (a key written e2b_...) is served by the same update
        e2b = e2b_client(srv, c.key)
        r = put_network(e2b, sid, {"allow_internet_access": True, "denyOut": [TEST_HOST]})
        assert r.status_code == 204, r.text
        assert probe(c, sid, TEST_HOST).startswith("FAIL") and reaches(c, sid, NAMED)
        r = put_network(e2b_client(srv, other.key), sid, {})
        assert r.status_code == 404 and r.json()["code"] == 404, r.text
        assert c.delete(f"/sandboxes/{sid}").status_code == 204
        r = put_network(c, sid, {})
        assert r.status_code == 404 and "stopped" in r.json()["message"], r.text


def test_update_network_cannot_open_what_is_always_blocked(test_host):
    with net_server("net-upd-block") as srv:
        c = srv.client
        sid = create(c, network={"denyOut": ["0.0.0.0/0"]})
        gateway = c.get(f"/sandboxes/{sid}").json()["network"]["address"].rsplit(".", 1)[0] + ".1"
        update(c, sid, {"allowOut": ["0.0.0.0/0", PRIVATE, METADATA, "169.254.0.0/16", "10.0.0.0/8", gateway]})
        assert reaches(c, sid, TEST_HOST)               # the update took effect ...
        assert probe(c, sid, METADATA).startswith("FAIL")   # ... and these stay shut
        assert probe(c, sid, PRIVATE).startswith("FAIL")
        for port in (srv.port, HTTP_PORT):
            assert probe(c, sid, gateway, port, timeout=0.7).startswith("FAIL")
            assert probe(c, sid, HOST_SIDE, port, timeout=0.7).startswith("FAIL")
        other = create(c)
        addr = c.get(f"/sandboxes/{other}").json()["network"]["address"]
        c.sh(other, "setsid python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &")
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                requests.get(f"http://{addr}:8000/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        assert requests.get(f"http://{addr}:8000/", timeout=2).status_code == 200
        update(c, sid, {"allowOut": [f"{addr}/32", "10.214.0.0/16"]})
        assert probe(c, sid, addr, 8000).startswith("FAIL")


def test_update_network_gives_egress_to_a_sandbox_that_had_none(test_host):
    with net_server("net-upd-attach") as srv:
        c = srv.client
        sid = create(c, allow_internet_access=False)
        assert "eth0" not in c.sh(sid, "ip -o link")["stdout"]
        update(c, sid, {"allow_internet_access": False})    # still nothing may go out: no interface
        assert "eth0" not in c.sh(sid, "ip -o link")["stdout"]
        assert "address" not in c.get(f"/sandboxes/{sid}").json()["network"]
        update(c, sid, {"denyOut": [NAMED]})
        info = c.get(f"/sandboxes/{sid}").json()
        assert info["allowInternetAccess"] is True and info["network"]["address"].startswith("10.214.")
        assert "eth0" in c.sh(sid, "ip -o link")["stdout"]
        assert reaches(c, sid, TEST_HOST) and probe(c, sid, NAMED).startswith("FAIL")
        assert probe(c, sid, "allowed.test").startswith(f"FAIL {NAMED}")  # its resolver is the forwarder
        fresh = create(c)           # the address it took is not handed out again
        assert c.get(f"/sandboxes/{fresh}").json()["network"]["address"] != info["network"]["address"]
        netns_path = sandbox_netns(srv, sid)
        veth = "sb%08x" % int.from_bytes(socket.inet_aton(info["network"]["address"]), "big")
        assert veth in links()
        assert c.delete(f"/sandboxes/{sid}").status_code == 204
        assert veth not in links() and not os.path.exists(netns_path)


def test_update_network_of_a_paused_sandbox_holds_when_it_resumes(test_host):
    with net_server("net-upd-pause") as srv:
        c = srv.client
        sid = create(c)
        assert reaches(c, sid, TEST_HOST)
        assert c.post(f"/sandboxes/{sid}/pause").status_code == 204
        update(c, sid, {"denyOut": [TEST_HOST]})
        assert c.get(f"/sandboxes/{sid}").json()["status"] == "paused"
        assert c.post(f"/sandboxes/{sid}/connect", json={}).status_code in (200, 201)
        assert probe(c, sid, TEST_HOST).startswith("FAIL") and reaches(c, sid, NAMED)


def test_updated_rules_survive_a_restart(test_host):
    with net_server("net-upd-restart") as srv:
        c = srv.client
        kept = create(c)
        reinstalled = create(c)
        for sid in (kept, reinstalled):
            update(c, sid, {"denyOut": ["0.0.0.0/0"], "allowOut": ["allowed.test"]})
        srv.stop()                                      # a graceful stop leaves sandboxes to their shims
        srv.start()
        assert probe(c, kept, TEST_HOST).startswith("FAIL")
        assert probe(c, kept, "other.test").startswith("NODNS")     # its DNS registration is the new one
        assert probe(c, kept, "allowed.test") == f"OK {NAMED} test host"
        srv.stop(signal.SIGKILL)
        # without its table, the restart installs one from the row: the row holds the update
        sh("nsenter", f"--net={sandbox_netns(srv, reinstalled)}", "nft", "delete", "table", "inet", "sandbase")
        srv.start()
        assert "table inet sandbase\n" in tables(sandbox_netns(srv, reinstalled))
        for sid in (kept, reinstalled):
            assert probe(c, sid, TEST_HOST).startswith("FAIL")
            assert probe(c, sid, "other.test").startswith("NODNS")
            assert probe(c, sid, "allowed.test") == f"OK {NAMED} test host"
        update(c, reinstalled, {})                      # and it can be updated again after the restart
        assert reaches(c, reinstalled, TEST_HOST)


def test_e2b_sdk_update_network(test_host):
    """tests/e2b/network.test.mjs: the unmodified e2b SDK's updateNetwork
    against a server whose uplink is the test host."""
    e2b_dir = os.path.join(os.path.dirname(__file__), "..", "e2b")
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/install-deps"
    assert os.path.isdir(os.path.join(e2b_dir, "node_modules", "e2b")), \
        "the e2b SDK is not installed: run scripts/install-deps (npm ci in tests/e2b)"
    with net_server("net-upd-sdk") as srv:
        key = srv.client.key
        env = dict(os.environ, E2B_API_URL=srv.url, E2B_SANDBOX_URL=srv.url,
                   E2B_API_KEY="e2b_" + key[len("sk-sb-"):], TEST_HOST=TEST_HOST, NAMED=NAMED)
        proc = subprocess.run([node, "--test", "--test-reporter=spec", "network.test.mjs"], cwd=e2b_dir,
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:] + srv.log()[-5000:]
        assert "pass 4\n" in proc.stdout and "fail 0\n" in proc.stdout, proc.stdout  # none skipped
