"""The command line's one-line errors: argparse's own, an unwritable --out, a bad --config
or --pairs file, stdout on a full disk, a busy folder; each names the subcommand."""

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pmrlhf
from pmrlhf._lock import LOCK_NAME
from pmrlhf.cli import main

SRC = str(Path(pmrlhf.__file__).resolve().parents[1])


def _run(capsys, *args):
    """``pmrlhf ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _process(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", *args], env=env, timeout=300, **kwargs
    )


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ["lm", "run", "--beta", "x"],
            "pmrlhf lm run: error: argument --beta: invalid float value: 'x'",
        ),
        (
            ["lm", "trl", "--steps", "1.5"],
            "pmrlhf lm trl: error: argument --steps/--max_steps: invalid int value: '1.5'",
        ),
        (
            ["lm", "compare", "--seeds", "a"],
            "pmrlhf lm compare: error: argument --seeds: invalid int value: 'a'",
        ),
        (["lm", "pairs", "--bogus"], "pmrlhf lm pairs: error: unrecognized arguments: --bogus"),
        (["--bogus", "derive"], "pmrlhf derive: error: unrecognized arguments: --bogus"),
        (
            ["lm", "run", "--regularizer", "xx"],
            "pmrlhf lm run: error: argument --regularizer: invalid choice: 'xx'",
        ),
        (["derive", "--format", "rtf"], "pmrlhf derive: error: argument --format: invalid"),
        (["nope"], "pmrlhf: error: argument COMMAND: invalid choice: 'nope'"),
    ],
)
def test_argparse_errors_are_one_line_naming_the_subcommand(capsys, args, line):
    status, out, err = _run(capsys, *args)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith(line), err


def test_user_errors_name_the_lm_subcommand(tmp_path, capsys):
    status, _, err = _run(capsys, "lm", "run", "--seed", "-3", "--out", tmp_path / "o")
    assert status == 2 and err.startswith("pmrlhf lm run: error: seed must be"), err
    status, _, err = _run(capsys, "lm", "pairs", "--per-prompt", "0", "--out", tmp_path / "o")
    assert status == 2 and err.startswith("pmrlhf lm pairs: error: --per-prompt"), err


def test_help_still_prints_the_usage_block(capsys):
    status, out, _ = _run(capsys, "lm", "run", "--help")
    assert status == 0 and out.startswith("usage: pmrlhf lm run")


OUT_COMMANDS = [
    ["lm", "run", "--model", "tiny-llama"],
    ["lm", "trl", "--model", "tiny-llama"],
    ["lm", "compare", "--quick", "--model", "tiny-llama"],
    ["lm", "audit", "--model", "tiny-llama", "--pairs", "p.jsonl", "--fit-reward-model"],
    ["lm", "pairs"],
    ["simulate", "collapse", "--quick"],
    ["reproduce"],
]


@pytest.mark.parametrize("command", OUT_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("out", ["/proc/pmrlhf-x", "/proc/self/pmrlhf-x", "/sys/pmrlhf-x"])
def test_an_unwritable_out_is_one_line_naming_out(tmp_path, monkeypatch, capsys, command, out):
    if not Path(out).parent.is_dir():
        pytest.skip(f"no {Path(out).parent} here")
    monkeypatch.chdir(tmp_path)
    status, _, err = _run(capsys, *command, "--out", out)
    assert status == 2 and err.count("\n") == 1, err
    assert "--out" in err and "not writable" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written, not even the probe


def test_an_out_below_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    status, _, err = _run(capsys, "lm", "pairs", "--out", tmp_path / "file" / "sub")
    assert status == 2 and "--out" in err and "is a file" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "content, match",
    [(None, "is a folder"), (b"\x00\x01bin", "binary file"), (b"seed: caf\xe9\n", "not UTF-8")],
)
@pytest.mark.parametrize("command", ["run", "trl"])
def test_a_bad_config_file_is_one_line_naming_config(tmp_path, capsys, command, content, match):
    path = tmp_path / "cfg"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    status, _, err = _run(capsys, "lm", command, "--config", path, "--out", tmp_path / "o")
    assert status == 2 and err.count("\n") == 1, err
    assert f"error: --config {path}" in err and match in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "is a folder"),
        (b'{"chosen": "a"}\n\x00\x00', "binary file"),
        ('{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"), "not UTF-8"),
    ],
)
def test_a_bad_pairs_file_is_one_line_naming_pairs(tmp_path, capsys, content, match):
    path = tmp_path / "pairs.jsonl"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    args = ["lm", "audit", "--model", "tiny-llama", "--pairs", path, "--fit-reward-model"]
    status, _, err = _run(capsys, *args, "--out", tmp_path / "o")
    assert status == 2 and err.count("\n") == 1, err
    assert f"pmrlhf lm audit: error: --pairs {path}" in err and match in err
    assert not (tmp_path / "o").exists()


def test_load_preference_pairs_refuses_a_folder_and_latin1(tmp_path):
    from pmrlhf.errors import PmrlhfUserError
    from pmrlhf.lm_experiments.data.preference_pairs import load_preference_pairs

    with pytest.raises(PmrlhfUserError, match="is a folder"):
        load_preference_pairs(tmp_path)
    path = tmp_path / "p.jsonl"
    path.write_bytes('{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    with pytest.raises(PmrlhfUserError, match="not UTF-8"):
        load_preference_pairs(path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize(
    "args", [["derive"], ["--help"], ["lm", "run", "--help"], ["--version"]], ids=str
)
def test_stdout_on_a_full_disk_is_one_line_and_fails(args):
    with open("/dev/full", "w") as full:
        result = _process(*args, stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode != 0
    assert result.stderr == "pmrlhf: error: cannot write to stdout: No space left on device\n"


def test_a_closed_pipe_after_one_line_is_quiet():
    env = {**os.environ, "PYTHONPATH": SRC}
    result = subprocess.run(
        f"{sys.executable} -m pmrlhf.cli derive --format json | head -n 1",
        shell=True, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.stdout == "{\n" and result.stderr == "", result.stderr


@pytest.fixture
def locked(tmp_path):
    """``tmp_path / 'run'`` with a run that has no checkpoint yet, its lock held as another
    process holds it (another open file description)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield out
    finally:
        os.close(fd)


@pytest.mark.parametrize("flags", [[], ["--restart"], ["--resume"]], ids=str)
def test_a_busy_folder_says_wait_not_restart(locked, capsys, flags):
    args = ["lm", "run", "--model", "tiny-llama", "--task", "two_answers", "--out", locked]
    status, _, err = _run(capsys, *args, *flags)
    assert status == 2 and err.count("\n") == 1, err
    assert "another pmrlhf process (pid 4242)" in err and "wait for it to finish" in err
    assert "pass --restart" not in err and "does not override it" in err
    assert sorted(p.name for p in locked.iterdir()) == [LOCK_NAME, "metrics.jsonl"]


def test_a_free_folder_still_says_restart(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / LOCK_NAME).write_text("4242\n")  # left by a killed run: no lock
    args = ["lm", "run", "--model", "tiny-llama", "--task", "two_answers", "--out", out]
    status, _, err = _run(capsys, *args)
    assert status == 2 and "pass --restart to discard it" in err, err


def test_only_rank_0_asks_whether_the_folder_is_busy(locked, monkeypatch):
    """Under ``torchrun`` rank 0 holds the lock; the other ranks must not take it for
    another run's."""
    from pmrlhf.errors import FolderBusyError
    from pmrlhf.lm_experiments.commands.single_run import _check_folder

    monkeypatch.setenv("RANK", "1")
    _check_folder(locked, resume=False, restart=True)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(FolderBusyError, match="wait for it to finish"):
        _check_folder(locked, resume=False, restart=True)
