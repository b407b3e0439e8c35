"""Part 3: one RLOO step of ``pmrlhf.lm_experiments.train_rl`` against TRL's ``RLOOTrainer``.

Each side runs in its own subprocess (:mod:`benchmarks._rl_worker`), the two sides
alternate (pmrlhf, TRL, pmrlhf, TRL, ...), and the peak resident memory of each process is
read from ``os.wait4``'s resource usage of that very child. Reported per setting (``long``:
the earlier 2 prompts x 4 samples; ``task8``: as many samples on the default
task; ``default``: the LM comparison's default RLConfig):
the work of a step in tokens, seconds per step and completion tokens per second (median
and min–max over every recorded step of every round), model FLOPs per step and model FLOPs
utilisation against this machine's fp32 matmul rate measured in the same run
(:mod:`benchmarks.flops`), peak RSS (median and min–max over rounds), and the TRL / pmrlhf
ratio of per-round medians.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._common import Size, run_subprocess, summarize
from .flops import matmul_rate, rl_step_passes, step_flops

SIDES = ("pmrlhf", "trl")
SETTINGS = ("long", "task8", "default")
SETTING_TEXT = {
    "long": "long answers: 2 long-answer prompts × 4 samples, at most 16 new tokens, lr 2e-5",
    "task8": "the same 8 samples per step on the default task: the first 2 prompts of "
    "`three_answers` × 4 samples, at most the task's longest candidate new tokens, "
    "lr = RLConfig().lr",
    "default": "the LM comparison's default RLConfig: every prompt of `three_answers` (4) × k "
    "samples (k = RLConfig().samples_per_prompt), at most the task's longest candidate new "
    "tokens, lr = RLConfig().lr",
}
# Passes before the reward call (the clock) in a step; the rest come after it.
BEFORE_REWARD = {"pmrlhf": 1, "trl": 3}


def _run_side(
    side: str,
    *,
    setting: str,
    model: str,
    steps: int,
    warmup: int,
    seed: int,
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
            "--setting",
            setting,
            "--model",
            model,
            "--steps",
            str(steps),
            "--warmup",
            str(warmup),
            "--seed",
            str(seed),
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


def _passes(result: dict, work: dict) -> list[dict]:
    return rl_step_passes(
        result["side"],
        prompt_lengths=work["prompt_lengths"],
        rows_prompt=work["rows_prompt"],
        completion_lengths=work["completion_lengths"],
        trl_head_all_positions=result.get("trl_head_all_positions") is not False,
    )


def cycle_flops(result: dict) -> list[float]:
    """Model FLOPs of each timed cycle (reward call of step ``s`` to that of ``s + 1``): the
    passes of step ``s`` after its reward call and those of step ``s + 1`` before it."""
    before = BEFORE_REWARD[result["side"]]
    work = result["step_work"]
    flops = []
    for s in range(result["warmup"], result["warmup"] + result["steps_recorded"]):
        passes = _passes(result, work[s])[before:] + _passes(result, work[s + 1])[:before]
        flops.append(step_flops(result["dims"], passes))
    return flops


def _timed(result: dict) -> list[dict]:
    return result["step_work"][result["warmup"] : result["warmup"] + result["steps_recorded"]]


def work_summary(results: list[dict]) -> dict:
    """The work of the timed steps of one side's runs: prompts, samples, tokens per pass and
    model FLOPs; medians over every timed step (not cycles: see :func:`cycle_flops`)."""
    first = results[0]
    step = _timed(first)[0]
    steps = [(r, w) for r in results for w in _timed(r)]
    passes = [_passes(r, w) for r, w in steps]
    return {
        "prompts_per_step": first["prompts_per_step"],
        "samples_per_prompt": first["samples_per_prompt"],
        "max_new_tokens": first["max_new_tokens"],
        "lr": first["lr"],
        "beta": first["beta"],
        # Tokens of each distinct prompt, in task order (TRL shuffles the prompts of a step).
        "prompt_lengths": [
            n for _, n in sorted(zip(step["prompts"], step["prompt_lengths"], strict=True))
        ],
        "completion_tokens_mean": float(
            np.median([np.mean(w["completion_lengths"]) for _, w in steps])
        ),
        "passes": [
            {
                "pass": p["pass"],
                "trained": p["trained"],
                "tokens": float(np.median([ps[i]["tokens"] for ps in passes])),
                "logits": float(np.median([ps[i]["logits"] for ps in passes])),
            }
            for i, p in enumerate(passes[0])
        ],
        "flops_per_step": float(np.median([step_flops(first["dims"], ps) for ps in passes])),
        "dims": first["dims"],
        "trl_head_all_positions": first.get("trl_head_all_positions"),
    }


def _summarize_setting(setting: str, runs: list[dict], rate_gflops: float) -> dict:
    summary = {}
    for side in SIDES:
        ok = [r for r in runs if r["side"] == side and r["ok"] and r["steps_recorded"]]
        if not ok:
            failed = next((r for r in runs if r["side"] == side), {})
            summary[side] = {"available": False, "error": failed.get("log_tail", "not run")}
            continue
        seconds = [t for r in ok for t in r["step_seconds"]]
        tokens_per_second = [
            n / t for r in ok for n, t in zip(r["step_tokens"], r["step_seconds"], strict=True)
        ]
        flops = [f for r in ok for f in cycle_flops(r)]
        mfu = [f / t / (rate_gflops * 1e9) for f, t in zip(flops, seconds, strict=True)]
        summary[side] = {
            "available": True,
            "seconds_per_step": summarize(seconds),
            "tokens_per_second": summarize(tokens_per_second),
            "flops_per_step": summarize(flops),
            "mfu": summarize(mfu),
            "peak_rss_mib": summarize([r["peak_rss_mib"] for r in ok]),
            "tokens_per_step_median": float(np.median([n for r in ok for n in r["step_tokens"]])),
            "work": work_summary(ok),
            "rounds": len(ok),
            "steps_recorded": len(seconds),
        }
    ratios = {}
    pairs = [
        (a, b)
        for a in runs
        for b in runs
        if a["side"] == "trl"
        and b["side"] == "pmrlhf"
        and a["round"] == b["round"]
        and a["ok"]
        and b["ok"]
        and a["steps_recorded"]
        and b["steps_recorded"]
    ]
    if pairs:
        ratios["trl_over_pmrlhf_seconds_per_step"] = summarize(
            [np.median(a["step_seconds"]) / np.median(b["step_seconds"]) for a, b in pairs]
        )

        def mfu(r):
            return np.median(np.asarray(cycle_flops(r)) / np.asarray(r["step_seconds"]))

        ratios["pmrlhf_over_trl_mfu"] = summarize([mfu(b) / mfu(a) for a, b in pairs])
        ratios["trl_over_pmrlhf_flops_per_step"] = summarize(
            [np.median(cycle_flops(a)) / np.median(cycle_flops(b)) for a, b in pairs]
        )
    return {"setting": setting, "description": SETTING_TEXT[setting], "summary": summary, **ratios}


def run(size: Size, *, seed: int, log=print, settings=None) -> dict:
    settings = tuple(settings or SETTINGS)
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown RL setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    config = {
        "model": size.pick(smoke="tiny-llama", quick="tiny-llama", full="smollm2-135m"),
        "rounds": size.pick(smoke=1, quick=1, full=3),
        "steps_per_round": size.pick(smoke=1, quick=2, full=3),
        "warmup_steps": 1,
        "settings": list(settings),
        "beta_kl": 0.05,
        "dtype": "float32",
        "device": "cpu",
        "seed": seed,
        "trl_trainer": "trl.RLOOTrainer (beta = KL coefficient, num_iterations=1)",
        "pmrlhf_trainer": "pmrlhf.lm_experiments.train_rl (RLConfig regularizer='kl')",
    }
    timeout = size.pick(smoke=300, quick=300, full=900)
    shape = size.pick(smoke=512, quick=2048, full=2048)
    rates = [matmul_rate(shape)]
    log(f"  rl step: fp32 matmul {shape}x{shape}: {rates[0]['gflops']:.1f} GFLOP/s")
    runs: list[dict] = []
    for setting in settings:
        for round_index in range(config["rounds"]):
            for side in SIDES:  # interleaved: A B A B ...
                result = _run_side(
                    side,
                    setting=setting,
                    model=config["model"],
                    steps=config["steps_per_round"],
                    warmup=config["warmup_steps"],
                    seed=seed + round_index,
                    timeout=timeout,
                )
                result.update(round=round_index, setting=setting)
                runs.append(result)
                if result["ok"]:
                    log(
                        f"  rl step [{setting}]: round {round_index} {side}: "
                        f"{np.median(result['step_seconds']):.3g} s/step, "
                        f"peak {result['peak_rss_mib']:.0f} MiB ({result['wall_seconds']:.0f} s)"
                    )
                else:
                    log(
                        f"  rl step [{setting}]: round {round_index} {side}: "
                        f"FAILED (rc {result['returncode']})"
                    )
    rates.append(matmul_rate(shape))  # again after the runs: the best of both is the rate
    log(f"  rl step: fp32 matmul {shape}x{shape}: {rates[1]['gflops']:.1f} GFLOP/s")
    rate = max(rates, key=lambda r: r["gflops"])
    results = [
        _summarize_setting(s, [r for r in runs if r["setting"] == s], rate["gflops"])
        for s in settings
    ]
    return {
        "config": config,
        "matmul": {"best": rate, "measurements": rates},
        "settings": results,
        "runs": runs,
    }
