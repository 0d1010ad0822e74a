"""The filesystem API (issue 9) through real HTTP on real sandboxes: every
route, the user/root permission model, bad input, org isolation, and the
escape attempts a hostile sandbox can make (symlinks out, magic links,
FIFOs, a directory swapped for a symlink while the API works)."""
import base64
import gzip
import os
import time

import pytest

from conftest import private_server

FS = "/sandboxes/{}/filesystem"


def fs(sid, suffix=""):
    return FS.format(sid) + suffix


def write(client, sid, path, data, **extra):
    body = {"path": path, "content": base64.b64encode(data).decode()}
    body.update(extra)
    return client.post(fs(sid), json=body)


def read(client, sid, path, **params):
    params["path"] = path
    return client.get(fs(sid), params=params)


def root_sh(client, sid, script):
    return client.sh(sid, script, user="root")


# ---- the JSON routes --------------------------------------------------------

def test_write_read_binary_round_trip(org_a, sandbox):
    data = bytes(range(256)) * 64 + b"\x00\xff\r\n"
    r = write(org_a, sandbox, "/home/user/bin.dat", data)
    assert r.status_code == 200, r.text
    entry = r.json()
    assert entry["path"] == "/home/user/bin.dat" and entry["type"] == "file"
    assert entry["size"] == len(data) and entry["owner"] == "user"
    r = read(org_a, sandbox, "/home/user/bin.dat")
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["content"]) == data
    # the sandbox sees the same bytes, owned by its user
    out = org_a.sh(sandbox, "stat -c '%U %s' /home/user/bin.dat; sha256sum /home/user/bin.dat")
    import hashlib
    assert out["stdout"].split()[:3] == ["user", str(len(data)), hashlib.sha256(data).hexdigest()]


def test_write_text_creates_parents_owned_by_user(org_a, sandbox):
    r = org_a.post(fs(sandbox), json={"path": "deep/a/b/c.txt", "text": "héllo\n"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/home/user/deep/a/b/c.txt"
    out = org_a.sh(sandbox, "cat ~/deep/a/b/c.txt; stat -c '%U:%G %a' ~/deep ~/deep/a/b ~/deep/a/b/c.txt")
    lines = out["stdout"].splitlines()
    assert lines[0] == "héllo"
    assert lines[1:] == ["user:user 755", "user:user 755", "user:user 644"]


def test_write_replaces_atomically_and_keeps_mode(org_a, sandbox):
    org_a.sh(sandbox, "printf old > ~/f; chmod 600 ~/f")
    r = org_a.post(fs(sandbox), json={"path": "~/f", "text": "new"})
    assert r.status_code == 200, r.text
    out = org_a.sh(sandbox, "cat ~/f; echo; stat -c %a ~/f; ls -a ~ | grep -c sbtmp || true")
    assert out["stdout"].split() == ["new", "600", "0"]


def test_read_errors(org_a, sandbox):
    r = org_a.get(fs(sandbox))
    assert r.status_code == 400 and "path" in r.json()["message"]
    r = read(org_a, sandbox, "/nope")
    assert r.status_code == 404 and r.json() == {"code": 404, "message": "path '/nope' does not exist"}
    r = read(org_a, sandbox, "/home/user")
    assert r.status_code == 400 and "is a directory" in r.json()["message"]
    org_a.sh(sandbox, "echo x > ~/plain")
    r = read(org_a, sandbox, "/home/user/plain/below")
    assert r.status_code == 400 and "not a directory" in r.json()["message"]
    r = read(org_a, sandbox, "/home/user/../../etc/passwd")
    assert r.status_code == 400 and ".." in r.json()["message"]
    r = org_a.get(fs(sandbox) + "?path=/etc/passwd%00x")
    assert r.status_code == 400
    r = org_a.get(fs(sandbox) + "?path=/etc/passwd&bogus=1")
    assert r.status_code == 400 and "bogus" in r.json()["message"]
    r = read(org_a, "sbx_nope", "/etc/passwd")
    assert r.status_code == 400
    r = read(org_a, "sbx_aaaaaaaaaaaaaaaaaaaa", "/etc/passwd")
    assert r.status_code == 404 and r.json()["message"].startswith("sandbox not found")


def test_write_errors(org_a, sandbox):
    r = org_a.post(fs(sandbox), json={"path": "/home/user/x", "content": "not base64!"})
    assert r.status_code == 400 and "base64" in r.json()["message"]
    r = org_a.post(fs(sandbox), json={"content": "aGk="})
    assert r.status_code == 400 and "path" in r.json()["message"]
    r = org_a.post(fs(sandbox), json={"path": "/home/user/x"})
    assert r.status_code == 400 and "content" in r.json()["message"]
    r = org_a.post(fs(sandbox), json={"path": "/home/user/x", "text": "a", "mode": 1})
    assert r.status_code == 400 and "unknown field" in r.json()["message"]
    r = org_a.post(fs(sandbox), data=b"{not json")
    assert r.status_code == 400
    r = org_a.post(fs(sandbox), json={"path": "/home/user", "text": "a"})
    assert r.status_code == 400 and "is a directory" in r.json()["message"]
    r = org_a.post(fs(sandbox), json={"path": "/home/user/a\u0000b", "text": "a"})
    assert r.status_code == 400 and "NUL" in r.json()["message"]
    r = org_a.post(fs(sandbox), json={"path": "/home/user/../x", "text": "a"})
    assert r.status_code == 400 and ".." in r.json()["message"]
    # nothing of the above was written
    out = org_a.sh(sandbox, "ls -a /home/user")
    assert "x" not in out["stdout"].split()


def test_read_cap_points_to_download(org_a, sandbox):
    org_a.sh(sandbox, "head -c 11000000 /dev/zero > ~/big")
    r = read(org_a, sandbox, "~/big")
    assert r.status_code == 413
    assert "download" in r.json()["message"]


def test_list_stat_mkdir_move_delete(org_a, sandbox):
    org_a.sh(sandbox, "mkdir -p ~/t/sub/deeper && echo hi > ~/t/a.txt && echo x > ~/t/sub/b && "
                      "ln -s a.txt ~/t/link")
    r = org_a.get(fs(sandbox, "/list"), params={"path": "~/t"})
    assert r.status_code == 200, r.text
    by_name = {e["name"]: e for e in r.json()}
    assert set(by_name) == {"a.txt", "sub", "link"}
    assert by_name["a.txt"]["type"] == "file" and by_name["a.txt"]["size"] == 3
    assert by_name["a.txt"]["permissions"] == "-rw-r--r--" and by_name["a.txt"]["mode"] == 0o644
    assert by_name["sub"]["type"] == "dir" and by_name["sub"]["isDir"] is True
    assert by_name["link"]["type"] == "symlink"
    assert by_name["link"]["symlinkTarget"] == "/home/user/t/a.txt"
    assert by_name["link"]["permissions"].startswith("L")
    r = org_a.get(fs(sandbox, "/list"), params={"path": "/home/user/t", "depth": 3})
    paths = {e["path"] for e in r.json()}
    assert {"/home/user/t/sub/b", "/home/user/t/sub/deeper"} <= paths
    for bad in ("0", "x", "1000"):
        r = org_a.get(fs(sandbox, "/list"), params={"path": "~/t", "depth": bad})
        assert r.status_code == 400
    r = org_a.get(fs(sandbox, "/list"), params={"path": "~/t/a.txt"})
    assert r.status_code == 400
    r = org_a.get(fs(sandbox, "/list"))          # defaults to /workspace
    assert r.status_code in (200, 404)

    r = org_a.get(fs(sandbox, "/stat"), params={"path": "~/t/sub"})
    assert r.status_code == 200 and r.json()["type"] == "dir" and r.json()["owner"] == "user"
    r = org_a.get(fs(sandbox, "/stat"), params={"path": "~/t/none"})
    assert r.status_code == 404

    r = org_a.post(fs(sandbox, "/mkdir"), json={"path": "~/m/n/o"})
    assert r.status_code == 200 and r.json()["path"] == "/home/user/m/n/o" and r.json()["isDir"]
    r = org_a.post(fs(sandbox, "/mkdir"), json={"path": "~/m/n/o", "parents": False})
    assert r.status_code == 409
    r = org_a.post(fs(sandbox, "/mkdir"), json={"path": "~/t/a.txt"})
    assert r.status_code == 400
    r = org_a.post(fs(sandbox, "/mkdir"), json={"path": "~/q/r", "parents": False})
    assert r.status_code == 404

    r = org_a.post(fs(sandbox, "/move"), json={"source": "~/t/a.txt", "destination": "~/moved/a2.txt"})
    assert r.status_code == 200 and r.json()["path"] == "/home/user/moved/a2.txt"
    r = org_a.post(fs(sandbox, "/move"), json={"source": "~/t/sub/b", "destination": "~/moved/a2.txt"})
    assert r.status_code == 409 and "overwrite" in r.json()["message"]
    r = org_a.post(fs(sandbox, "/move"), json={"source": "~/t/sub/b", "destination": "~/moved/a2.txt",
                                                "overwrite": True})
    assert r.status_code == 200
    r = org_a.post(fs(sandbox, "/move"), json={"source": "~/nothing", "destination": "~/x"})
    assert r.status_code == 404
    r = org_a.post(fs(sandbox, "/move"), json={"source": "~/t", "destination": "~/t/sub/t"})
    assert r.status_code == 400
    r = org_a.post(fs(sandbox, "/move"), json={"source": "~/t"})
    assert r.status_code == 400 and "destination" in r.json()["message"]

    r = org_a.delete(fs(sandbox), params={"path": "~/t"})
    assert r.status_code == 400 and "recursive" in r.json()["message"]
    r = org_a.delete(fs(sandbox), params={"path": "~/t", "recursive": "true"})
    assert r.status_code == 204
    r = org_a.delete(fs(sandbox), params={"path": "~/t"})
    assert r.status_code == 404
    r = org_a.delete(fs(sandbox), params={"path": "~/moved/a2.txt"})
    assert r.status_code == 204
    r = org_a.delete(fs(sandbox), params={"path": "~/x", "recursive": "maybe"})
    assert r.status_code == 400
    out = org_a.sh(sandbox, "ls ~; ls ~/moved")
    assert "t" not in out["stdout"].split() and "a2.txt" not in out["stdout"].split()


# ---- users and permissions --------------------------------------------------

def test_user_cannot_bypass_permissions_root_can(org_a, sandbox):
    root_sh(org_a, sandbox, "mkdir -p /secret && echo top > /secret/s && chmod 700 /secret && "
                            "chmod 600 /secret/s")
    r = read(org_a, sandbox, "/secret/s")
    assert r.status_code == 403, r.text
    r = read(org_a, sandbox, "/secret/s", user="root")
    assert r.status_code == 200 and base64.b64decode(r.json()["content"]) == b"top\n"
    r = read(org_a, sandbox, "/etc/shadow")
    assert r.status_code in (403, 404)
    r = org_a.post(fs(sandbox), json={"path": "/etc/evil", "text": "x"})
    assert r.status_code == 403
    r = org_a.post(fs(sandbox), json={"path": "/etc/evil", "text": "x", "user": "root"})
    assert r.status_code == 200 and r.json()["owner"] == "root"
    out = root_sh(org_a, sandbox, "stat -c '%U:%G' /etc/evil")
    assert out["stdout"].strip() == "root:root"
    r = org_a.delete(fs(sandbox), params={"path": "/etc/evil"})
    assert r.status_code == 403
    r = org_a.post(fs(sandbox, "/mkdir"), json={"path": "/opt/x"})
    assert r.status_code == 403
    r = org_a.get(fs(sandbox, "/list"), params={"path": "/secret"})
    assert r.status_code == 403
    # relative paths start at the acting user's home
    r = org_a.post(fs(sandbox), json={"path": "r.txt", "text": "x", "user": "root"})
    assert r.status_code == 200 and r.json()["path"] == "/root/r.txt"
    r = read(org_a, sandbox, "r.txt", user="nobody")
    assert r.status_code == 400 and "unknown user" in r.json()["message"]
    # a user's write over a file it may not write is refused, not replaced
    root_sh(org_a, sandbox, "echo keep > /home/user/ro && chmod 444 /home/user/ro && chown root /home/user/ro")
    r = org_a.post(fs(sandbox), json={"path": "/home/user/ro", "text": "x"})
    assert r.status_code == 403
    assert org_a.sh(sandbox, "cat /home/user/ro")["stdout"] == "keep\n"


def test_org_isolation(org_a, org_b, sandbox):
    org_a.sh(sandbox, "echo mine > ~/mine")
    for method, path, kw in [
        ("GET", fs(sandbox), {"params": {"path": "~/mine"}}),
        ("GET", fs(sandbox, "/list"), {"params": {"path": "~"}}),
        ("GET", fs(sandbox, "/stat"), {"params": {"path": "~/mine"}}),
        ("POST", fs(sandbox), {"json": {"path": "~/mine", "text": "theirs"}}),
        ("DELETE", fs(sandbox), {"params": {"path": "~/mine"}}),
        ("POST", fs(sandbox, "/mkdir"), {"json": {"path": "~/b"}}),
        ("POST", fs(sandbox, "/move"), {"json": {"source": "~/mine", "destination": "~/b"}}),
        ("GET", fs(sandbox, "/download"), {"params": {"path": "~/mine"}}),
        ("GET", fs(sandbox, "/download"), {"params": {"path": "~", "format": "tar"}}),
        ("GET", f"/sandboxes/{sandbox}/files", {"params": {"path": "~/mine"}}),
        ("POST", f"/sandboxes/{sandbox}/files", {"files": {"file": ("/home/user/mine", b"theirs")}}),
        ("POST", fs(sandbox, "/upload"), {"files": {"file": ("/home/user/mine", b"theirs")}}),
        ("GET", fs(sandbox, "/watch"), {"params": {"path": "~"}}),
    ]:
        r = org_b.request(method, path, **kw)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["message"].startswith("sandbox not found")
    assert org_a.sh(sandbox, "cat ~/mine; ls ~")["stdout"].split() == ["mine", "mine"]


def test_paused_sandbox_files_work(org_a, sandbox):
    assert org_a.post(f"/sandboxes/{sandbox}/pause").status_code == 204
    r = org_a.post(fs(sandbox), json={"path": "~/p.txt", "text": "while paused"})
    assert r.status_code == 200, r.text
    r = read(org_a, sandbox, "~/p.txt")
    assert r.status_code == 200
    assert org_a.post(f"/sandboxes/{sandbox}/connect").status_code == 200
    assert org_a.sh(sandbox, "cat ~/p.txt")["stdout"] == "while paused"


def test_disk_quota_is_507_and_leaves_no_file(org_a, sandbox):
    # fill the sandbox's disk from inside, then write through the API
    org_a.sh(sandbox, "dd if=/dev/zero of=/home/user/fill bs=1M 2>/dev/null; true", timeout=120)
    r = write(org_a, sandbox, "/home/user/more", os.urandom(4 << 20))
    assert r.status_code == 507, r.text
    out = org_a.sh(sandbox, "ls -a /home/user")
    names = out["stdout"].split()
    assert "more" not in names and not any("sbtmp" in n for n in names)


# ---- escapes ------------------------------------------------------------------

def host_marker(tmp_path):
    p = tmp_path / "host-secret"
    p.write_text("host only\n")
    return str(p)


def test_symlinks_out_stay_inside(org_a, sandbox, tmp_path):
    host = host_marker(tmp_path)
    root_sh(org_a, sandbox,
            f"ln -s /etc/shadow /home/user/shadow; ln -s /proc/1/root /home/user/p1root; "
            f"ln -s ../../../../../../ /home/user/up; ln -s {host} /home/user/hostfile; "
            f"ln -s {os.path.dirname(host)} /home/user/hostdir; ln -s /proc/self/root /home/user/selfroot; "
            f"mkfifo /home/user/fifo; chmod 666 /home/user/fifo")
    # a host path named by a symlink resolves inside the sandbox, where it does not exist
    r = read(org_a, sandbox, "/home/user/hostfile", user="root")
    assert r.status_code == 404
    r = org_a.get(fs(sandbox, "/list"), params={"path": "/home/user/hostdir", "user": "root"})
    assert r.status_code == 404
    # ../../.. stops at the sandbox's /
    r = org_a.get(fs(sandbox, "/list"), params={"path": "/home/user/up", "user": "root"})
    assert r.status_code == 200
    names = {e["name"] for e in r.json()}
    assert "home" in names and "tmp" not in {os.path.basename(str(tmp_path))}
    r = read(org_a, sandbox, f"/home/user/up{host}", user="root")
    assert r.status_code == 404
    # /etc/shadow through the link is the sandbox's (if any), never the host's
    r = read(org_a, sandbox, "/home/user/shadow", user="root")
    if r.status_code == 200:
        with open("/etc/shadow", "rb") as f:
            assert base64.b64decode(r.json()["content"]) != f.read()
    # magic links are refused
    for p in ("/home/user/p1root/etc/hostname", "/proc/1/root/etc/hostname", "/home/user/selfroot/etc"):
        r = read(org_a, sandbox, p, user="root")
        assert r.status_code in (400, 403, 404), (p, r.text)
    r = read(org_a, sandbox, "/proc/1/environ", user="root")
    assert r.status_code == 403
    # writes through links land inside the sandbox
    r = org_a.post(fs(sandbox), json={"path": "/home/user/hostdir/x", "text": "x", "user": "root"})
    assert r.status_code == 404     # a dangling link inside the sandbox, as mkdir -p finds it
    r = org_a.post(fs(sandbox), json={"path": "/home/user/up/tmp/x", "text": "x", "user": "root"})
    assert r.status_code == 200 and r.json()["path"] == "/home/user/up/tmp/x"
    assert root_sh(org_a, sandbox, "cat /tmp/x")["stdout"] == "x"
    assert not os.path.exists(os.path.join(os.path.dirname(host), "x"))
    # a FIFO is refused at once, without blocking
    t = time.time()
    r = read(org_a, sandbox, "/home/user/fifo")
    assert r.status_code == 400 and "not a regular file" in r.json()["message"]
    r = org_a.get(fs(sandbox, "/download"), params={"path": "/home/user/fifo"})
    assert r.status_code == 400
    assert time.time() - t < 10
    # the host's file is untouched
    assert open(host).read() == "host only\n"


def test_swapped_directory_symlink_race(org_a, sandbox, tmp_path):
    """A root loop in the sandbox swaps ~/race between a directory and a
    symlink to a host directory for 10 s while the API writes and reads
    through it: nothing lands outside the sandbox, the server stays up."""
    hostdir = tmp_path / "target"
    hostdir.mkdir()
    (hostdir / "f").write_text("host\n")
    script = (f"cd /home/user; end=$(( $(date +%s) + 10 )); "
              f"while [ $(date +%s) -lt $end ]; do "
              f"rm -rf race; mkdir race; echo in > race/f; rm -rf race; ln -s {hostdir} race; "
              f"done; rm -rf race")
    org_a.post(f"/sandboxes/{sandbox}/processes",
               json={"cmd": "/bin/sh", "args": ["-c", f"({script}) >/dev/null 2>&1 &"], "user": "root"})
    deadline = time.time() + 9
    codes = set()
    while time.time() < deadline:
        for req in (lambda: write(org_a, sandbox, "/home/user/race/f", b"api\n", user="root"),
                    lambda: read(org_a, sandbox, "/home/user/race/f", user="root"),
                    lambda: org_a.get(fs(sandbox, "/list"), params={"path": "/home/user/race", "user": "root"}),
                    lambda: org_a.delete(fs(sandbox), params={"path": "/home/user/race/f", "user": "root"}),
                    lambda: org_a.post(fs(sandbox, "/mkdir"), json={"path": "/home/user/race/d/e", "user": "root"})):
            r = req()
            codes.add(r.status_code)
            assert r.status_code < 500, r.text
            if r.status_code == 200 and r.request.method == "GET" and "content" in r.text:
                assert base64.b64decode(r.json()["content"]) in (b"", b"in\n", b"api\n")   # "" while the shell's echo writes
    assert sorted(os.listdir(hostdir)) == ["f"]
    assert (hostdir / "f").read_text() == "host\n"
    assert 200 in codes
    assert org_a.get("/health").status_code == 200


# ---- download, Range, tar ---------------------------------------------------

def test_download_raw_range_and_disposition(org_a, sandbox):
    data = os.urandom(100_000)
    assert write(org_a, sandbox, "/home/user/d ata\".bin", data).status_code == 200
    for route in (fs(sandbox, "/download"), f"/sandboxes/{sandbox}/files"):
        r = org_a.get(route, params={"path": "/home/user/d ata\".bin"})
        assert r.status_code == 200, r.text
        assert r.content == data
        assert r.headers["Content-Length"] == str(len(data))
        assert r.headers["Content-Type"] == "application/octet-stream"
        cd = r.headers["Content-Disposition"]
        assert cd.startswith("attachment" if "download" in route else "inline")
        assert "filename*=UTF-8''d%20ata%22.bin" in cd
    path = {"path": "~/d ata\".bin"}
    r = org_a.get(fs(sandbox, "/download"), params=path, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = org_a.get(fs(sandbox, "/download"), params=path, headers={"Range": "bytes=99990-"})
    assert r.status_code == 206 and r.content == data[99990:]
    r = org_a.get(fs(sandbox, "/download"), params=path, headers={"Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == data[-5:]
    r = org_a.get(fs(sandbox, "/download"), params=path, headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == data
    for bad in ("bytes=200000-", "bytes=5-1", "bytes=x-"):
        r = org_a.get(fs(sandbox, "/download"), params=path, headers={"Range": bad})
        assert r.status_code == 416, bad
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~"})
    assert r.status_code == 400 and "format=tar" in r.json()["message"]
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~/none"})
    assert r.status_code == 404
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~", "format": "zip"})
    assert r.status_code == 400
    r = org_a.get(fs(sandbox, "/download"))
    assert r.status_code == 400
    # an empty file
    assert write(org_a, sandbox, "~/empty", b"").status_code == 200
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~/empty"})
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"


def test_download_directory_as_tar(org_a, sandbox, tmp_path):
    import io
    import tarfile
    org_a.sh(sandbox, "mkdir -p ~/proj/src/deep && echo main > ~/proj/src/main.py && "
                      "head -c 300000 /dev/urandom > ~/proj/blob && ln -s src/main.py ~/proj/link && "
                      "mkfifo ~/proj/fifo && chmod 751 ~/proj/src && "
                      "python3 -c \"open('/home/user/proj/' + 'n' * 200, 'w').write('long')\"")
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~/proj", "format": "tar"}, stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-tar"
    assert 'filename="proj.tar"' in r.headers["Content-Disposition"]
    raw = r.raw.read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert {"proj", "proj/src", "proj/src/deep", "proj/src/main.py", "proj/blob", "proj/link",
                "proj/" + "n" * 200} <= set(members)
        assert "proj/fifo" not in members
        assert tf.extractfile("proj/src/main.py").read() == b"main\n"
        assert members["proj/link"].issym() and members["proj/link"].linkname == "src/main.py"
        assert members["proj/src"].mode & 0o777 == 0o751
        assert members["proj/src/main.py"].uname in ("user", "") and members["proj/src/main.py"].uid == 1000
        blob = tf.extractfile("proj/blob").read()
    sha = org_a.sh(sandbox, "sha256sum ~/proj/blob")["stdout"].split()[0]
    import hashlib
    assert hashlib.sha256(blob).hexdigest() == sha
    # what the user may not read is left out, not an error, and nothing leaks
    org_a.sh(sandbox, "true")
    root_sh(org_a, sandbox, "mkdir /home/user/proj/closed && echo s > /home/user/proj/closed/s && "
                            "chmod 700 /home/user/proj/closed")
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~/proj", "format": "tar"})
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        assert "proj/closed/s" not in tf.getnames()
    r = org_a.get(fs(sandbox, "/download"), params={"path": "/home/user/proj", "format": "tar",
                                                     "user": "root"})
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        assert tf.extractfile("proj/closed/s").read() == b"s\n"


# ---- upload -------------------------------------------------------------------

def upload(client, sid, files=None, data=None, params=None, route="/upload", **kw):
    path = fs(sid, route) if route == "/upload" else f"/sandboxes/{sid}/files"
    return client.post(path, files=files, data=data, params=params, **kw)


def test_upload_path_field_and_file(org_a, sandbox):
    data = os.urandom(70_000)
    r = upload(org_a, sandbox, data={"path": "/home/user/up/one.bin"}, files={"file": ("x", data)})
    assert r.status_code == 200, r.text
    [entry] = r.json()
    assert entry["path"] == "/home/user/up/one.bin" and entry["size"] == len(data)
    assert entry["type"] == "file" and entry["owner"] == "user"
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~/up/one.bin"})
    assert r.content == data


def test_upload_many_files_by_filename_e2b_style(org_a, sandbox):
    parts = [("file", ("/home/user/m/a.txt", b"A")), ("file", ("m/b/c.txt", b"C" * 5000))]
    r = upload(org_a, sandbox, files=parts, data={"note": "a plain field is ignored"}, route="/files")
    assert r.status_code == 200, r.text
    assert [e["path"] for e in r.json()] == ["/home/user/m/a.txt", "/home/user/m/b/c.txt"]
    assert org_a.sh(sandbox, "cat ~/m/a.txt; echo; wc -c < ~/m/b/c.txt")["stdout"].split() == ["A", "5000"]
    # ?path= overrides the filename
    r = upload(org_a, sandbox, files={"file": ("whatever", b"Q")}, params={"path": "~/m/q"})
    assert r.status_code == 200 and r.json()[0]["path"] == "/home/user/m/q"
    # as root, owned by root
    r = upload(org_a, sandbox, files={"file": ("/opt/r.txt", b"R")}, params={"user": "root"})
    assert r.status_code == 200 and r.json()[0]["owner"] == "root"
    r = upload(org_a, sandbox, files={"file": ("/opt/u.txt", b"U")})
    assert r.status_code == 403


def test_upload_octet_stream(org_a, sandbox):
    data = os.urandom(3 << 20)
    r = org_a.post(fs(sandbox, "/upload"), params={"path": "~/raw.bin"}, data=data,
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert org_a.get(fs(sandbox, "/download"), params={"path": "~/raw.bin"}).content == data
    r = org_a.post(fs(sandbox, "/upload"), data=b"x", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "path" in r.json()["message"]
    # gzip is inflated as it arrives; what is not gzip is a 400, another encoding a 415
    r = org_a.post(fs(sandbox, "/upload"), params={"path": "~/gz"}, data=gzip.compress(data),
                   headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert org_a.get(fs(sandbox, "/download"), params={"path": "~/gz"}).content == data
    r = org_a.post(fs(sandbox, "/upload"), params={"path": "~/gz2"}, data=b"x",
                   headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["message"], r.text
    r = org_a.post(fs(sandbox, "/upload"), params={"path": "~/br"}, data=b"x",
                   headers={"Content-Type": "application/octet-stream", "Content-Encoding": "br"})
    assert r.status_code == 415


def test_upload_bad_input(org_a, org_b, sandbox):
    r = upload(org_a, sandbox, files=[("file", ("~/d", b"1")), ("file", ("~/d", b"2"))])
    assert r.status_code == 400 and "twice" in r.json()["message"]
    r = upload(org_a, sandbox, data={"x": "y"}, files={})
    assert r.status_code == 400
    r = org_a.post(fs(sandbox, "/upload"), data=b"--B\r\nContent-Disposition: form-data; name=file; filename=f\r\n\r\nabc",
                   headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 400 and "closing boundary" in r.json()["message"]
    r = org_a.post(fs(sandbox, "/upload"), data=b"--B\r\nbroken\r\n\r\nabc\r\n--B--",
                   headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert r.status_code == 400 and "Content-Disposition" in r.json()["message"]
    r = org_a.post(fs(sandbox, "/upload"), data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["message"]
    r = upload(org_a, sandbox, files={"file": ("/home/user/../etc/x", b"1")})
    assert r.status_code == 400 and ".." in r.json()["message"]
    r = upload(org_a, sandbox, files={"file": ("/home/user", b"1")})
    assert r.status_code == 400 and "directory" in r.json()["message"]
    r = upload(org_b, sandbox, files={"file": ("/home/user/b", b"1")})
    assert r.status_code == 404 and r.json()["message"].startswith("sandbox not found")
    r = upload(org_a, "sbx_aaaaaaaaaaaaaaaaaaaa", files={"file": ("/home/user/b", b"1")})
    assert r.status_code == 404
    # a failure after a first good file keeps the good one and leaves no partial one
    r = upload(org_a, sandbox, files=[("file", ("~/good", b"g")), ("file", ("/etc/nope", b"n" * 100000))])
    assert r.status_code == 403
    names = org_a.sh(sandbox, "ls -a ~ /etc")["stdout"].split()
    assert "nope" not in names and not any("sbtmp" in n for n in names) and "b" not in names


def test_upload_caps(org_a):
    with private_server("caps", files_upload_file_max=100_000, files_upload_max=300_000,
                        files_read_max=1000) as srv:
        c = srv.client
        sid = c.create()
        # the JSON routes' cap: a body past what files_read_max of base64 takes
        r = write(c, sid, "~/j", b"j" * 1000)
        assert r.status_code == 200, r.text
        r = write(c, sid, "~/j2", b"j" * 200_000)
        assert r.status_code == 413 and "upload" in r.json()["message"]
        r = write(c, sid, "~/j3", b"j" * 1001)
        assert r.status_code == 413 and "upload" in r.json()["message"]
        upload(c, sid, files={"file": ("~/j3", b"j" * 1001)})
        r = read(c, sid, "~/j3")
        assert r.status_code == 413 and "download" in r.json()["message"]
        assert c.sh(sid, "ls ~")["stdout"].split().count("j2") == 0
        r = upload(c, sid, files={"file": ("~/ok", b"o" * 100_000)})
        assert r.status_code == 200, r.text
        r = upload(c, sid, files=[("file", ("~/a", b"a" * 1000)), ("file", ("~/big", b"b" * 100_001))])
        assert r.status_code == 413 and "files_upload_file_max" in r.json()["message"]
        r = upload(c, sid, files=[("file", (f"~/f{i}", b"x" * 90_000)) for i in range(4)])
        assert r.status_code == 413 and "files_upload_max" in r.json()["message"]

        def chunks():
            for _ in range(40):
                yield b"y" * 10_000
        r = c.post(fs(sid, "/upload"), params={"path": "~/streamed"}, data=chunks(),
                   headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 413
        names = c.sh(sid, "ls -a ~")["stdout"].split()
        assert "big" not in names and "streamed" not in names and "f3" not in names
        assert not any("sbtmp" in n for n in names)



# ---- big files: streamed, serve's memory flat --------------------------------

class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread; .peak in KiB."""

    def __init__(self, pid):
        import threading
        self.pid, self.peak, self.stop = pid, 0, False
        self.base = self.rss()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def rss(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.05)

    def finish(self):
        self.stop = True
        self.thread.join()
        return self.peak - self.base


def test_one_gib_upload_and_download_keep_rss_flat():
    import hashlib
    size, block = 1 << 30, os.urandom(1 << 20)
    with private_server("big", defaults={"disk_mb": 3072}) as srv:
        c = srv.client
        sid = c.create()
        # warm up the code paths once, so what we measure is growth with the file
        upload(c, sid, files={"file": ("~/warm", b"w" * (2 << 20))})
        c.get(fs(sid, "/download"), params={"path": "~/warm"})
        sha = hashlib.sha256()

        def body():
            yield (b"--BoUnDaRy\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/home/user/big\"\r\n"
                   b"Content-Type: application/octet-stream\r\n\r\n")
            for i in range(size // len(block)):
                piece = i.to_bytes(8, "little") + block[8:]
                sha.update(piece)
                yield piece
            yield b"\r\n--BoUnDaRy--\r\n"
        rss = RssSampler(srv.proc.pid)
        t = time.time()
        r = c.post(fs(sid, "/upload"), data=body(), timeout=600,
                   headers={"Content-Type": "multipart/form-data; boundary=BoUnDaRy"})
        up_s = time.time() - t
        up_growth = rss.finish()
        assert r.status_code == 200, r.text
        assert r.json()[0]["size"] == size
        assert c.sh(sid, "sha256sum ~/big", timeout=300)["stdout"].split()[0] == sha.hexdigest()

        rss = RssSampler(srv.proc.pid)
        t = time.time()
        r = c.get(fs(sid, "/download"), params={"path": "~/big"}, stream=True, timeout=600)
        assert r.status_code == 200 and r.headers["Content-Length"] == str(size)
        down = hashlib.sha256()
        n = 0
        for piece in r.iter_content(1 << 20):
            down.update(piece)
            n += len(piece)
        down_s = time.time() - t
        down_growth = rss.finish()
        assert n == size and down.hexdigest() == sha.hexdigest()
        print(f"1 GiB upload {up_s:.1f}s ({1024 / up_s:.0f} MiB/s), RSS +{up_growth} KiB; "
              f"download {down_s:.1f}s ({1024 / down_s:.0f} MiB/s), RSS +{down_growth} KiB")
        # constant memory: a few MiB of batches and buffers, never the file
        assert up_growth < 48 * 1024, up_growth
        assert down_growth < 48 * 1024, down_growth


# ---- watch ----------------------------------------------------------------------

class SseReader:
    """Reads an SSE response in a thread; .events is a list of (event, data)."""

    def __init__(self, response):
        import threading
        self.response, self.events, self.ended = response, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import json
        event, data = "message", []
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    if data:
                        self.events.append((event, json.loads("\n".join(data))))
                    event, data = "message", []
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        except Exception:   # the connection closed under us
            pass
        self.ended = True

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(pred(e) for e in list(self.events)):
                return True
            time.sleep(0.02)
        return False


def inotify_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                n += 1
        except OSError:
            pass
    return n


def test_watch_events_for_each_change_type(org_a, server, sandbox):
    org_a.sh(sandbox, "mkdir -p ~/w/old && echo 1 > ~/w/f")
    before = inotify_fds(server.proc.pid)
    r = org_a.get(fs(sandbox, "/watch"), params={"path": "~/w", "recursive": "true"}, stream=True, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    sse = SseReader(r)
    assert sse.wait_for(lambda e: e[0] == "start")
    assert inotify_fds(server.proc.pid) == before + 1
    org_a.sh(sandbox, "touch ~/w/new; echo more >> ~/w/f; chmod 600 ~/w/f; mv ~/w/new ~/w/renamed; "
                      "rm ~/w/renamed; mkdir ~/w/sub; sleep 0.3; echo x > ~/w/sub/inner; echo y > ~/w/old/o")
    want = [("create", "new"), ("write", "f"), ("chmod", "f"), ("rename", "new"), ("create", "renamed"),
            ("remove", "renamed"), ("create", "sub"), ("create", "sub/inner"), ("create", "old/o")]
    for t, name in want:
        assert sse.wait_for(lambda e: e[1].get("type") == t and e[1].get("name") == name), (t, name, sse.events)
    ev = next(e[1] for e in sse.events if e[1].get("name") == "sub/inner")
    assert ev["path"] == "/home/user/w/sub/inner"
    # a client that leaves frees its watch
    t = time.time()
    r.raw._fp.fp.raw._sock.shutdown(2)     # the TCP connection itself, not a pool's handle
    r.close()
    deadline = time.time() + 10
    while inotify_fds(server.proc.pid) > before and time.time() < deadline:
        time.sleep(0.05)
    print(f"watch freed {time.time() - t:.2f}s after the client left")
    assert inotify_fds(server.proc.pid) == before


def test_watch_ends_with_the_sandbox_and_bad_input(org_a, org_b):
    sid = org_a.create()
    org_a.sh(sid, "mkdir -p ~/w")
    r = org_a.get(fs(sid, "/watch"), params={"path": "~/w"}, stream=True, timeout=30)
    sse = SseReader(r)
    assert sse.wait_for(lambda e: e[0] == "start")
    org_a.sh(sid, "touch ~/w/a")
    assert sse.wait_for(lambda e: e[1].get("name") == "a")
    # not recursive: nothing from below
    org_a.sh(sid, "mkdir ~/w/d; touch ~/w/d/deep")
    time.sleep(0.5)
    assert not any(e[1].get("name") == "d/deep" for e in sse.events)
    assert org_a.delete(f"/sandboxes/{sid}").status_code == 204
    deadline = time.time() + 10
    while not sse.ended and time.time() < deadline:
        time.sleep(0.05)
    assert sse.ended

    sid = org_a.create()
    try:
        org_a.sh(sid, "echo f > ~/file")
        assert org_a.get(fs(sid, "/watch"), params={"path": "~/none"}).status_code == 404
        assert org_a.get(fs(sid, "/watch"), params={"path": "~/file"}).status_code == 400
        assert org_a.get(fs(sid, "/watch")).status_code == 400
        assert org_a.get(fs(sid, "/watch"), params={"path": "~", "recursive": "x"}).status_code == 400
        assert org_b.get(fs(sid, "/watch"), params={"path": "~"}).status_code == 404
        root_sh(org_a, sid, "mkdir /home/user/closed && chmod 700 /home/user/closed")
        assert org_a.get(fs(sid, "/watch"), params={"path": "~/closed"}).status_code == 403
        assert org_a.get(fs(sid, "/watch"), params={"path": "/proc/1", "user": "root"}).status_code == 403
    finally:
        org_a.delete(f"/sandboxes/{sid}")


# ---- runtime endpoints -----------------------------------------------------------

def test_health_metrics_envs(org_a, org_b, server):
    sid = org_a.create(envVars={"MY_VAR": "42"})
    try:
        r = org_a.get(f"/sandboxes/{sid}/health")
        assert r.status_code == 204 and r.content == b""
        r = org_a.get(f"/sandboxes/{sid}/envs")
        assert r.status_code == 200, r.text
        env = r.json()
        assert env["MY_VAR"] == "42" and env["HOME"] == "/home/user" and "PATH" in env
        assert env["E2B_SANDBOX_ID"] == sid
        # memory and CPU the sandbox uses show up
        org_a.post(f"/sandboxes/{sid}/processes",
                   json={"cmd": "/bin/sh", "args": ["-c", "(timeout 3 sh -c 'while :; do :; done') >/dev/null 2>&1 &"]})
        org_a.sh(sid, "head -c 50000000 /dev/urandom > ~/disk.bin")
        r = org_a.get(f"/sandboxes/{sid}/metrics")
        assert r.status_code == 200, r.text
        m = r.json()
        assert set(m) == {"ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "mem_cache",
                          "mem_total_mib", "mem_used_mib", "disk_total", "disk_used"}
        assert m["cpu_count"] == 2 and m["mem_total"] == 512 << 20 and m["mem_total_mib"] == 512
        assert 0 < m["mem_used"] <= m["mem_total"] and m["mem_used_mib"] == m["mem_used"] >> 20
        assert m["cpu_used_pct"] > 10, m    # one busy loop of two CPUs is ~50%
        assert m["disk_total"] > 900 << 20 and m["disk_used"] >= 50_000_000
        assert abs(m["ts"] - time.time()) < 60
        # the e2b_ spelling of the same key gets E2B's array
        e2b = "e2b_" + org_a.key[len("sk-sb-"):]
        r = org_a.session.get(server.url + f"/sandboxes/{sid}/metrics",
                              headers={"Authorization": f"Bearer {e2b}"}, timeout=30)
        assert r.status_code == 200, r.text
        [em] = r.json()
        assert set(em) == {"timestamp", "timestampUnix", "cpuCount", "cpuUsedPct", "memUsed", "memTotal",
                           "memCache", "diskUsed", "diskTotal"}
        assert em["memTotal"] == 512 << 20 and em["timestamp"].endswith("Z")
        # other orgs, bad ids, paused
        for p in ("health", "metrics", "envs"):
            assert org_b.get(f"/sandboxes/{sid}/{p}").status_code == 404
            assert org_a.get(f"/sandboxes/sbx_x/{p}").status_code == 400
        assert org_a.post(f"/sandboxes/{sid}/pause").status_code == 204
        r = org_a.get(f"/sandboxes/{sid}/health")
        assert r.status_code == 502 and "paused" in r.json()["message"]
        assert org_a.get(f"/sandboxes/{sid}/metrics").json()["cpu_used_pct"] == 0
    finally:
        org_a.delete(f"/sandboxes/{sid}")
    assert org_a.get(f"/sandboxes/{sid}/health").status_code == 404


def test_concurrent_writers_and_readers_of_one_path(org_a, sandbox):
    from concurrent.futures import ThreadPoolExecutor
    blobs = [bytes([i]) * (300_000 + i) for i in range(8)]

    def writer(i):
        for _ in range(3):
            r = write(org_a, sandbox, "~/shared.bin", blobs[i])
            assert r.status_code == 200, r.text

    def reader(_):
        seen = 0
        for _ in range(6):
            r = org_a.get(fs(sandbox, "/download"), params={"path": "~/shared.bin"})
            if r.status_code == 200:
                assert r.content in blobs      # a whole file, never a mix or a part
                seen += 1
        return seen

    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(writer, i) for i in range(8)] + [pool.submit(reader, i) for i in range(4)]
        for f in futures:
            f.result()
    r = org_a.get(fs(sandbox, "/download"), params={"path": "~/shared.bin"})
    assert r.content in blobs
    names = org_a.sh(sandbox, "ls -a ~")["stdout"].split()
    assert not any("sbtmp" in n for n in names)


def test_names_that_are_not_utf8_are_listed(org_a, sandbox):
    org_a.sh(sandbox, "mkdir ~/odd && touch ~/odd/$(printf 'bad\\377name') ~/odd/ok")
    r = org_a.get(fs(sandbox, "/list"), params={"path": "~/odd"})
    assert r.status_code == 200, r.text
    assert sorted(e["name"] for e in r.json()) == ["bad\ufffdname", "ok"]


# ---- sandbase cp ------------------------------------------------------------------

def test_cli_cp_files_and_directories(org_a, server, sandbox, tmp_path):
    import hashlib
    import subprocess
    from conftest import BIN
    env = dict(os.environ, SANDBASE_URL=server.url, SANDBASE_API_KEY=org_a.key)

    def cp(*args):
        return subprocess.run([BIN, "cp", *args], capture_output=True, text=True, env=env, timeout=300)

    data = os.urandom(20 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    out = cp(str(tmp_path / "big.bin"), f"{sandbox}:/home/user/")
    assert out.returncode == 0, out.stderr
    sha = org_a.sh(sandbox, "sha256sum ~/big.bin")["stdout"].split()[0]
    assert sha == hashlib.sha256(data).hexdigest()
    out = cp(f"{sandbox}:/home/user/big.bin", str(tmp_path / "back.bin"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "back.bin").read_bytes() == data
    # a local directory up, with a subdirectory and an empty one
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    out = cp(str(tree), f"{sandbox}:/home/user/up/")
    assert out.returncode == 0, out.stderr
    listing = org_a.sh(sandbox, "cd ~/up && find . | sort")["stdout"].split()
    assert listing == [".", "./tree", "./tree/a.txt", "./tree/empty", "./tree/sub", "./tree/sub/b.txt"]
    # and down again: into a new directory, then into an existing one
    org_a.sh(sandbox, "ln -s /etc ~/up/tree/etc-link")
    out = cp(f"{sandbox}:/home/user/up/tree", str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "got" / "sub" / "b.txt").read_text() == "b"
    assert (tmp_path / "got" / "empty").is_dir()
    assert os.readlink(tmp_path / "got" / "etc-link") == "/etc"
    out = cp(f"{sandbox}:/home/user/up/tree", str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "got" / "tree" / "a.txt").read_text() == "a"
    # errors
    out = cp(f"{sandbox}:/home/user/none", str(tmp_path / "x"))
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = cp(str(tmp_path / "a"), str(tmp_path / "b"))
    assert out.returncode == 2
    out = subprocess.run([BIN, "cp", str(tmp_path / "big.bin"), f"{sandbox}:/home/user/"], capture_output=True,
                         text=True, env=dict(env, SANDBASE_API_KEY="sk-sb-" + "0" * 40), timeout=60)
    assert out.returncode == 1 and "401" in out.stderr
    assert not (tmp_path / "x").exists()


def test_watch_streams_are_capped_so_the_hosts_inotify_is_not_starved():
    """serve runs as the host's root, whose inotify instances (128 by
    default) the host's own services share: at most 32 watch streams."""
    import socket
    with private_server("watchcap") as srv:
        c = srv.client
        sid = c.create()
        socks = []
        base = inotify_fds(srv.proc.pid)

        def open_watch():
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall((f"GET /sandboxes/{sid}/filesystem/watch?path=/home/user HTTP/1.1\r\n"
                       f"Host: x\r\nAuthorization: Bearer {c.key}\r\n\r\n").encode())
            s.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            return s, head.split(b"\r\n", 1)[0]

        try:
            for _ in range(32):
                s, status = open_watch()
                socks.append(s)
                assert b" 200 " in status, status
            s, status = open_watch()
            assert b" 503 " in status, status
            s.close()
            socks.pop().close()
            deadline = time.time() + 10
            while time.time() < deadline:
                s, status = open_watch()
                if b" 200 " in status:
                    socks.append(s)
                    break
                s.close()
                time.sleep(0.1)
            assert b" 200 " in status
            assert inotify_fds(srv.proc.pid) == base + 32
        finally:
            for s in socks:
                s.close()
