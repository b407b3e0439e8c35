"""What bounds the reading of README's free-text block, from the numbers of the run: how
far RL moved each policy (KL to the reference, gap to its own optimum) and how many
held-out pairs have a saturated implied preference."""

from __future__ import annotations

import math

import pandas as pd

from ..lm_experiments.train.method import REFERENCE


def reference_first(policies: dict) -> list[str]:
    """Policy names, the reference first, the others in their order."""
    return sorted(policies, key=lambda name: name != REFERENCE)  # stable: reference first


SATURATED = 0.05  # an implied preference below this or above 1 - this counts as saturated


def _saturated(p: pd.Series) -> pd.Series:
    return (p < SATURATED) | (p > 1 - SATURATED)


def reading_sentences(summary: dict, config: dict, pairs: pd.DataFrame | None) -> list[str]:
    """What bounds the reading of the table, from the numbers: how far RL moved each policy
    (KL to the reference per token after the run's steps) and, from ``pairs.csv``, the
    share of held-out pairs whose implied preference is saturated (within
    :data:`SATURATED` of 0 or 1), which sets the size of every policy's PMD."""
    lines = []
    moved = {
        name: values["kl_to_reference_per_token"]["mean"]
        for name, values in summary["policies"].items()
        if name != REFERENCE and "kl_to_reference_per_token" in values
    }
    if moved:
        rl = config.get("rl", {})
        lines.append(
            "How far RL moved each policy from the reference (SFT), in KL per token (seed "
            f"means, nats) after {rl.get('steps')} steps at learning rate {rl.get('lr')}: "
            + ", ".join(f"{name} {value:.3g}" for name, value in moved.items())
            + "."
        )
    toward = [
        _toward(name, summary["optima"][name]["reference_pairs_gap_vs_optimum"], values)
        for name, values in summary["policies"].items()
        if name in summary.get("optima", {}) and "pairs_gap_vs_optimum" in values
    ]
    if toward:
        lines.append(
            "Did RL move each policy toward its own optimum on the held-out pairs? Pairs gap "
            "to the optimum (ours, 0 at the optimum), the reference's (teacher-forced, the "
            "same at every seed) against the trained policy's mean [95% t-interval]: "
            + "; ".join(toward)
            + "."
        )
    if pairs is not None and len(pairs):
        share = _saturated(pairs["p_policy"]).groupby(pairs["policy"]).mean()
        lines.append(
            f"Share of held-out pairs whose implied preference lies within {SATURATED:g} of "
            "0 or 1 (the log-probabilities of two answers of tens of words differ by many "
            "nats), against "
            + f"{_saturated(pairs['p_population']).mean():.3g}"
            + " for the population: "
            + ", ".join(f"{name} {share[name]:.3g}" for name in reference_first(dict(share)))
            + _optima_saturation(pairs)
            + (
                "; this saturation, not the method, sets most of each policy's PMD."
                if share.min() > 0.5
                else "."
            )
        )
    return lines


def interval_bounds(stat: dict) -> tuple[float, float] | None:
    """``(low, high)`` of a summary entry; None when missing (null or nan: one seed)."""
    lo, hi = stat.get("low"), stat.get("high")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return None
    return lo, hi


def _toward(name: str, start: float, values: dict) -> str:
    """``name``'s gap to its optimum against the reference's, with the verdict of the
    trained policy's interval against that fixed value."""
    gap = values["pairs_gap_vs_optimum"]
    interval = interval_bounds(gap)
    if interval is None:
        verdict = "one seed, no interval: no result"
    elif interval[1] < start:
        verdict = "closer than the reference (the interval lies below its value)"
    elif interval[0] > start:
        verdict = "further than the reference (the interval lies above its value)"
    else:
        verdict = "the interval contains the reference's value: no result"
    shown = "" if interval is None else f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return f"{name} {start:.3g} -> {gap['mean']:.3g}{shown}, {verdict}"


def _optima_saturation(pairs: pd.DataFrame) -> str:
    """The same share for each method's optimum (``p_optimum``, where ``pairs.csv`` has it)."""
    if "p_optimum" not in pairs:
        return ""
    known = pairs.dropna(subset=["p_optimum"])
    known = known[known["seed"] == known.groupby("policy")["seed"].transform("min")]
    if known.empty:
        return ""
    share = _saturated(known["p_optimum"]).groupby(known["policy"]).mean()
    return "; of the optima (theory): " + ", ".join(
        f"{name} {share[name]:.3g}" for name in reference_first(dict(share))
    )
