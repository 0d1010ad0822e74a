"""The CLI as a client of a running server (issue 8): sandbox create, list,
get and kill; exec's exit codes, stdin, Ctrl-C and errors; and shell driven
through a real terminal (tmux): tty, stty size following a resize of the
terminal, the exit code, and the local terminal restored afterwards."""
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BIN
from streams import SLOW


@pytest.fixture
def env(server, org_a):
    return dict(os.environ, SANDBASE_URL=server.url, SANDBASE_API_KEY=org_a.key)


def sb(env, *args, **kw):
    kw.setdefault("timeout", 60)
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, **kw)


def test_sandbox_create_list_get_kill(env, org_a):
    out = sb(env, "sandbox", "create", "--template", "base")
    assert out.returncode == 0, out.stderr
    sid = out.stdout.strip()
    assert sid.startswith("sbx_") and len(out.stdout.splitlines()) == 1
    listing = sb(env, "sandbox", "list").stdout
    assert sid in listing and "running" in listing
    got = sb(env, "sandbox", "get", sid)
    assert got.returncode == 0 and f'"sandboxID": "{sid}"' in got.stdout
    assert sb(env, "sandbox", "kill", sid).returncode == 0
    gone = sb(env, "sandbox", "kill", sid)
    assert gone.returncode == 1 and "sandbox not found" in gone.stderr
    assert org_a.get(f"/sandboxes/{sid}").json()["status"] == "stopped"
    unknown = sb(env, "sandbox", "create", "--template", "nope")
    assert unknown.returncode == 1 and "unknown template" in unknown.stderr
    assert sb(env, "sandbox").returncode == 2 and sb(env, "sandbox", "get").returncode == 2


def test_exec_output_and_exit_codes(env, sandbox):
    out = sb(env, "exec", sandbox, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    assert sb(env, "exec", sandbox, "--", "true").returncode == 0
    assert sb(env, "exec", sandbox, "--", "sh", "-c", "kill -9 $$").returncode == 128 + 9
    missing = sb(env, "exec", sandbox, "--", "no-such-command")
    assert missing.returncode == 127 and "command not found" in missing.stderr


def test_exec_stdin_and_tty(env, sandbox):
    out = sb(env, "exec", "-i", sandbox, "--", "tr", "a-z", "A-Z", input="hello\nworld\n")
    assert (out.returncode, out.stdout) == (0, "HELLO\nWORLD\n")
    # without -i the command's stdin is closed: cat ends at once
    assert sb(env, "exec", sandbox, "--", "cat", input="ignored").stdout == ""
    tty = sb(env, "exec", "-t", sandbox, "--", "tty")
    assert tty.returncode == 0 and tty.stdout.startswith("/dev/pts/")


def test_exec_ctrl_c_sends_sigint(env, sandbox):
    p = subprocess.Popen([BIN, "exec", sandbox, "--", "sh", "-c",
                          "trap 'echo got-int; exit 42' INT; echo ready; while :; do sleep 0.05; done"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 42 and out == "got-int\n", err


def test_exec_errors(server, env, org_b, sandbox):
    other = dict(env, SANDBASE_API_KEY=org_b.key)
    out = sb(other, "exec", sandbox, "--", "true")
    assert out.returncode == 1 and "sandbox not found" in out.stderr
    out = sb(dict(env, SANDBASE_API_KEY="sk-sb-" + "0" * 40), "exec", sandbox, "--", "true")
    assert out.returncode == 1 and "invalid API key" in out.stderr
    out = sb(dict(env, SANDBASE_URL="http://127.0.0.1:1"), "sandbox", "list")
    assert out.returncode == 1 and "cannot reach" in out.stderr
    assert sb(env, "exec").returncode == 2 and sb(env, "exec", sandbox).returncode == 2
    assert sb(env, "exec", "--help").returncode == 0 and sb(env, "shell", "--help").returncode == 0


class Tmux:
    """A real terminal: a tmux server of the test's own."""

    def __init__(self, cols, rows):
        self.socket = f"sb-test-{uuid.uuid4().hex[:8]}"
        self.cols, self.rows = cols, rows

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)

    def start(self, command):
        r = self.run("new-session", "-d", "-s", "t", "-x", str(self.cols), "-y", str(self.rows), command)
        assert r.returncode == 0, r.stderr

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "t", "-S", "-200").stdout

    def keys(self, *keys):
        assert self.run("send-keys", "-t", "t", *keys).returncode == 0

    def wait_for(self, text, timeout=30):
        deadline = time.time() + timeout * (3 if SLOW else 1)
        while text not in self.screen():
            assert time.time() < deadline, f"{text!r} never showed:\n{self.screen()}"
            time.sleep(0.05)

    def kill(self):
        self.run("kill-server")


def test_shell_in_a_real_terminal(env, sandbox, tmp_path):
    term = Tmux(100, 30)
    done = tmp_path / "done"
    wrapper = (f"SANDBASE_URL={env['SANDBASE_URL']} SANDBASE_API_KEY={env['SANDBASE_API_KEY']} "
               f"{BIN} shell {sandbox}; echo \"EXIT=$?\"; stty -a > {done}.stty; touch {done}; sleep 60")
    term.start(f"sh -c '{wrapper}'")
    try:
        term.keys("tty; stty size", "Enter")
        term.wait_for("30 100")
        assert "/dev/pts/" in term.screen()
        assert term.run("resize-window", "-t", "t", "-x", "120", "-y", "40").returncode == 0
        time.sleep(0.3)
        term.keys("stty size", "Enter")
        term.wait_for("40 120")
        term.keys("sleep 30; echo slept", "Enter")
        time.sleep(0.5)
        t0 = time.time()
        term.keys("C-c")                       # raw mode: the byte reaches the sandbox's terminal
        term.keys("echo back-$((6*7))", "Enter")
        term.wait_for("back-42")
        assert time.time() - t0 < (20 if SLOW else 10)          # the sleep was interrupted
        assert not any(line.strip() == "slept" for line in term.screen().splitlines())
        term.keys("exit 5", "Enter")
        term.wait_for("EXIT=5")
        deadline = time.time() + 10
        while not done.exists():
            assert time.time() < deadline
            time.sleep(0.05)
        stty = open(f"{done}.stty").read()
        assert " icanon" in stty and " echo" in stty and "-icanon" not in stty   # cooked again
    finally:
        term.kill()
