"""Shared fixtures for the integration suite: a real `sandbase serve` on a
free loopback port with a temporary data dir, orgs and keys made with the
real CLI, and `--from host` templates so sandboxes start in milliseconds.

SANDBASE_BIN names the binary under test (the Makefile sets it)."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SANDBASE_BIN", os.path.join(ROOT, "build", "sandbase"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(data_dir, *args, check=True, env=None):
    """Runs a sandbase CLI verb; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([BIN, *args, "--data-dir", data_dir], capture_output=True,
                          text=True, timeout=600, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"sandbase {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


class Server:
    """One `sandbase serve` process on its own port and data dir."""

    def __init__(self, data_dir, config=None):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = os.path.join(data_dir, "serve.log")
        if config is not None:
            os.makedirs(data_dir, exist_ok=True)
            with open(os.path.join(data_dir, "config.json"), "w") as f:
                json.dump(config, f)

    def start(self, extra_args=()):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
             "--log-format", "json", *extra_args],
            stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError("serve did not answer /health within 30 s:\n" + self.log())

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-20000:]
        except OSError:
            return ""

    def new_key(self, org):
        """A new key for org, creating the org when it does not exist yet."""
        if org not in cli(self.data_dir, "org", "list").stdout.split():
            cli(self.data_dir, "org", "create", org)
        return cli(self.data_dir, "key", "create", "--org", org).stdout.strip()


class Client:
    """requests with a key and the server's base URL."""

    def __init__(self, server, key):
        self.server = server
        self.key = key
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 120)
        return self.session.request(method, self.server.url + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, template="base", **body):
        body.setdefault("templateID", template)
        r = self.post("/sandboxes", json=body)
        assert r.status_code == 201, r.text
        return r.json()["sandboxID"]

    def run(self, sandbox_id, cmd, *args, **body):
        body.update(cmd=cmd, args=list(args))
        return self.post(f"/sandboxes/{sandbox_id}/processes", json=body)

    def sh(self, sandbox_id, script, **body):
        """Runs a shell script; asserts it could run and returns the JSON."""
        r = self.run(sandbox_id, "/bin/sh", "-c", script, **body)
        assert r.status_code == 200, r.text
        return r.json()


def make_data_dir():
    return tempfile.mkdtemp(prefix="sandbase-it-")


@contextlib.contextmanager
def private_server(org, **config):
    """A server of one test's own: a fresh data dir with a `base` host
    template, `config` in its config.json and srv.client holding a key of
    org. Afterwards it is started again if the test killed it, its live
    sandboxes are deleted (a graceful stop leaves them to their shims), it is
    stopped and its data dir removed."""
    data_dir = make_data_dir()
    cli(data_dir, "template", "build", "base", "--from", "host")
    srv = Server(data_dir, config=config).start()
    srv.client = Client(srv, srv.new_key(org))
    try:
        yield srv
    finally:
        if srv.proc.poll() is not None:
            srv.start()
        for sb in srv.client.get("/sandboxes?status=running,paused").json():
            srv.client.delete(f"/sandboxes/{sb['sandboxID']}")
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def delete_all_sandboxes(clients):
    """Kills every sandbox the given clients' orgs still have."""
    for c in clients:
        try:
            for sb in c.get("/sandboxes").json():
                c.delete(f"/sandboxes/{sb['sandboxID']}")
        except (requests.RequestException, ValueError):
            pass


@pytest.fixture(scope="session")
def server():
    """A server shared by the tests that do not restart it, with a `base`
    host template and a small warm pool. At the end every sandbox is killed
    through the API and the data dir removed."""
    data_dir = make_data_dir()
    cli(data_dir, "template", "build", "base", "--from", "host")
    srv = Server(data_dir, config={"pool_size": 1, "org_sandbox_cap": 20}).start()
    srv.clients = []
    yield srv
    delete_all_sandboxes(srv.clients)
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def org_a(server):
    client = Client(server, server.new_key("org-a"))
    server.clients.append(client)
    return client


@pytest.fixture(scope="session")
def org_b(server):
    client = Client(server, server.new_key("org-b"))
    server.clients.append(client)
    return client


@pytest.fixture
def sandbox(org_a):
    """A fresh sandbox of org A, killed after the test."""
    sid = org_a.create()
    yield sid
    org_a.delete(f"/sandboxes/{sid}")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "debootstrap: builds a Debian template with debootstrap (a minute or more); "
        "`make test-asan` leaves these out, `make test` runs them")
