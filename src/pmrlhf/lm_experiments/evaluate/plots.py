"""Figures of a language-model comparison, drawn from its ``summary.json`` alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._figure_style import SINGLE, WIDTH, print_style
from ..._io import atomic_save_figure
from .plot_style import figure_title, renormalised_label, whisker_lengths

FIGURES = (
    "lm_compare.png",
    "lm_convergence.png",
    "lm_implied_preferences.png",
    "lm_paired.png",
)
# The first five match the default comparison (reference, KL b=0.1, KL b=1, PM, cPM); the
# rest keep a grid of methods (--betas, --alphas) apart by colour.
COLORS = [
    "#7f7f7f", "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
    "#bcbd22", "#17becf", "#393b79", "#ad494a", "#8ca252", "#e7969c", "#7b4173", "#9edae5",
]  # fmt: skip
INCH_PER_CHAR = 0.06  # width of one tick-label character at the print style's 7 pt


def save_figures(out, summary: dict) -> list[Path]:
    """Draw every figure of :data:`FIGURES` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .paired_plots import draw_paired

    paths = []
    draws = (_distributions, _convergence, _implied, draw_paired)
    for name, draw in zip(FIGURES, draws, strict=True):
        figure = draw(summary)
        paths.append(atomic_save_figure(Path(out) / name, figure))
        plt.close(figure)
    return paths


def _bar_style(m: int, values: dict) -> dict:
    """Method ``m``'s bars: its colour, or for plain PM a pale hatched bar of that colour."""
    color = COLORS[m % len(COLORS)]
    if values["regularizer"] != "pm":
        return {"color": color}
    return {"facecolor": "#e6e6e6", "edgecolor": color, "hatch": "///", "linewidth": 0.8}


@print_style
def _distributions(summary):
    """One panel per prompt (bars per candidate: target, then each method), as many to a
    row as fit the page's width, then the pairwise PMD of each method across the bottom.
    Panels are as wide as their candidates need, so that long candidate names and many
    methods stay readable."""
    import matplotlib.pyplot as plt

    names = list(summary["methods"])
    prompts = summary["prompts"]
    labels = [c for prompt in prompts for c in prompt["candidates"]]
    # A candidate's group holds len(names) + 1 bars; its label is horizontal if it fits.
    group = max(0.5, 0.06 * (len(names) + 1) + 0.15)
    longest = max(len(c) for c in labels) * INCH_PER_CHAR
    most = max(len(p["candidates"]) for p in prompts)
    fit = max(1, min(len(prompts), int((WIDTH - 0.4) // (group * most + 0.6))))
    rows = -(-len(prompts) // fit)
    columns = -(-len(prompts) // rows)  # rows as even as they go: 4 prompts are 2 x 2
    group = max(group, ((WIDTH - 0.4) / columns - 0.6) / most)  # the width a panel gets
    flat = longest <= 0.9 * group
    panel = 1.9 if flat else 1.9 + 0.5 * longest
    pmd = 0.18 * len(names) + 0.8  # the PMD panel: one row per method
    fig = plt.figure(figsize=(WIDTH, rows * panel + pmd + 1.2), layout="constrained")
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[panel] * rows + [pmd])
    axes = [fig.add_subplot(grid[j // columns, j % columns]) for j in range(len(prompts))]
    axes.append(fig.add_subplot(grid[rows, :]))
    width = 0.8 / (len(names) + 1)
    for j, (ax, prompt) in enumerate(zip(axes, prompts, strict=False)):
        x = np.arange(len(prompt["candidates"]))
        ax.bar(x, prompt["target"], width, color="black", label="target softmax(r)")
        marked = False
        for m, name in enumerate(names):
            values = summary["methods"][name]
            cell = values["prompts"][j]
            position = x + (m + 1) * width
            label = renormalised_label(name, values)
            ax.bar(position, cell["distribution"], width, label=label, **_bar_style(m, values))
            best = np.asarray(cell.get("optimum", [0.0])[:-1])
            if best.sum() > 0:  # an optimum with candidate mass to renormalise
                # A segment in data units, centred on its bar and a little narrower, whatever
                # the figure's size: equal optima of neighbouring bars stay two marks.
                ax.hlines(
                    best / best.sum(),
                    position - 0.35 * width,
                    position + 0.35 * width,
                    color="black",
                    lw=2,
                    zorder=3,
                    label=None if marked else "exact optimum",
                )
                marked = True
        ticks = x + width * len(names) / 2
        if flat:
            ax.set_xticks(ticks, prompt["candidates"])
        else:  # slanted, each label ending under its group
            ax.set_xticks(
                ticks, prompt["candidates"], rotation=30, ha="right", rotation_mode="anchor"
            )
        ax.set(
            xlim=(-0.3, len(x) - 0.1),
            ylim=(0, 1),
            title=f"prompt {j + 1}",
            ylabel="probability among\ncandidates (seed mean)" if j % columns == 0 else None,
        )
    ax = axes[-1]
    means = [summary["methods"][n]["mean"]["pairwise_pmd"] for n in names]
    intervals = [summary["methods"][n]["ci95"]["pairwise_pmd"] for n in names]
    errors = whisker_lengths(means, intervals, floor=0.0)  # PMD >= 0
    # Horizontal bars: the method names read as written, however many there are.
    for m, name in enumerate(names):
        style = _bar_style(m, summary["methods"][name])
        ax.barh(m, means[m], xerr=errors[:, m : m + 1], capsize=3, **style)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # the legend's order, top to bottom
    ax.axvline(0, color="black", lw=0.8)
    ax.set(
        title="pairwise PMD (ours), mean and 95% t-interval (lower = better)",
        xlabel="mean KL(Bern(p_r) || Bern(p_pi))",
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=min(len(labels), 2),
        frameon=False,
    )
    fig.suptitle(f"{figure_title(summary)}: candidate distributions after RL")
    return fig


@print_style
def _convergence(summary):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = {n: v for n, v in summary["methods"].items() if v["regularizer"] is not None}
    # At most three panels to a row (two when there are four): each stays a column wide.
    columns = max(1, 2 if len(methods) == 4 else min(len(methods), 3))
    rows = -(-len(methods) // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(WIDTH if columns > 1 else SINGLE, 2.2 * rows + 1.1),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax in axes.flat[len(methods) :]:
        ax.remove()
    for m, (ax, (name, values)) in enumerate(zip(axes.flat, methods.items(), strict=False)):
        curves = [np.asarray(c) for c in values["curves"] if c]
        color = COLORS[(m + 1) % len(COLORS)]
        for curve in curves:
            ax.plot(curve[:, 0], curve[:, 1], color=color, alpha=0.35, lw=1)
        if curves and all(len(c) == len(curves[0]) for c in curves):
            mean = np.mean([c[:, 1] for c in curves], axis=0)
            ax.plot(curves[0][:, 0], mean, color=color, lw=2.2)
        ax.axhline(0.1, color="black", ls="--", lw=0.8)
        ax.set(
            title=name,
            xlabel="RL step",
            ylim=(0, 1.02),
            ylabel="TV to the exact optimum" if m % columns == 0 else None,
        )
    # One legend for every panel, below them: it hides no curve.
    keys = [
        Line2D([], [], color="grey", lw=2.2, label="mean over seeds"),
        Line2D([], [], color="grey", alpha=0.35, lw=1, label="one seed"),
        Line2D(
            [],
            [],
            color="black",
            ls="--",
            lw=0.8,
            label="TV 0.1: the 'reached its optimum' threshold",
        ),
    ]
    fig.legend(handles=keys, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle(f"{figure_title(summary)}:\ndistance to each method's optimum given the reference")
    return fig


def implied_preferences(summary: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method (and the reference): ``(p_r, p_pi)`` over every candidate pair of every
    prompt and seed, oriented so that the reward prefers the first (docs/theory.md §5)."""
    from scipy.special import expit

    out = {}
    for name, values in summary["methods"].items():
        targets, implied = [], []
        for prompt, cell in zip(summary["prompts"], values["prompts"], strict=True):
            reward = np.log(np.asarray(prompt["target"], float))
            log_pi = np.log(np.maximum(np.asarray(cell["distribution"], float), 1e-300))
            i, j = np.triu_indices(reward.size, k=1)
            swap = reward[j] > reward[i]
            a, b = np.where(swap, j, i), np.where(swap, i, j)
            targets.append(expit(reward[a] - reward[b]))
            implied.append(expit(log_pi[a] - log_pi[b]))
        out[name] = (np.concatenate(targets), np.concatenate(implied))
    return out


@print_style
def _implied(summary):
    import matplotlib.pyplot as plt

    pairs = implied_preferences(summary)
    fig, ax = plt.subplots(figsize=(SINGLE, 5.0), layout="constrained")
    markers = "osD^v<>phX*P"
    ax.plot([0.5, 1], [0.5, 1], color="black", lw=1, label="matches the preferences")
    spread = 0.012  # side by side: every prompt of a task may share the same p_r values
    shown = []
    for k, (name, (target, implied)) in enumerate(pairs.items()):
        gap = summary["methods"][name]["mean"]["pairwise_abs_gap"]
        shown.append(target + spread * (k - (len(pairs) - 1) / 2))
        ax.scatter(
            shown[-1],
            implied,
            s=18,
            alpha=0.85,
            color=COLORS[k % len(COLORS)],
            marker=markers[k % len(markers)],
            label=f"{name} (|gap| {gap:.3f})",
        )
    shown = np.concatenate(shown)
    ax.set(
        xlim=(min(0.45, shown.min() - 0.01), max(1.0, shown.max() + 0.01)),
        ylim=(-0.02, 1.02),
        xlabel="preference for the better answer, p_r = sigma(r(a) - r(b))",
        ylabel="implied preference, pi(a) / (pi(a) + pi(b))\n(seed mean)",
        title=f"{figure_title(summary)}: every candidate pair\n"
        "(diagonal = preference matching;\n"
        "1 = collapse onto the better answer, 0 = onto the worse)",
    )
    # Below the axes, where it hides no point.
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig
