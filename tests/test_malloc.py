"""pmrlhf._malloc: glibc's thresholds raised once, never against the user's own settings."""

import os
import platform
import subprocess
import sys

import pytest

from pmrlhf import _malloc

GLIBC = platform.libc_ver()[0] == "glibc"


def _in_child(env_extra: dict) -> str:
    code = "from pmrlhf._malloc import keep_freed_memory; print(keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop(_malloc.OPT_OUT, None)
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, **env_extra}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_thresholds_are_raised_on_glibc():
    assert _in_child({}) == "True"


@pytest.mark.parametrize(
    "env", [{_malloc.OPT_OUT: "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}], ids=["opt-out", "user"]
)
def test_opt_out_and_the_users_own_settings_are_respected(env):
    assert _in_child(env) == "False"


def test_off_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(_malloc.platform, "libc_ver", lambda: ("", ""))
    assert _malloc.keep_freed_memory() is False


def test_the_cli_keeps_freed_memory_before_anything_runs(monkeypatch, capsys):
    from pmrlhf import cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == [1]
