"""The isolation promises, checked from inside real sandboxes (the list in
shared/reference/isolation-anchors.md section (c)): capabilities, no_new_privs,
seccomp, blocked syscalls, read-only kernel interfaces, no host paths or
processes, sandbox-to-sandbox isolation, limits that hold while the server
keeps answering, no network beyond loopback, and clean teardown."""
import os
import threading
import time

import pytest
import requests

PROBE = r'''
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    fn = getattr(libc, name)
    rc = fn(*args)
    return 0 if rc != -1 else ctypes.get_errno()
'''


def status_fields(client, sandbox, **kw):
    text = client.sh(sandbox, "cat /proc/self/status", **kw)["stdout"]
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_default_user_has_no_capabilities(org_a, sandbox):
    st = status_fields(org_a, sandbox)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap].strip(), 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2"
    assert st["Uid"].split()[0] == "1000"


def test_root_gets_only_the_container_set(org_a, sandbox):
    st = status_fields(org_a, sandbox, user="root")
    eff = int(st["CapEff"].strip(), 16)
    bnd = int(st["CapBnd"].strip(), 16)
    CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN = 21, 19, 16, 12
    for cap in (CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN):
        assert not eff & (1 << cap) and not bnd & (1 << cap)
    assert eff != 0
    assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2"


@pytest.mark.parametrize("user", ["user", "root"])
def test_dangerous_syscalls_are_blocked(org_a, sandbox, user):
    probe = PROBE + r'''
CLONE_NEWUSER = 0x10000000
checks = {
  "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
  "unshare": call("unshare", CLONE_NEWUSER),
  "setns": call("setns", 0, 0),
  "keyctl": call("syscall", 250, 0, 0, 0, 0),        # keyctl
  "bpf": call("syscall", 321, 0, 0, 0),              # bpf
  "perf_event_open": call("syscall", 298, 0, 0, -1, -1, 0),
  "ptrace": call("ptrace", 16, 1, 0, 0),            # PTRACE_ATTACH to pid 1
  "clone3": call("syscall", 435, 0, 0),
  "tiocsti": call("ioctl", 0, 0x5412, b"x"),
  "tiocsti_high": call("ioctl", 0, ctypes.c_ulong(0x5412 | (1 << 32)), b"x"),
}
for k, v in checks.items(): print(k, errno.errorcode.get(v, v))
'''
    out = org_a.run(sandbox, "python3", "-c", probe, user=user).json()
    res = dict(line.split() for line in out["stdout"].splitlines())
    for name in ("mount", "unshare", "setns", "keyctl", "bpf", "perf_event_open", "ptrace",
                 "tiocsti", "tiocsti_high"):
        assert res[name] in ("EPERM", "EACCES"), (name, res[name])
    assert res["clone3"] == "ENOSYS"


def test_kernel_interfaces_are_read_only(org_a, sandbox):
    script = ("echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo W1; "
              "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo W2; "
              "echo x > /sys/kernel/uevent_helper 2>/dev/null && echo W3; "
              "cat /proc/kcore 2>/dev/null | head -c 1 | wc -c; "
              "cat /proc/keys 2>/dev/null | wc -c")
    for user in ("user", "root"):
        out = org_a.sh(sandbox, script, user=user)["stdout"].split()
        assert "W1" not in out and "W2" not in out and "W3" not in out
        assert out[-2:] == ["0", "0"]


def test_no_host_paths_or_processes(org_a, sandbox):
    marker = f"/tmp/host-marker-{os.getpid()}"
    open(marker, "w").write("host secret")
    try:
        out = org_a.sh(sandbox, f"cat {marker} 2>/dev/null; ls /root 2>/dev/null; "
                                "ls /proc | grep -E '^[0-9]+$' | wc -l; ls /home; hostname", user="root")
        lines = out["stdout"].split()
        assert "host" not in out["stdout"]
        assert int(lines[-3]) < 10, "only the sandbox's own processes are visible"
        assert lines[-2] == "user"
        assert lines[-1] == sandbox
        procs = org_a.sh(sandbox, "ps -eo pid,comm")["stdout"]
        assert "sandbase" not in procs and "pytest" not in procs and "python3 -m" not in procs
    finally:
        os.unlink(marker)


def test_only_loopback_network(org_a, sandbox):
    probe = PROBE + r'''
print(sorted(os.listdir("/sys/class/net")))
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("1.1.1.1", 80)); print("connected")
except OSError as e:
    print("blocked", errno.errorcode.get(e.errno, e.errno))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); print("loopback ok")
'''
    out = org_a.run(sandbox, "python3", "-c", probe).json()["stdout"].splitlines()
    assert out[0] == "['lo']"
    assert out[1].startswith("blocked ENETUNREACH")
    assert out[2] == "loopback ok"


def test_sandboxes_cannot_see_each_other(org_a):
    a = org_a.create()
    b = org_a.create()
    try:
        org_a.sh(a, "echo secret > /tmp/a-file; echo shm > /dev/shm/a-shm; "
                    "setsid sleep 300 >/dev/null 2>&1 &")
        abstract = ("import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('\\0sb-abstract'); "
                    "s.listen(1); time.sleep(300)")
        org_a.run(a, "/bin/sh", "-c", f"setsid python3 -c \"{abstract}\" >/dev/null 2>&1 &")
        time.sleep(0.3)
        out = org_a.sh(b, "ls /tmp/a-file /dev/shm/a-shm 2>&1; ps -eo comm | grep -c sleep; "
                          "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); "
                          "s.connect('\\0sb-abstract')\" 2>&1 | tail -1")
        text = out["stdout"]
        assert "No such file" in text
        assert "\n0\n" in text
        assert "ConnectionRefusedError" in text or "FileNotFoundError" in text
    finally:
        org_a.delete(f"/sandboxes/{a}")
        org_a.delete(f"/sandboxes/{b}")


def keep_asking(server, stop, failures):
    while not stop.is_set():
        try:
            t0 = time.time()
            r = requests.get(server.url + "/health", timeout=5)
            if r.status_code != 200 or time.time() - t0 > 2:
                failures.append(time.time() - t0)
        except requests.RequestException as e:
            failures.append(str(e))
        time.sleep(0.05)


@pytest.mark.parametrize("hog", ["forkbomb", "memory", "disk"])
def test_hogs_are_contained_and_the_server_answers(org_a, hog):
    sid = org_a.create()
    other = org_a.create()
    stop, failures = threading.Event(), []
    watcher = threading.Thread(target=keep_asking, args=(org_a.server, stop, failures))
    watcher.start()
    try:
        if hog == "forkbomb":
            r = org_a.run(sid, "/bin/sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 3", timeout=8)
            assert r.status_code in (200, 502)
            count = int(open_cgroup_pids(sid))
            assert count <= 512
        elif hog == "memory":
            r = org_a.run(sid, "python3", "-c", "x = b'x' * (2 * 1024**3)")
            assert r.json()["oomKilled"] is True
        else:
            r = org_a.run(sid, "/bin/sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=4000 2>&1; "
                                                "df -m /tmp | tail -1", timeout=60)
            out = r.json()["stdout"]
            assert "No space left on device" in out
        assert org_a.sh(other, "echo fine")["stdout"] == "fine\n"
    finally:
        stop.set()
        watcher.join()
        org_a.delete(f"/sandboxes/{sid}")
        org_a.delete(f"/sandboxes/{other}")
    assert not failures, failures


def open_cgroup_pids(sid):
    for path in (f"/sys/fs/cgroup/pids/sandbase/{sid}/pids.current",
                 f"/sys/fs/cgroup/sandbase/{sid}/pids.current"):
        if os.path.exists(path):
            return open(path).read().strip()
    return "0"


def test_files_written_stay_in_the_sandbox(org_a, sandbox):
    org_a.sh(sandbox, "echo mine > /workspace/f; echo t > /tmp/t")
    tpl_root = os.path.join(org_a.server.data_dir, "templates", "base", "rootfs")
    assert not os.path.exists(os.path.join(tpl_root, "workspace", "f"))
    assert not os.path.exists(os.path.join(tpl_root, "tmp", "t"))
    other = org_a.create()
    try:
        assert org_a.sh(other, "cat /workspace/f 2>&1")["stdout"].endswith("No such file or directory\n")
    finally:
        org_a.delete(f"/sandboxes/{other}")
