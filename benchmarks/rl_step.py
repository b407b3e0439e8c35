"""Part 3: one RLOO step of ``pmrlhf.lm_experiments.train_rl`` against TRL's ``RLOOTrainer``.

Each side runs in its own subprocess (:mod:`benchmarks._rl_worker`), the two sides
alternate (pmrlhf, TRL, pmrlhf, TRL, ...), and the peak resident memory of each process is
read from ``os.wait4``'s resource usage of that very child. Reported: seconds per step and
completion tokens per second (median and min–max over every recorded step of every round),
peak RSS (median and min–max over rounds), and the TRL / pmrlhf ratio of per-round medians.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._common import Size, run_subprocess, summarize

SIDES = ("pmrlhf", "trl")


def _run_side(
    side: str,
    *,
    model: str,
    steps: int,
    warmup: int,
    seed: int,
    max_new_tokens: int,
    timeout: float,
) -> dict:
    import json

    with tempfile.TemporaryDirectory(prefix="bench-rl-") as scratch:
        out = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks._rl_worker",
            "--side",
            side,
            "--model",
            model,
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--seed",
            str(seed),
            "--max-new-tokens",
            str(max_new_tokens),
            "--json",
            str(out),
        ]
        log_path = Path(scratch) / "log.txt"
        status = run_subprocess(
            command,
            timeout=timeout,
            log_path=log_path,
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"},
        )
        if status["returncode"] != 0 or not out.exists():
            tail = log_path.read_text(errors="replace")[-2000:]
            return {"side": side, "ok": False, **status, "log_tail": tail}
        result = json.loads(out.read_text())
    result.update(ok=True, **status)
    return result


def run(size: Size, *, seed: int, log=print) -> dict:
    config = {
        "model": size.pick(smoke="tiny-llama", quick="tiny-llama", full="smollm2-135m"),
        "rounds": size.pick(smoke=1, quick=1, full=3),
        "steps_per_round": size.pick(smoke=1, quick=2, full=3),
        "warmup_steps": 1,
        "prompts_per_step": 2,
        "samples_per_prompt": 4,
        "max_new_tokens": 16,
        "beta_kl": 0.05,
        "dtype": "float32",
        "device": "cpu",
        "seed": seed,
        "trl_trainer": "trl.RLOOTrainer (beta = KL coefficient, num_iterations=1)",
        "pmrlhf_trainer": "pmrlhf.lm_experiments.train_rl (RLConfig regularizer='kl')",
    }
    timeout = size.pick(smoke=300, quick=300, full=900)
    runs: list[dict] = []
    for round_index in range(config["rounds"]):
        for side in SIDES:  # interleaved: A B A B ...
            result = _run_side(
                side,
                model=config["model"],
                steps=config["steps_per_round"],
                warmup=config["warmup_steps"],
                seed=seed + round_index,
                max_new_tokens=config["max_new_tokens"],
                timeout=timeout,
            )
            result["round"] = round_index
            runs.append(result)
            if result["ok"]:
                log(
                    f"  rl step: round {round_index} {side}: "
                    f"{np.median(result['step_seconds']):.3g} s/step, "
                    f"peak {result['peak_rss_mib']:.0f} MiB ({result['wall_seconds']:.0f} s)"
                )
            else:
                log(f"  rl step: round {round_index} {side}: FAILED (rc {result['returncode']})")
    summary = {}
    for side in SIDES:
        ok = [r for r in runs if r["side"] == side and r["ok"]]
        if not ok:
            failed = next((r for r in runs if r["side"] == side), {})
            summary[side] = {"available": False, "error": failed.get("log_tail", "not run")}
            continue
        seconds = [t for r in ok for t in r["step_seconds"]]
        tokens_per_second = [
            n / t for r in ok for n, t in zip(r["step_tokens"], r["step_seconds"], strict=True)
        ]
        summary[side] = {
            "available": True,
            "seconds_per_step": summarize(seconds),
            "tokens_per_second": summarize(tokens_per_second),
            "peak_rss_mib": summarize([r["peak_rss_mib"] for r in ok]),
            "tokens_per_step_median": float(np.median([n for r in ok for n in r["step_tokens"]])),
            "rounds": len(ok),
            "steps_recorded": len(seconds),
        }
    ratio = None
    pairs = [
        (a, b)
        for a in runs
        for b in runs
        if a["side"] == "trl"
        and b["side"] == "pmrlhf"
        and a["round"] == b["round"]
        and a["ok"]
        and b["ok"]
    ]
    if pairs:
        per_round = [np.median(a["step_seconds"]) / np.median(b["step_seconds"]) for a, b in pairs]
        ratio = summarize(per_round)
    return {
        "config": config,
        "summary": summary,
        "trl_over_pmrlhf_seconds_per_step": ratio,
        "runs": runs,
    }
