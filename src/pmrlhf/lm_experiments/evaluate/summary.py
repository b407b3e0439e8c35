"""From per-seed evaluations to ``summary.json``: means, t-intervals, per-prompt verdicts.

``summary.json`` is a contract that scripts read::

    seeds: [0, 1, 2]
    methods:
      NAME:
        regularizer: kl | pm | cpm | null (the SFT reference)
        beta, alpha
        per_seed: [{metric: value}, ...]       # one dict per seed, in the order of seeds
        mean: {metric: value}
        ci95: {metric: [lo, hi]}               # two-sided Student-t interval over seeds
        prompts: [{...}, ...]                  # per prompt: mean distributions and verdicts
        per_seed_prompts: [[{metric: value} per seed] per prompt]   # PAIRED_METRICS, their
                                               # optimum_ values and tv_to_optimum
    paired:                                    # every two RL methods, a - b
      - {a: NAME, b: NAME, metric: M, matched_beta: bool, per_seed: [a - b per seed],
         mean: x, ci95: [lo, hi], predicted: (difference of the exact optima),
         prompts: [{per_seed, mean, ci95, predicted}, ...],
         across_prompts: {per_prompt, mean, ci95, predicted}}
    code: {version, commit, dirty}             # the source the numbers came from

Metrics: :data:`~pmrlhf.lm_experiments.evaluate.exact.METRICS`, plus for RL methods
``tv_to_optimum`` and the optimum's own ``optimum_pairwise_pmd``, ``optimum_coverage``,
``optimum_tv_to_target`` and ``optimum_bound`` (docs/theory.md §5, §7, §8).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ...errors import PmrlhfUserError
from ..train.method import REFERENCE
from .exact import METRICS

COLLAPSE = 0.9  # a prompt where one answer holds more than this share of the candidate mass


def t_interval(values) -> tuple[float, float]:
    """Two-sided 95% Student-t interval of the mean, ``mean +- t_{0.975, n-1} s / sqrt(n)``
    (docs/theory.md §8); ``(nan, nan)`` for a single value (no spread to estimate).

    Raises
    ------
    PmrlhfUserError
        Empty or non-finite ``values``.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise PmrlhfUserError(f"values must be a non-empty 1-d sequence, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise PmrlhfUserError("values must be finite")
    mean = float(values.mean())
    if values.size < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return mean - float(half), mean + float(half)


def seed_summary(values) -> dict:
    """``{"seeds", "mean", "low", "high"}`` of per-seed ``values``: their mean and
    :func:`t_interval` (nan for one value), as ``lm paper``'s audit stores each metric and
    each paired difference."""
    low, high = t_interval(values)
    return {"seeds": list(values), "mean": float(np.mean(values)), "low": low, "high": high}


def optimum_prompt_metrics(evaluation: dict, optimum: dict) -> list[dict]:
    """Per prompt: the trained policy's distance to its optimum (candidates plus everything
    else, not renormalised: ``tv_to_optimum``), and the optimum's own scores against the
    same reward (:func:`~pmrlhf.lm_experiments.evaluate.predictions.optimum_scores`, prefixed
    ``optimum_``) with conditional PM's error bound ``optimum_bound``."""
    from .optima import tv_with_other
    from .predictions import optimum_scores

    rows = []
    for prompt, best, bound in zip(
        evaluation["prompts"], optimum["optimum"], optimum["bound"], strict=True
    ):
        mass = np.asarray(prompt["mass"])
        row = {"tv_to_optimum": tv_with_other(np.append(mass, max(1 - mass.sum(), 0.0)), best)}
        row |= {f"optimum_{k}": v for k, v in optimum_scores(best, prompt["reward"]).items()}
        rows.append(row | {"optimum_bound": float(bound)})
    return rows


def seed_metrics(evaluation: dict, optimum: dict | None) -> dict:
    """One seed's metrics of one method: the evaluation's means, and for an RL method the
    means over prompts of :func:`optimum_prompt_metrics`."""
    row = {key: evaluation[key] for key in METRICS}
    if optimum is None:
        return row
    prompts = optimum_prompt_metrics(evaluation, optimum)
    return row | {key: float(np.mean([p[key] for p in prompts])) for key in prompts[0]}


def verdicts(evaluation: dict, reference: dict) -> list[dict]:
    """Per prompt: collapse (one answer above :data:`COLLAPSE` of the candidate mass) and
    whether the method is further from the target than the reference (TV)."""
    return [
        {
            "collapsed": bool(max(p["distribution"]) > COLLAPSE),
            "worse_than_reference": bool(p["tv_to_target"] > r["tv_to_target"] + 1e-12),
        }
        for p, r in zip(evaluation["prompts"], reference["prompts"], strict=True)
    ]


def aggregate(seeds, methods, per_seed: dict[str, list[dict]]) -> dict:
    """``summary["methods"]`` from ``per_seed[name]``: one dict per seed with ``evaluation``,
    ``optimum`` (None for the reference) and ``curve``. ``methods``: the RL methods."""
    spec = {m.name: m for m in methods}
    out = {}
    for name, runs in per_seed.items():
        rows = [seed_metrics(run["evaluation"], run.get("optimum")) for run in runs]
        keys = list(rows[0])
        mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        ci95 = {k: list(t_interval([r[k] for r in rows])) for k in keys}
        method = spec.get(name)
        references = per_seed[REFERENCE]
        prompts = []
        for j in range(len(runs[0]["evaluation"]["prompts"])):
            cells = [run["evaluation"]["prompts"][j] for run in runs]
            judged = [
                verdicts(run["evaluation"], ref["evaluation"])[j]
                for run, ref in zip(runs, references, strict=True)
            ]
            entry = {
                "distribution": np.mean([c["distribution"] for c in cells], 0).tolist(),
                "mass": np.mean([c["mass"] for c in cells], 0).tolist(),
                "tv_to_target": float(np.mean([c["tv_to_target"] for c in cells])),
                "pairwise_pmd": float(np.mean([c["pairwise_pmd"] for c in cells])),
                "mean_reward": float(np.mean([c["mean_reward"] for c in cells])),
                "collapsed_seeds": sum(v["collapsed"] for v in judged),
                "worse_than_reference_seeds": sum(v["worse_than_reference"] for v in judged),
            }
            if runs[0].get("optimum"):
                entry["optimum"] = np.mean([r["optimum"]["optimum"][j] for r in runs], 0).tolist()
            prompts.append(entry)
        curves = [run.get("curve") or [] for run in runs]
        # per prompt, per seed: what paired differences compare, measured and predicted
        by_prompt = [[{} for _ in runs] for _ in prompts]
        for s, run in enumerate(runs):
            optimum = run.get("optimum")
            predicted = optimum_prompt_metrics(run["evaluation"], optimum) if optimum else None
            for j, cell in enumerate(run["evaluation"]["prompts"]):
                by_prompt[j][s] = {k: cell[k] for k in PAIRED_METRICS}
                if predicted:
                    by_prompt[j][s] |= {
                        f"optimum_{k}": predicted[j][f"optimum_{k}"] for k in PAIRED_METRICS
                    }
                    by_prompt[j][s]["tv_to_optimum"] = predicted[j]["tv_to_optimum"]
        out[name] = {
            "regularizer": None if method is None else method.regularizer,
            "beta": None if method is None else method.beta,
            "alpha": None if method is None else method.alpha,
            "per_seed": [{"seed": s, **r} for s, r in zip(seeds, rows, strict=True)],
            "mean": mean,
            "ci95": ci95,
            "prompts": prompts,
            "curves": curves,
            "per_seed_prompts": by_prompt,
        }
    return out


# Method-vs-method claims rest on these (paired per seed, docs/theory.md §8).
PAIRED_METRICS = ("tv_to_target", "pairwise_abs_gap", "pairwise_pmd")


def paired_differences(methods, summarised: dict) -> list[dict]:
    """``summary["paired"]``: for every two RL methods (in the order of ``methods``) and each
    of :data:`PAIRED_METRICS`, the difference ``a - b`` per seed with its mean and 95%
    Student-t interval (df = seeds - 1); ``matched_beta`` says whether both have the same
    ``beta`` (the like-with-like comparison).

    Seeds share the sampler's stream and the reference, so the per-seed difference removes
    what the two runs have in common: a tighter test than comparing two unpaired intervals.
    ``predicted`` is the same difference between the two exact optima given the reference
    (docs/theory.md §7), averaged over seeds. Each entry also holds the difference per
    prompt (``prompts``: per seed, mean, interval, prediction) and ``across_prompts``: each
    prompt's seed-averaged difference with a t-interval over prompts, whose unit is a
    (prompt, reference) pair rather than an RL run.
    """
    rl = [m for m in methods if m.name in summarised]
    out = []
    for i, a in enumerate(rl):
        for b in rl[i + 1 :]:
            for metric in PAIRED_METRICS:
                entry = _paired(summarised[a.name], summarised[b.name], metric)
                out.append({"a": a.name, "b": b.name, "metric": metric} | entry)
                out[-1]["matched_beta"] = a.beta == b.beta
    return out


def _difference(a: list[dict], b: list[dict], metric: str) -> dict:
    """Per seed ``a - b`` of ``metric``, its mean, 95% interval and predicted mean."""
    diff = [x[metric] - y[metric] for x, y in zip(a, b, strict=True)]
    optimum = f"optimum_{metric}"
    predicted = [x[optimum] - y[optimum] for x, y in zip(a, b, strict=True)]
    return {
        "per_seed": diff,
        "mean": float(np.mean(diff)),
        "ci95": list(t_interval(diff)),
        "predicted": float(np.mean(predicted)),
    }


def _paired(a: dict, b: dict, metric: str) -> dict:
    prompts = [
        _difference(pa, pb, metric)
        for pa, pb in zip(a["per_seed_prompts"], b["per_seed_prompts"], strict=True)
    ]
    means = [p["mean"] for p in prompts]
    return _difference(a["per_seed"], b["per_seed"], metric) | {
        "prompts": prompts,
        "across_prompts": {
            "per_prompt": means,
            "mean": float(np.mean(means)),
            "ci95": list(t_interval(means)),
            "predicted": float(np.mean([p["predicted"] for p in prompts])),
        },
    }


def task_targets(task) -> list[dict]:
    """``summary["prompts"]``: each prompt's candidates and PM target ``softmax(r)`` of the
    oracle reward (docs/theory.md §3)."""
    prompts = [
        {"candidates": list(p.candidates), "target": np.exp(r - r.max()).tolist()}
        for p, r in zip(task.prompts, task.oracle_rewards(), strict=True)
    ]
    for prompt in prompts:
        total = sum(prompt["target"])
        prompt["target"] = [t / total for t in prompt["target"]]
    return prompts


def summary_table(summary: dict):
    """One row per method: mean and 95% interval of every metric."""
    import pandas as pd

    rows = []
    for name, values in summary["methods"].items():
        row = {k: values[k] for k in ("regularizer", "beta", "alpha")}
        row = {"method": name, **row}
        for key, mean in values["mean"].items():
            lo, hi = values["ci95"][key]
            row |= {key: mean, f"{key}_lo": lo, f"{key}_hi": hi}
        rows.append(row)
    return pd.DataFrame(rows)


def console_table(summary: dict) -> str:
    """The comparison as text: mean and 95% interval of the main metrics, then the
    per-prompt verdicts (collapse, worse than the reference)."""
    columns = (
        ("pairwise_pmd", "PMD (ours)"),
        ("pairwise_abs_gap", "|pref gap|"),
        ("tv_to_target", "TV target"),
        ("minority_mass", "minority"),
        ("coverage", "coverage"),
        ("mean_reward", "reward"),
        ("tv_to_optimum", "TV optimum"),
    )
    n = len(summary["seeds"])
    lines = [f"means over {n} seed(s) {summary['seeds']}, [95% t-interval]"]
    header = f"{'method':<16}" + "".join(f"{label:>22}" for _, label in columns)
    lines.append(header)
    for name, values in summary["methods"].items():
        cells = []
        for key, _ in columns:
            if key not in values["mean"]:
                cells.append(f"{'-':>22}")
                continue
            lo, hi = values["ci95"][key]
            interval = "" if np.isnan(lo) else f" [{lo:.3g},{hi:.3g}]"
            cells.append(f"{values['mean'][key]:.3g}{interval}".rjust(22))
        lines.append(f"{name:<16}" + "".join(cells))
    flags = []
    for name, values in summary["methods"].items():
        for j, prompt in enumerate(values["prompts"]):
            if prompt["collapsed_seeds"]:
                flags.append(
                    f"  {name}, prompt {j + 1}: more than {COLLAPSE:.0%} of the candidate mass "
                    f"on one answer in {prompt['collapsed_seeds']}/{n} seed(s)"
                )
            if name != REFERENCE and prompt["worse_than_reference_seeds"]:
                flags.append(
                    f"  {name}, prompt {j + 1}: further from the target than the reference "
                    f"(TV) in {prompt['worse_than_reference_seeds']}/{n} seed(s)"
                )
    if flags:
        lines += ["per-prompt verdicts:", *flags]
    return "\n".join(lines)
