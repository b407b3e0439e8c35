"""The paired figure ``lm_paired.png``: method against method in TV to the preference target,
per prompt, beside what the exact optima predict (docs/theory.md §7, §8)."""

from __future__ import annotations

import numpy as np

from .plot_style import figure_title, whisker_lengths

METRIC = "tv_to_target"
COLUMNS = 3  # panels per row before the figure wraps
OBSERVED = "black"
PREDICTED = "#d62728"


def predicted_differences(pair: dict) -> np.ndarray:
    """The theory's ``a - b`` of an entry of ``summary["paired"]``: per prompt, then over
    all prompts, the difference between the two exact optima given the reference (the
    entry's ``predicted``, seed means). Shape (prompts + 1,)."""
    return np.array([p["predicted"] for p in pair["prompts"]] + [pair["predicted"]])


def draw_paired(summary: dict):
    """One panel per pair ``(a, b)`` of ``summary["paired"]`` in TV to the target: per prompt
    and over all prompts, the observed paired difference (seed mean, 95% t-interval over
    seeds) beside the difference of the two exact optima."""
    import matplotlib.pyplot as plt

    pairs = [
        p for p in summary.get("paired", []) if p["metric"] == METRIC and p.get("matched_beta")
    ]
    title = f"{figure_title(summary)}:\npaired differences a - b in TV to the preference target"
    if not pairs:
        fig, ax = plt.subplots(figsize=(6.4, 2.4), layout="constrained")
        ax.axis("off")
        ax.text(
            0.5, 0.5, "No paired comparison: this run has no two RL methods at the same beta.",
            ha="center", va="center", fontsize=10, wrap=True,
        )  # fmt: skip
        fig.suptitle(title, fontsize=11)
        return fig
    n_prompts = len(summary["prompts"])
    columns = min(len(pairs), COLUMNS)
    rows = -(-len(pairs) // columns)
    # One y scale for every pair, so that panels compare at a glance and fit a page's width.
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(max(4.5, columns * (0.3 * n_prompts + 1.2) + 1.0), rows * 2.9 + 1.1),
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    for ax in axes.flat[len(pairs) :]:
        ax.axis("off")
    # the prompts, then a gap, then "all prompts"
    x = np.append(np.arange(1, n_prompts + 1), n_prompts + 1.6)
    labels = [str(j + 1) for j in range(n_prompts)] + ["all\nprompts"]
    for k, (ax, pair) in enumerate(zip(axes.flat, pairs, strict=False)):
        # per prompt, then the pair's own mean: over seeds of the metric averaged over prompts
        entries = [*pair["prompts"], pair]
        means = np.array([e["mean"] for e in entries])
        errors = whisker_lengths(means, [e["ci95"] for e in entries])
        predicted = predicted_differences(pair)
        ax.axhline(0, color="grey", lw=0.8, zorder=0)
        ax.axvline(n_prompts + 0.8, color="grey", lw=0.6, ls=":")
        ax.errorbar(
            x - 0.12, means, yerr=errors, fmt="o", ms=5, color=OBSERVED, capsize=3, lw=1.2,
            label="observed: seed mean, 95% t-interval over seeds",
        )  # fmt: skip
        ax.scatter(
            x + 0.12, predicted, marker="D", s=36, facecolors="none", edgecolors=PREDICTED,
            linewidths=1.4, label="theory: the two exact optima given the reference",
        )  # fmt: skip
        ax.set_xticks(x, labels, fontsize=9)
        ax.tick_params(axis="y", labelsize=9, labelleft=k % columns == 0)
        ax.set_xlim(0.4, n_prompts + 2.2)
        ax.set_title(f"a = {pair['a']}\nb = {pair['b']}", fontsize=10)
        ax.set_xlabel("prompt", fontsize=9)
        if k % columns == 0:
            ax.set_ylabel("a - b, TV to target\n(> 0: b closer to the preferences)", fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles[::-1], labels[::-1], loc="outside lower center", ncol=1, fontsize=9, frameon=False
    )  # observed first
    fig.suptitle(title, fontsize=11)
    return fig
