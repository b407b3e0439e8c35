"""Fault injection: ``pmrlhf lm run`` / ``lm compare`` killed at a random point, then resumed.

A resumed run must log each step once and end with the numbers of an uninterrupted run of
the same seed; a rerun comparison must give the same summary; no temporary file or staging
folder may remain. The uninterrupted runs go in-process (same code, same seed), the
interrupted ones in a subprocess that is sent SIGKILL or SIGINT.
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmrlhf.cli import main

if not hasattr(signal, "SIGKILL"):  # pragma: no cover - not POSIX
    pytest.skip("needs POSIX signals", allow_module_level=True)

RUN = ["--model", "tiny-llama", "--task", "two_answers", "--sft-steps", "1", "--steps", "6"]
COMPARE = ["--quick", "--model", "tiny-llama", "--task", "two_answers", "--seeds", "0"]
COMPARE += ["--steps", "2"]  # fewer RL steps: the reference and optima cost most of it


def _same(a, b, path="") -> None:
    """``a == b``, floats to 1e-9 (relative or absolute)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (path, a, b)
    else:
        assert a == b, (path, a, b)


def _hidden(folder: Path) -> list[Path]:
    """Every hidden file or folder under ``folder`` (temp files, staging, a lock)."""
    return [p for p in folder.rglob("*") if p.name.startswith(".")]


def _interrupt(args, ready: Path, sig, tmp_path, delay) -> int:
    """Start ``pmrlhf lm ARGS``, wait for ``ready`` to exist, then send ``sig`` after a
    random ``delay`` (seconds); returns the exit status."""
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pmrlhf.cli", "lm", *args], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 300
            while not ready.exists() and process.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint after 300 s"
                time.sleep(0.02)
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(sig)
            return process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    config = folder / "run.yaml"
    config.write_text("rl: {checkpoint_every: 1}\n")
    assert main(["lm", "run", "--config", str(config), *RUN, "--out", str(folder / "run")]) == 0
    return config, json.loads((folder / "run" / "eval.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_run_resumes_to_the_uninterrupted_numbers(tmp_path, uninterrupted, sig):
    config, expected = uninterrupted
    out = tmp_path / "run"
    args = ["run", "--config", str(config), *RUN, "--out", str(out)]
    delay = random.uniform(0, 0.5)
    status = _interrupt(args, out / "checkpoint" / "trainer_state.pt", sig, tmp_path, delay)
    log = (tmp_path / "log.txt").read_text()[-2000:]
    assert status in (0, -sig, 130), (status, delay, log)
    if status != 0:  # the run was cut: a plain rerun is refused and says what to do
        again = subprocess.run(
            [sys.executable, "-m", "pmrlhf.cli", "lm", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.returncode == 2 and "--resume" in again.stderr, again.stderr[-2000:]
    assert main(["lm", *args, "--resume"]) == 0, (delay, log)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4, 5, 6], (delay, steps)
    _same(json.loads((out / "eval.json").read_text()), expected)
    assert not _hidden(out), (delay, _hidden(out))


def test_killed_comparison_reruns_to_the_uninterrupted_summary(tmp_path):
    baseline = tmp_path / "uninterrupted"
    assert main(["lm", "compare", *COMPARE, "--out", str(baseline)]) == 0
    expected = json.loads((baseline / "summary.json").read_text())["methods"]
    out = tmp_path / "interrupted"
    args = ["compare", *COMPARE, "--out", str(out)]
    delay = random.uniform(0, 3)
    status = _interrupt(args, out / "seed0" / "reference.json", signal.SIGKILL, tmp_path, delay)
    assert status in (0, -signal.SIGKILL), (status, delay)
    assert main(["lm", *args]) == 0  # resume is the default
    _same(json.loads((out / "summary.json").read_text())["methods"], expected)
    assert not _hidden(out), (delay, _hidden(out))
    assert os.listdir(out / "seed0" / "runs")  # every method has its folder
