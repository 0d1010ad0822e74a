"""A real `--from debian` template (debootstrap from the Debian mirror, as
CI has), and a sandbox made from it. Slow: about 1.5 minutes."""
import os

import pytest

from conftest import Client, Server, cli, make_data_dir

pytestmark = pytest.mark.debootstrap


def test_debian_template_builds_and_runs():
    data_dir = make_data_dir()
    out = cli(data_dir, "template", "build", "deb", "--from", "debian", "--packages", "python3")
    assert "built template deb" in out.stdout
    listing = cli(data_dir, "template", "list").stdout
    assert "deb" in listing and "debian" in listing
    rootfs = os.path.join(data_dir, "templates", "deb", "rootfs")
    assert os.stat(os.path.join(rootfs, "workspace")).st_uid == 101000
    assert os.stat(os.path.join(rootfs, "etc", "passwd")).st_uid == 100000
    srv = Server(data_dir, config={"pool_size": 0}).start()
    try:
        client = Client(srv, srv.new_key("deb"))
        sid = client.create("deb")
        out = client.sh(sid, ". /etc/os-release; echo $VERSION_CODENAME; id -un; "
                             "python3 -c 'print(6*7)'")
        assert out["stdout"] == "bookworm\nuser\n42\n"
        out = client.sh(sid, "apt-get --version | head -1; id -u", user="root")
        assert out["stdout"].startswith("apt ") and out["stdout"].endswith("0\n")
        client.delete(f"/sandboxes/{sid}")
    finally:
        srv.stop()
