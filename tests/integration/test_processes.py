"""POST /sandboxes/:id/processes exactly as the SandBase docs describe it,
plus stdin, user, durationMs, signal, oomKilled and truncated."""
import time

import pytest


def test_runs_a_command_directly(org_a, sandbox):
    r = org_a.run(sandbox, "echo", "hello", "$HOME", "a b")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stdout"] == "hello $HOME a b\n"
    assert body["stderr"] == ""
    assert body["exitCode"] == 0
    assert body["processID"].isdigit()
    assert body["durationMs"] >= 0
    assert body["truncated"] is False and body["oomKilled"] is False


def test_python_prints(org_a, sandbox):
    r = org_a.run(sandbox, "python3", "-c", "print(1+1)")
    assert r.status_code == 200 and r.json()["stdout"] == "2\n"


def test_non_zero_exit_is_still_200(org_a, sandbox):
    r = org_a.run(sandbox, "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.status_code == 200
    assert r.json()["stdout"] == "out\n" and r.json()["stderr"] == "err\n"
    assert r.json()["exitCode"] == 3


def test_default_cwd_user_and_env(org_a, sandbox):
    out = org_a.sh(sandbox, 'pwd; id -u; echo "$HOME"; echo "$FOO"', envVars={"FOO": "bar"})
    assert out["stdout"] == "/workspace\n1000\n/home/user\nbar\n"
    out = org_a.sh(sandbox, "pwd", cwd="/tmp")
    assert out["stdout"] == "/tmp\n"


def test_root_user(org_a, sandbox):
    out = org_a.sh(sandbox, "id -u; touch /etc/created-by-root && echo ok", user="root")
    assert out["stdout"] == "0\nok\n"
    out = org_a.sh(sandbox, "touch /etc/x 2>/dev/null || echo denied")
    assert out["stdout"] == "denied\n"


def test_stdin(org_a, sandbox):
    r = org_a.run(sandbox, "cat", stdin="line one\nline two\n")
    assert r.status_code == 200 and r.json()["stdout"] == "line one\nline two\n"


def test_command_not_found_is_502(org_a, sandbox):
    r = org_a.run(sandbox, "pyhton3", "-c", "1")
    assert r.status_code == 502
    assert r.json() == {"code": 502, "message": "command not found: pyhton3 (the command could not "
                                                "start; the sandbox itself is fine)"}


def test_bad_cwd_is_reported(org_a, sandbox):
    r = org_a.run(sandbox, "pwd", cwd="/does/not/exist")
    assert r.status_code in (400, 502)
    assert "/does/not/exist" in r.json()["message"] or "directory" in r.json()["message"]


def test_timeout_kills_the_whole_tree_and_returns_partial_output(org_a, sandbox):
    script = "echo started; setsid sh -c 'sleep 300' & (sleep 300 &) ; sleep 300"
    t0 = time.time()
    r = org_a.run(sandbox, "/bin/sh", "-c", script, timeout=1)
    assert time.time() - t0 < 10
    assert r.status_code == 502
    body = r.json()
    assert body["code"] == 502
    assert body["message"] == ("timed out after 1s: the command was killed (raise timeout, up to 86400; "
                               "the sandbox itself is fine)")
    assert body["stdout"] == "started\n"
    left = org_a.sh(sandbox, "ps -eo comm | grep -c sleep || true")["stdout"].strip()
    assert left == "0"


def test_a_background_child_lives_on_and_the_call_returns_at_once(org_a, sandbox):
    # `python app.py &`: the call returns when the shell exits, although the
    # child still holds stdout, and the child keeps running.
    t0 = time.time()
    r = org_a.run(sandbox, "sh", "-c", "sleep 100 & echo started")
    took = time.time() - t0
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "started\n" and r.json()["exitCode"] == 0
    assert took < 0.45, took
    time.sleep(0.2)
    assert org_a.sh(sandbox, "pgrep -c -x sleep || true")["stdout"] == "1\n"


def test_signal_is_reported(org_a, sandbox):
    r = org_a.run(sandbox, "/bin/sh", "-c", "kill -TERM $$")
    assert r.status_code == 200
    assert r.json()["signal"] == 15


@pytest.mark.parametrize("body,message", [
    ({}, "missing field: cmd"),
    ({"cmd": ""}, "cmd must not be empty"),
    ({"cmd": 5}, "cmd must be a string"),
    ({"cmd": "ls", "args": "-l"}, "args must be an array of strings"),
    ({"cmd": "ls", "args": [1]}, None),
    ({"cmd": "ls", "envVars": {"A": 1}}, None),
    ({"cmd": "ls", "cwd": "relative"}, "cwd must be an absolute path"),
    ({"cmd": "ls", "timeout": 0}, None),
    ({"cmd": "ls", "user": "admin"}, None),
])
def test_bad_input_is_400(org_a, sandbox, body, message):
    r = org_a.post(f"/sandboxes/{sandbox}/processes", json=body)
    assert r.status_code == 400, r.text
    if message:
        assert r.json()["message"] == message


def test_malformed_body_and_bad_ids(org_a, sandbox):
    r = org_a.post(f"/sandboxes/{sandbox}/processes", data="{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert org_a.post("/sandboxes/nope/processes", json={"cmd": "true"}).status_code == 400
    r = org_a.post("/sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa/processes", json={"cmd": "true"})
    assert r.status_code == 404 and r.json()["message"] == "sandbox not found"


def test_large_interleaved_output_without_deadlock(org_a, sandbox):
    script = ("i=0; while [ $i -lt 2000 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done;"
              "head -c 3000000 /dev/zero | tr '\\0' 'x'")
    out = org_a.sh(sandbox, script)
    assert out["stdout"].count("out-") == 2000
    assert out["stderr"].count("err-") == 2000
    assert out["stdout"].endswith("x" * 100)
    assert len(out["stdout"]) > 3000000


def test_output_over_the_cap_is_truncated(org_a, sandbox):
    out = org_a.sh(sandbox, "head -c 12000000 /dev/zero | tr '\\0' 'y'; echo done >&2")
    assert out["truncated"] is True
    assert len(out["stdout"]) == 10 * 1024 * 1024
    assert out["stderr"] == "done\n"
    assert out["exitCode"] == 0


def test_binary_output_becomes_replacement_characters(org_a, sandbox):
    out = org_a.sh(sandbox, "printf 'a\\377b'")
    assert out["stdout"] == "a\ufffdb"


def test_memory_hog_is_oom_killed_and_reported(org_a, sandbox):
    r = org_a.run(sandbox, "python3", "-c", "x = b'x' * (1024**3); print(len(x))")
    assert r.status_code == 200
    body = r.json()
    assert body["oomKilled"] is True
    assert body["signal"] == 9
    # The sandbox itself survives and still answers.
    assert org_a.sh(sandbox, "echo still here")["stdout"] == "still here\n"


def test_orphans_are_reaped_by_pid_1(org_a, sandbox):
    # A daemon whose parent exits is re-parented to the sandbox's PID 1,
    # which must reap it when it ends: no zombies pile up.
    org_a.sh(sandbox, "sh -c 'sleep 0.2 &'; sh -c 'sleep 0.2 &'")
    time.sleep(0.6)
    out = org_a.sh(sandbox, "ps -eo pid,stat,comm")["stdout"]
    assert " Z" not in out, out
    pid1 = [line.split() for line in out.splitlines()[1:] if line.split()[0] == "1"][0]
    assert pid1[2].startswith("memfd:sandbox"), "PID 1 is the tiny embedded reaper"
