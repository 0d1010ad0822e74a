"""The admin CLI: orgs, keys, templates, usage errors and help, the data dir
(never created by these verbs), and what is (never) printed."""
import os
import subprocess

import pytest

from conftest import BIN, ROOT, cli, make_data_dir


@pytest.fixture
def data_dir():
    return make_data_dir()


def test_version_and_help():
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sandbase ")
    out = subprocess.run([BIN, "help"], capture_output=True, text=True)
    assert out.returncode == 0 and "serve" in out.stdout


def test_unknown_verb_is_a_usage_error():
    out = subprocess.run([BIN, "frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command" in out.stderr


def test_org_create_list_and_duplicate(data_dir):
    cli(data_dir, "org", "create", "acme")
    assert "acme" in cli(data_dir, "org", "list").stdout
    dup = cli(data_dir, "org", "create", "acme", check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr


def test_key_create_prints_only_the_key_when_piped(data_dir):
    cli(data_dir, "org", "create", "acme")
    out = cli(data_dir, "key", "create", "--org", "acme", "--name", "ci").stdout
    lines = out.splitlines()
    assert len(lines) == 1
    key = lines[0]
    assert key.startswith("sk-sb-") and len(key) == 46
    assert all(c in "0123456789abcdef" for c in key[6:])


def test_key_list_never_shows_the_secret(data_dir):
    cli(data_dir, "org", "create", "acme")
    key = cli(data_dir, "key", "create", "--org", "acme", "--name", "laptop").stdout.strip()
    listing = cli(data_dir, "key", "list").stdout
    assert key not in listing and key[6:] not in listing
    assert key[:14] in listing and "laptop" in listing and "acme" in listing


def test_key_for_unknown_org_fails(data_dir):
    out = cli(data_dir, "key", "create", "--org", "ghost", check=False)
    assert out.returncode == 1 and "org not found" in out.stderr


@pytest.mark.parametrize("args", [["org"], ["org", "create"], ["key", "create"], ["key", "revoke"],
                                  ["org", "bogus"], ["key", "create", "--bogus"]])
def test_wrong_calls_print_usage(data_dir, args):
    out = cli(data_dir, *args, check=False)
    assert out.returncode == 2
    assert "usage:" in out.stderr


def test_revoke_unknown_prefix_fails(data_dir):
    out = cli(data_dir, "key", "revoke", "sk-sb-00000000", check=False)
    assert out.returncode == 1


# ---- issue 6: the first hour as a new user ----

def run(*args, env=None):
    """The binary with exactly these arguments (no --data-dir appended) and
    SANDBASE_DATA_DIR only when env sets it."""
    full_env = {k: v for k, v in os.environ.items() if k != "SANDBASE_DATA_DIR"}
    full_env.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, env=full_env)


def new_key(data_dir, org="acme"):
    if org not in cli(data_dir, "org", "list").stdout.split():
        cli(data_dir, "org", "create", org)
    return cli(data_dir, "key", "create", "--org", org).stdout.strip()


def key_status(data_dir, key):
    """'active' or 'revoked', from `key list` (which shows the 8-hex prefix)."""
    for line in cli(data_dir, "key", "list").stdout.splitlines()[1:]:
        if line.startswith(key[:14] + " "):
            return line.split()[-1]
    raise AssertionError(f"{key[:14]} not in key list")


def test_key_revoke_by_a_shorter_unique_prefix(data_dir):
    key = new_key(data_dir)
    out = cli(data_dir, "key", "revoke", key[:10])     # "sk-sb-" + 4 hex, as in "sk-sb-1a2b"
    assert out.returncode == 0 and key[:14] in out.stdout and key[14:] not in out.stdout
    assert key_status(data_dir, key) == "revoked"
    again = cli(data_dir, "key", "revoke", key[:14], check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr


def test_key_revoke_by_whole_key_in_either_spelling(data_dir):
    sk, e2b = new_key(data_dir), new_key(data_dir)
    out = cli(data_dir, "key", "revoke", sk)
    assert out.returncode == 0 and sk[6:] not in out.stdout + out.stderr
    assert key_status(data_dir, sk) == "revoked" and key_status(data_dir, e2b) == "active"
    out = cli(data_dir, "key", "revoke", "e2b_" + e2b[6:])
    assert out.returncode == 0 and key_status(data_dir, e2b) == "revoked"
    again = cli(data_dir, "key", "revoke", sk, check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert sk[14:] not in again.stderr


def test_key_revoke_ambiguous_prefix_says_how_many_match(data_dir):
    # 17 keys: by pigeonhole two share their first hex character.
    keys = [new_key(data_dir) for _ in range(17)]
    by_first = {}
    for k in keys:
        by_first.setdefault(k[6], []).append(k)
    first, same = max(by_first.items(), key=lambda kv: len(kv[1]))
    out = cli(data_dir, "key", "revoke", "sk-sb-" + first, check=False)
    assert out.returncode == 1
    assert f"{len(same)} API keys match sk-sb-{first}" in out.stderr
    assert "give more characters" in out.stderr
    assert all(key_status(data_dir, k) == "active" for k in same)
    cli(data_dir, "key", "revoke", same[0])              # the whole key is never ambiguous
    assert key_status(data_dir, same[0]) == "revoked" and key_status(data_dir, same[1]) == "active"


def test_key_revoke_no_match_and_malformed(data_dir):
    new_key(data_dir)
    out = cli(data_dir, "key", "revoke", "sk-sb-zz", check=False)
    assert out.returncode == 1 and "neither a key prefix nor a whole API key" in out.stderr
    out = cli(data_dir, "key", "revoke", "sk-sb-0123456789", check=False)   # longer than a prefix
    assert out.returncode == 1 and "neither a key prefix" in out.stderr
    out = cli(data_dir, "key", "revoke", "sk-sb-00000000", check=False)
    assert out.returncode == 1 and "no API key matches sk-sb-00000000" in out.stderr


@pytest.mark.parametrize("args", [["org", "list"], ["org", "create", "acme"], ["key", "list"],
                                  ["key", "create", "--org", "acme"], ["key", "revoke", "sk-sb-1a2b"],
                                  ["template", "list"], ["template", "build", "t", "--from", "host"],
                                  ["template", "rm", "t"]])
def test_missing_data_dir_is_an_error_not_a_new_database(data_dir, args):
    missing = os.path.join(data_dir, "typo")
    out = cli(missing, *args, check=False)
    assert out.returncode == 1
    assert f"data dir {missing} does not exist" in out.stderr
    assert f"sandbase serve --bootstrap --data-dir {missing}" in out.stderr
    assert not os.path.exists(missing)
    out = run(*args, env={"SANDBASE_DATA_DIR": missing})
    assert out.returncode == 1 and "does not exist" in out.stderr and not os.path.exists(missing)


def test_global_data_dir_before_the_verb(data_dir):
    assert run("--data-dir", data_dir, "org", "create", "acme").returncode == 0
    out = run(f"--data-dir={data_dir}", "org", "list")
    assert out.returncode == 0 and "acme" in out.stdout
    out = run("--data-dir", data_dir, "key", "create", "--org", "acme")
    assert out.returncode == 0 and out.stdout.startswith("sk-sb-")
    out = run("--data-dir", data_dir, "key", "list")
    assert out.returncode == 0 and out.stdout.strip().startswith("PREFIX") and "acme" in out.stdout
    out = run("--data-dir", data_dir, "template", "list")
    assert out.returncode == 0 and "no templates yet" in out.stderr
    out = run("org", "list", env={"SANDBASE_DATA_DIR": data_dir})
    assert out.returncode == 0 and "acme" in out.stdout
    out = run("--data-dir", data_dir)
    assert out.returncode == 2 and "usage:" in out.stderr
    out = run("--data-dir")
    assert out.returncode == 2 and "--data-dir needs a value" in out.stderr


@pytest.mark.parametrize("args,message", [
    (["org", "frobnicate"], "unknown org command 'frobnicate'"),
    (["key", "frobnicate"], "unknown key command 'frobnicate'"),
    (["template", "frobnicate"], "unknown template command 'frobnicate'"),
    (["template", "build", "x", "--from", "hots"], "unknown --from value 'hots' (expected host or debian)"),
    (["template", "list", "--from", "host"], "--from is only for template build"),
    (["template", "build", "x", "--bogus"], "unknown option '--bogus'"),
])
def test_mistyped_commands_and_values_say_unknown(data_dir, args, message):
    out = cli(data_dir, *args, check=False)
    assert out.returncode == 2
    assert message in out.stderr and "usage: sandbase" in out.stderr


@pytest.mark.parametrize("topic", ["serve", "org", "key", "template"])
def test_help_topic_for_every_verb(topic):
    out = run("help", topic)
    assert out.returncode == 0, out.stderr
    assert f"usage: sandbase {topic}" in out.stdout


def test_help_unknown_topic():
    out = run("help", "nonsense")
    assert out.returncode == 2 and "unknown help topic 'nonsense'" in out.stderr


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["org", "--help"], ["org", "create", "--help"],
                                  ["key", "--help"], ["key", "create", "--help"], ["template", "--help"],
                                  ["template", "build", "--help"], ["serve", "--help"]])
def test_help_flags_exit_zero(args):
    out = run(*args)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_template_build_help_shows_force_and_mirror():
    out = run("template", "build", "--help").stdout
    assert "[--mirror URL]" in out and "[--force]" in out


def test_help_and_readme_agree_on_flags():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = readme.split("## The CLI", 1)[1].split("```", 2)[1]
    lines = [l.strip() for l in block.splitlines() if l.strip()]
    assert lines and all(l.startswith("sandbase ") for l in lines)
    help_lines = [l.strip() for l in run("help").stdout.splitlines()]
    for line in lines:
        assert line in help_lines, f"README line not in `sandbase help`: {line}"
    start = help_lines.index("usage:") + 1
    usage = help_lines[start:help_lines.index("", start)]
    assert usage == lines      # the same commands, in the same order
    text = "\n".join(help_lines)
    assert "--log-format auto|text|json" in text and "--bootstrap" in text
    assert "[--mirror URL] [--force]" in text


@pytest.mark.parametrize("name", ["Acme", "acme corp", "a/b", "_acme", "x" * 64, "caf\u00e9"])
def test_org_names_follow_the_template_name_rule(data_dir, name):
    out = cli(data_dir, "org", "create", name, check=False)
    assert out.returncode == 1
    assert f"invalid org name '{name}'" in out.stderr
    assert "1-63 characters of [a-z0-9_-], starting with a letter or digit" in out.stderr
    assert name not in cli(data_dir, "org", "list").stdout.split()


def test_org_name_rule_accepts_what_templates_accept(data_dir):
    for name in ["a", "org-a", "0_x", "x" * 63]:
        cli(data_dir, "org", "create", name)


def test_template_rebuild_needs_force(data_dir):
    cli(data_dir, "template", "build", "t", "--from", "host")
    again = cli(data_dir, "template", "build", "t", "--from", "host", check=False)
    assert again.returncode == 1
    assert ("template t already exists; rebuild it with --force (running sandboxes keep the tree "
            "they started from)") in again.stderr
    out = cli(data_dir, "template", "build", "--force", "t", "--from", "host")
    assert out.returncode == 0 and "built template t" in out.stdout
    assert "t " in cli(data_dir, "template", "list").stdout
