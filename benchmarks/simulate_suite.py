"""Part 4: wall time (and peak memory) of the simulation suite's command line.

Runs ``python -m pmrlhf simulate [NAMES] --quick --out TMP --seed S`` (and, in full mode,
the full suite) as subprocesses. If the subcommand does not exist in this checkout the
result says "not available"; nothing is estimated in its place.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ._common import Size, run_subprocess, summarize


def _available() -> tuple[bool, str]:
    import subprocess

    probe = subprocess.run(
        [sys.executable, "-m", "pmrlhf", "simulate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return probe.returncode == 0, (probe.stderr or probe.stdout)[-500:]


def run(size: Size, *, seed: int, log=print) -> dict:
    variants = size.pick(
        # smoke: one small experiment only, so the test suite stays fast
        smoke=[("collapse --quick", ["collapse", "--quick"], 1)],
        quick=[("--quick", ["--quick"], 1)],
        full=[("--quick", ["--quick"], 2), ("full suite", [], 1)],
    )
    timeout = size.pick(smoke=120, quick=300, full=900)
    config = {"variants": [v[0] for v in variants], "seed": seed, "timeout_seconds": timeout}
    available, message = _available()
    if not available:
        log("  simulate: `pmrlhf simulate` not available")
        return {"config": config, "available": False, "error": message, "rows": []}
    rows = []
    for label, extra, repeats in variants:
        runs = []
        for repeat in range(repeats):
            with tempfile.TemporaryDirectory(prefix="bench-sim-") as scratch:
                command = [
                    sys.executable,
                    "-m",
                    "pmrlhf",
                    "simulate",
                    *extra,
                    "--out",
                    str(Path(scratch) / "out"),
                    "--seed",
                    str(seed),
                ]
                status = run_subprocess(
                    command,
                    timeout=timeout,
                    log_path=Path(scratch) / "log.txt",
                    env={**os.environ, "MPLBACKEND": "Agg"},
                )
                if status["returncode"] != 0:
                    status["log_tail"] = (Path(scratch) / "log.txt").read_text(errors="replace")[
                        -1500:
                    ]
            runs.append(status)
            log(
                f"  simulate {label} (run {repeat + 1}/{repeats}): "
                f"{status['wall_seconds']:.1f} s, rc {status['returncode']}"
            )
        ok = [r for r in runs if r["returncode"] == 0]
        rows.append(
            {
                "variant": label,
                "command": "pmrlhf simulate " + " ".join([*extra, "--out DIR", f"--seed {seed}"]),
                "ok_runs": len(ok),
                "runs": len(runs),
                "seconds": summarize([r["wall_seconds"] for r in ok]) if ok else None,
                "peak_rss_mib": summarize([r["peak_rss_mib"] for r in ok]) if ok else None,
                "failures": [r for r in runs if r["returncode"] != 0],
            }
        )
    return {"config": config, "available": True, "rows": rows}
