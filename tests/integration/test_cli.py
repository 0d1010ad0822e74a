"""The admin CLI: orgs, keys, usage errors, and what is (never) printed."""
import subprocess

import pytest

from conftest import BIN, cli, make_data_dir


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
