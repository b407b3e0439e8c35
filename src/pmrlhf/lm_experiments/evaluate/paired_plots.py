"""The paired figure ``lm_paired.png``: method against method in TV to the preference target,
per prompt, beside what the exact optima predict (docs/theory.md §7, §8)."""

from __future__ import annotations

import numpy as np

from ..._figure_style import SINGLE, WIDTH, print_style
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


@print_style
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
        fig, ax = plt.subplots(figsize=(SINGLE, 1.6), layout="constrained")
        ax.axis("off")
        ax.text(
            0.5, 0.5, "No paired comparison:\nthis run has no two RL methods at the same beta.",
            ha="center", va="center",
        )  # fmt: skip
        fig.suptitle(title)
        return fig
    n_prompts = len(summary["prompts"])
    # As many panels to a row as fit the page's width (each about 0.25 in a prompt), at most
    # COLUMNS; one y scale for every pair, so that panels compare at a glance.
    fit = max(1, int((WIDTH - 0.6) // (0.25 * n_prompts + 1.0)))
    columns = min(len(pairs), COLUMNS, fit)
    rows = -(-len(pairs) // columns)
    width = min(WIDTH, max(SINGLE, columns * (0.25 * n_prompts + 1.0) + 0.8))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(width, rows * 2.2 + 1.3),
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
        ax.set_xticks(x, labels)
        ax.tick_params(axis="y", labelleft=k % columns == 0)
        ax.set_xlim(0.4, n_prompts + 2.2)
        ax.set_title(f"a = {pair['a']}\nb = {pair['b']}")
        ax.set_xlabel("prompt")
        if k % columns == 0:
            ax.set_ylabel("a - b, TV to target\n(> 0: b closer to the preferences)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles[::-1], labels[::-1], loc="outside lower center", ncol=1, frameon=False
    )  # observed first
    fig.suptitle(title)
    return fig
