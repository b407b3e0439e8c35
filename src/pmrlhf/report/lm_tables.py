"""The language-model tables and setup sentence that README's blocks and the report share:
one row per method, mean and 95% t-interval of each metric, the exact optimum beside."""

from __future__ import annotations

import statistics

import pandas as pd

LM_COLUMNS = {
    "pairwise_pmd": "pairwise PMD (ours)",
    "pairwise_abs_gap": "abs pref gap",
    "tv_to_target": "TV to target",
    "minority_mass": "minority mass",
    "coverage": "mass on candidates",
    "mean_reward": "mean reward",
    "tv_to_optimum": "TV to its optimum",
}
OPTIMUM_COLUMNS = {
    "optimum_pairwise_pmd": "optimum's PMD",
    "optimum_coverage": "optimum's coverage",
    "optimum_tv_to_target": "optimum's TV to target",
    "optimum_bound": "cPM optimum's error bound",
}


def lm_table(summary: dict) -> pd.DataFrame:
    """One row per method: mean and 95% t-interval of each metric, the optimum beside. Plain
    PM's name says how little of its mass its candidate metrics are renormalised from."""
    from ..lm_experiments.evaluate.plot_style import renormalised_label

    rows = []
    for name, values in summary["methods"].items():
        label = name if values["regularizer"] is None else renormalised_label(name, values)
        row = {"method": label, "beta": _cell(values["beta"]), "alpha": _cell(values["alpha"])}
        for key, label in LM_COLUMNS.items():
            row[label] = _with_interval(values, key)
        for key, label in OPTIMUM_COLUMNS.items():
            row[label] = _cell(values["mean"].get(key))
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def _with_interval(values: dict, key: str) -> str:
    if key not in values["mean"]:
        return "–"
    mean = values["mean"][key]
    lo, hi = values["ci95"][key]
    if mean is None:
        return "n/a"
    if lo is None or hi is None or lo != lo:
        return f"{mean:.3g}"
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"


def _run_times(summary: dict) -> str:
    """The spread of one method's run for one seed (SFT excluded): a run far above the
    median was slowed by other work on the machine, which the total alone hides."""
    runs = [
        s
        for name, values in summary.get("run_seconds", {}).items()
        if summary["methods"].get(name, {}).get("regularizer")
        for s in values
    ]
    if not runs:
        return ""
    return (
        f"; one RL run (a method for a seed) took a median {statistics.median(runs):.0f} s "
        f"(min-max {min(runs):.0f}-{max(runs):.0f} s)"
    )


def lm_setup(summary: dict) -> str:
    config = summary["config"]
    rl, sft = config["rl"], config["sft"]
    return (
        f"Model `{summary['model']}`, task `{summary['task']}`, seeds {summary['seeds']}: per "
        f"seed, SFT on the candidates ({sft['steps']} full-batch steps), then "
        f"{rl['steps']} RLOO steps per method (every prompt x {rl['samples_per_prompt']} "
        f"samples per step, completions of at most {summary['max_new_tokens']} tokens, lr "
        f"{rl['lr']:g} decaying to {rl['lr_final']:g} of it, oracle reward on token ids"
        f"{_estimator(rl)}{_precision(rl, sft)}). "
        f"{summary['compute_seconds'] / 60:.1f} minutes of compute on "
        f"{summary['torch_threads']} torch thread(s){_run_times(summary)}. "
        "Mean [95% t-interval] over seeds; "
        "'optimum' columns: each method's exact optimum given the trained reference:"
    )


def _precision(rl: dict, sft: dict) -> str:
    """Nothing for float32 (summaries written before the setting existed were float32)."""
    chosen = {rl.get("precision", "fp32"), sft.get("precision", "fp32")}
    return (
        "" if chosen == {"fp32"} else f", precision rl {rl['precision']} / sft {sft['precision']}"
    )


def _estimator(rl: dict) -> str:
    if rl.get("penalty_gradient") == "expected":
        return ", the penalty's exact expectation over the vocabulary at each sampled history"
    if rl.get("penalty_gradient") == "sampled":
        return ", the sampled tokens' penalty in the return"
    return ""
