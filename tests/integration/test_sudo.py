"""Per-template sudo (template.json "sudo", docs/SECURITY.md), in a real
`--from debian` template, which carries sudo and user's NOPASSWD entry as
E2B's templates do: `user` becomes root with `sudo -n`, without a password
and without a word on stderr; the same rootfs with "sudo": false keeps
no_new_privs, and sudo is refused; and root reached through sudo is still
confined: test_security.py's escape checks pass in the sudo template (run
as the API's root and through sudo), and mount, unshare, setns, module
loading, host files and host processes stay out of reach.

Slow: one debootstrap (about 1.5 minutes), shared by the module."""
import json
import os
import shutil
import subprocess

import pytest

import test_security
from conftest import ROOT, Client, Server, cli, make_data_dir

pytestmark = pytest.mark.debootstrap

PROBE = test_security.PROBE + r'''
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
checks = {
  "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
  "umount": call("umount2", b"/proc", 2),
  "unshare_user": call("unshare", CLONE_NEWUSER),
  "unshare_mnt": call("unshare", CLONE_NEWNS),
  "unshare_net": call("unshare", CLONE_NEWNET),
  "setns": call("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0),
  "init_module": call("syscall", 175, 0, 0, b""),
  "finit_module": call("syscall", 313, os.open("/etc/hostname", os.O_RDONLY), b"", 0),
  "delete_module": call("syscall", 176, b"loop", 0),
  "sethostname": call("sethostname", b"evil", 4),
  "reboot": call("syscall", 169, 0xfee1dead, 672274793, 0x1234567, 0),
}
for k, v in checks.items(): print(k, errno.errorcode.get(v, v))
'''
REFUSED = {"EPERM", "EACCES"}


@pytest.fixture(scope="module")
def deb():
    """A server whose `base` is a debian template (python3 for the probes,
    procps for ps; sudo comes with every debian build)."""
    data_dir = make_data_dir()
    out = cli(data_dir, "template", "build", "base", "--from", "debian", "--packages", "python3,procps")
    assert "built template base" in out.stdout
    srv = Server(data_dir, config={"pool_size": 0}).start()
    client = Client(srv, srv.new_key("sudo"))
    client.tpl_json = os.path.join(data_dir, "templates", "base", "template.json")
    try:
        yield client
    finally:
        for sb in client.get("/sandboxes?status=running,paused").json():
            client.delete(f"/sandboxes/{sb['sandboxID']}")
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def sbx(deb):
    sid = deb.create()
    yield sid
    deb.delete(f"/sandboxes/{sid}")


def status(client, sid, *argv, **kw):
    r = client.run(sid, *argv, "cat", "/proc/self/status", **kw) if argv else \
        client.run(sid, "cat", "/proc/self/status", **kw)
    assert r.status_code == 200 and r.json()["exitCode"] == 0, r.text
    return {k: v.strip() for k, v in (line.split(":\t", 1) for line in r.json()["stdout"].splitlines()
                                      if ":\t" in line)}


def test_the_debian_template_says_sudo_and_carries_the_sudoers_entry(deb):
    tpl = json.load(open(deb.tpl_json))
    assert tpl["sudo"] is True and "sudo" in tpl["packages"]
    rootfs = os.path.join(os.path.dirname(deb.tpl_json), "rootfs")
    entry = os.path.join(rootfs, "etc", "sudoers.d", "sandbase-user")
    st = os.stat(entry)
    assert (st.st_mode & 0o7777, st.st_uid) == (0o440, 100000)     # root's inside the sandbox
    assert open(entry).read() == "user ALL=(ALL:ALL) NOPASSWD: ALL\n"
    sudo = os.stat(os.path.join(rootfs, "usr", "bin", "sudo"))
    assert sudo.st_mode & 0o4000 and sudo.st_uid == 100000


def test_user_runs_sudo_without_a_password(deb, sbx):
    out = deb.sh(sbx, "id -un; sudo -n true && echo nopasswd; sudo echo hi; sudo id -u; sudo -n -u user id -un")
    assert out["exitCode"] == 0, out
    assert out["stdout"] == "user\nnopasswd\nhi\n0\nuser\n"
    assert out["stderr"] == ""      # no password prompt, no "unable to resolve host"
    # what E2B code does with it: root's files, as root
    out = deb.sh(sbx, "sudo touch /etc/made-by-sudo && stat -c %U /etc/made-by-sudo; "
                      "sudo apt-get --version | head -1")
    assert out["stdout"].startswith("root\napt "), out


def test_root_through_sudo_holds_what_the_apis_root_holds(deb, sbx):
    user = status(deb, sbx)
    root = status(deb, sbx, user="root")
    via_sudo = status(deb, sbx, "sudo")
    # user: nothing now, no no_new_privs, root's set as the bound a setuid exec can reach
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(user[cap], 16) == 0, (cap, user)
    assert user["NoNewPrivs"] == "0" and user["Seccomp"] == "2" and user["Uid"].split()[0] == "1000"
    assert user["CapBnd"] == root["CapBnd"] != "0000000000000000"
    # sudo's root is the API's root: the same capabilities, the same filter, nothing more
    assert via_sudo["Uid"].split()[0] == "0"
    for field in ("CapPrm", "CapEff", "CapBnd", "Seccomp"):
        assert via_sudo[field] == root[field], (field, via_sudo, root)
    CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN = 21, 19, 16, 12
    for cap in (CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN):
        assert not int(via_sudo["CapEff"], 16) & (1 << cap) and not int(via_sudo["CapBnd"], 16) & (1 << cap)


@pytest.mark.parametrize("how", ["sudo", "root", "user"])
def test_escapes_are_refused_in_a_sudo_template(deb, sbx, how):
    argv = ["sudo", "python3", "-c", PROBE] if how == "sudo" else ["python3", "-c", PROBE]
    r = deb.run(sbx, *argv, **({"user": "root"} if how == "root" else {}))
    assert r.status_code == 200 and r.json()["exitCode"] == 0, r.text
    res = dict(line.split() for line in r.json()["stdout"].splitlines())
    assert set(res) >= {"mount", "init_module", "reboot"}, res
    for name, code in res.items():
        assert code in REFUSED, (how, name, code)


def test_host_files_and_processes_stay_out_of_sudos_reach(deb, sbx):
    marker = f"/tmp/sudo-host-marker-{os.getpid()}"
    with open(marker, "w") as f:
        f.write("host secret")
    try:
        out = deb.sh(sbx, f"sudo cat {marker} /proc/1/root{marker} 2>/dev/null; "
                          "sudo ls /proc | grep -cE '^[0-9]+$'; sudo ps -eo comm; "
                          "sudo mount -t tmpfs none /mnt 2>&1; sudo hostname evil 2>&1; hostname")
        text = out["stdout"]
        assert "host secret" not in text
        lines = text.splitlines()
        assert int(lines[0]) < 10, "only the sandbox's own processes are visible"
        assert "sandbase" not in text and "pytest" not in text
        assert "permission denied" in text.lower() or "not permitted" in text.lower()
        assert lines[-1] == sbx
        # the template is untouched by root's writes
        deb.sh(sbx, "sudo sh -c 'echo x > /usr/bin/sudo-was-here'")
        rootfs = os.path.join(os.path.dirname(deb.tpl_json), "rootfs")
        assert not os.path.exists(os.path.join(rootfs, "usr", "bin", "sudo-was-here"))
    finally:
        os.unlink(marker)


# test_security.py's own checks, against the sudo template's sandboxes
@pytest.mark.parametrize("check,args", [
    ("test_dangerous_syscalls_are_blocked", ("user",)),
    ("test_dangerous_syscalls_are_blocked", ("root",)),
    ("test_kernel_interfaces_are_read_only", ()),
    ("test_no_host_paths_or_processes", ()),
    ("test_only_loopback_network", ()),
    ("test_files_written_stay_in_the_sandbox", ()),
])
def test_security_checks_hold_in_a_sudo_template(deb, sbx, check, args):
    getattr(test_security, check)(deb, sbx, *args)


def test_sandboxes_cannot_see_each_other_in_a_sudo_template(deb):
    test_security.test_sandboxes_cannot_see_each_other(deb)


def test_without_sudo_in_template_json_no_new_privs_refuses_sudo(deb):
    """The same rootfs, sudo and sudoers entry included, with "sudo": false:
    the flag, not the files, decides."""
    tpl = json.load(open(deb.tpl_json))
    tpl["sudo"] = False
    with open(deb.tpl_json, "w") as f:
        json.dump(tpl, f)
    try:
        sid = deb.create()
        try:
            st = status(deb, sid)
            assert st["NoNewPrivs"] == "1" and int(st["CapBnd"], 16) == 0, st
            out = deb.sh(sid, "sudo -n true; echo rc=$?; sudo echo hi")
            assert "rc=1" in out["stdout"] and "hi" not in out["stdout"], out
            assert "no new privileges" in out["stderr"], out
            assert status(deb, sid, user="root")["NoNewPrivs"] == "1"
        finally:
            deb.delete(f"/sandboxes/{sid}")
    finally:
        tpl["sudo"] = True
        with open(deb.tpl_json, "w") as f:
            json.dump(tpl, f, indent=2)
    # and back on, sudo works again
    sid = deb.create()
    try:
        assert deb.sh(sid, "sudo -n id -u")["stdout"] == "0\n"
    finally:
        deb.delete(f"/sandboxes/{sid}")


def test_the_e2b_sdk_runs_sudo_echo(deb):
    """E2B's own SDK tests run `sudo echo`: the unmodified SDK's
    commands.run does it here too (tests/e2b/sudo.test.mjs)."""
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/install-deps"
    e2b_dir = os.path.join(ROOT, "tests", "e2b")
    assert os.path.isdir(os.path.join(e2b_dir, "node_modules", "e2b")), "run scripts/install-deps (npm ci)"
    env = dict(os.environ, E2B_API_URL=deb.server.url, E2B_SANDBOX_URL=deb.server.url,
               E2B_API_KEY="e2b_" + deb.key[len("sk-sb-"):])
    proc = subprocess.run([node, "--test", "--test-reporter=spec", "sudo.test.mjs"], cwd=e2b_dir,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-3000:]
