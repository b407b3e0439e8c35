"""Part 5: what the penalty costs inside TRL: ``PMRLOOTrainer`` beside TRL's ``RLOOTrainer``.

The same RLOO step as part 3's TRL side (:mod:`benchmarks._rl_worker`, setting ``default``:
every prompt of ``three_answers`` x ``RLConfig().samples_per_prompt`` samples, KL
``beta``), run by TRL's ``RLOOTrainer`` and by ``pmrlhf.trl.PMRLOOTrainer`` with
``regularizer="kl"`` (TRL's own penalty through the subclass), ``"cpm"`` (conditional PM:
the reference pass plus a ``torch.where``) and ``"pm"`` (no reference model, no reference
pass). Each side in its own process, the sides interleaved round by round; per side the
seconds per step (median and min–max over every timed step of every round) and the peak
RSS of its process, and per ``PMRLOOTrainer`` side the ratio to the stock trainer of the
per-round medians. The goal: the penalty costs under :data:`GOAL` of a step.
"""

from __future__ import annotations

import numpy as np

from ._common import Size, summarize
from .rl_step import _run_side

STOCK = "trl"
SIDES = (STOCK, "pmtrl-kl", "pmtrl-cpm", "pmtrl-pm")
TRAINERS = {
    "trl": "trl.RLOOTrainer",
    "pmtrl-kl": "pmrlhf.trl.PMRLOOTrainer, regularizer='kl'",
    "pmtrl-cpm": "pmrlhf.trl.PMRLOOTrainer, regularizer='cpm', cpm_alpha=0.1",
    "pmtrl-pm": "pmrlhf.trl.PMRLOOTrainer, regularizer='pm'",
}
GOAL = 0.05  # the penalty may cost at most this fraction of a step
SETTING = "default"


def summarize_runs(runs: list[dict]) -> dict:
    """Per side: seconds per step and peak RSS; per PM side: per-round ratios to the stock
    trainer (seconds per step, peak RSS) and whether the step-time overhead meets
    :data:`GOAL` (``"pm"`` is held to it too, though it skips a pass)."""
    summary = {}
    for side in SIDES:
        ok = [r for r in runs if r["side"] == side and r["ok"] and r["steps_recorded"]]
        if not ok:
            failed = next((r for r in runs if r["side"] == side), {})
            summary[side] = {"available": False, "error": failed.get("log_tail", "not run")}
            continue
        summary[side] = {
            "available": True,
            "trainer": TRAINERS[side],
            "seconds_per_step": summarize([t for r in ok for t in r["step_seconds"]]),
            "peak_rss_mib": summarize([r["peak_rss_mib"] for r in ok]),
            "rounds": len(ok),
            "steps_recorded": sum(r["steps_recorded"] for r in ok),
        }
    timed = [r for r in runs if r["ok"] and r["steps_recorded"]]
    for side in SIDES[1:]:
        pairs = [
            (a, b)
            for a in timed
            for b in timed
            if a["side"] == side and b["side"] == STOCK and a["round"] == b["round"]
        ]
        if not pairs or not summary[side]["available"]:
            continue
        seconds = summarize(
            [np.median(a["step_seconds"]) / np.median(b["step_seconds"]) for a, b in pairs]
        )
        memory = summarize([a["peak_rss_mib"] / b["peak_rss_mib"] for a, b in pairs])
        summary[side] |= {
            "seconds_ratio_to_stock": seconds,
            "peak_rss_ratio_to_stock": memory,
            "overhead": seconds["median"] - 1,
            "goal_met": bool(seconds["median"] - 1 < GOAL),
        }
    return summary


def run(size: Size, *, seed: int, log=print) -> dict:
    config = {
        "model": size.pick(smoke="tiny-llama", quick="tiny-llama", full="smollm2-135m"),
        "rounds": size.pick(smoke=1, quick=1, full=3),
        "steps_per_round": size.pick(smoke=1, quick=2, full=5),
        "warmup_steps": 1,
        "setting": SETTING,
        "beta": 0.05,
        "cpm_alpha": 0.1,
        "dtype": "float32",
        "device": "cpu",
        "seed": seed,
        "goal": GOAL,
        "trainers": TRAINERS,
    }
    timeout = size.pick(smoke=300, quick=300, full=900)
    runs: list[dict] = []
    for round_index in range(config["rounds"]):
        for side in SIDES:  # interleaved: A B C D A B C D ...
            result = _run_side(
                side,
                setting=SETTING,
                model=config["model"],
                steps=config["steps_per_round"],
                warmup=config["warmup_steps"],
                seed=seed + round_index,
                timeout=timeout,
            )
            result.update(round=round_index)
            runs.append(result)
            if result["ok"]:
                log(
                    f"  trl penalty: round {round_index} {side}: "
                    f"{np.median(result['step_seconds']):.3g} s/step, "
                    f"peak {result['peak_rss_mib']:.0f} MiB ({result['wall_seconds']:.0f} s)"
                )
            else:
                log(
                    f"  trl penalty: round {round_index} {side}: FAILED (rc {result['returncode']})"
                )
    return {"config": config, "summary": summarize_runs(runs), "runs": runs}
