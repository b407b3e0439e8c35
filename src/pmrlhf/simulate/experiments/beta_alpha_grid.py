"""Experiment 8: pairwise preference-matching divergence and reward of KL-RLHF vs
conditional PM over ``beta`` x ``alpha`` (docs/theory.md §4–5), the analogue of the paper's
table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import WIDTH, print_style
from ..._validation import DEFAULT_SEED
from ..tree_prompts import log_policies, pair_metrics, tree_prompts
from ._plot import COLORS, finish, legend_below


@dataclass(frozen=True)
class BetaAlphaGridConfig:
    prompts: int = 400
    vocab_size: int = 5
    max_len: int = 5
    betas: tuple[float, ...] = (0.1, 0.5, 1.0)
    alphas: tuple[float, ...] = (0.1, 0.3, 0.5)
    seed: int = DEFAULT_SEED


QUICK = BetaAlphaGridConfig(prompts=60)
PMD_FLOOR = 1e-4  # bottom of the log axis; PM at beta = 1 is exactly 0 (~1e-17 in floats)
FLOOR_STUB = 3 * PMD_FLOOR  # a PMD below the floor is drawn as a hatched stub up to here


def run_beta_alpha_grid(config: BetaAlphaGridConfig):
    """Closed-form token-level optima of KL, PM and conditional PM at every ``beta`` and
    ``alpha``, scored on every meaningful pair of ``prompts`` toy languages
    (:mod:`pmrlhf.simulate.tree_prompts`).

    ``pmd_improvement_over_kl_pct = 100 (1 - PMD / PMD_KL(beta))`` compares each policy
    with KL-RLHF at the same ``beta``; at ``beta != 1`` the PM family matches
    ``softmax(r / beta)``, not ``P_r``, so its PMD is not zero there either.

    Returns
    -------
    frame : DataFrame
        ``method, beta, alpha, pairwise_pmd, abs_logodds_gap, mean_reward, coverage,
        pmd_improvement_over_kl_pct``.
    figure : matplotlib Figure
    """
    trees = tree_prompts(
        config.prompts, vocab_size=config.vocab_size, max_len=config.max_len, seed=config.seed
    )
    rows = []
    for beta in config.betas:
        cells = [("KL-RLHF", "kl", None), ("PM-RLHF", "pm", None)]
        cells += [("cPM-RLHF", "cpm", alpha) for alpha in config.alphas]
        for method, model, alpha in cells:
            metrics = pair_metrics(trees, log_policies(trees, model=model, beta=beta, alpha=alpha))
            rows.append(
                {
                    "method": method,
                    "beta": beta,
                    "alpha": np.nan if alpha is None else alpha,
                    "pairwise_pmd": metrics["kl_bernoulli"],
                    "abs_logodds_gap": metrics["abs_logodds_gap"],
                    "mean_reward": metrics["mean_reward"],
                    "coverage": metrics["coverage"],
                }
            )
    frame = pd.DataFrame(rows)
    kl_pmd = frame[frame.method == "KL-RLHF"].set_index("beta").pairwise_pmd
    frame["pmd_improvement_over_kl_pct"] = 100 * (1 - frame.pairwise_pmd / frame.beta.map(kl_pmd))
    return frame, _figure(frame, config)


def headline(frame) -> dict:
    """Range of the improvement of conditional PM over KL-RLHF across the grid."""
    cpm = frame[frame.method == "cPM-RLHF"]
    return {
        "cpm_pmd_improvement_min_pct": float(cpm.pmd_improvement_over_kl_pct.min()),
        "cpm_pmd_improvement_max_pct": float(cpm.pmd_improvement_over_kl_pct.max()),
        "cpm_coverage_min": float(cpm.coverage.min()),
        "pm_coverage_max": float(frame[frame.method == "PM-RLHF"].coverage.max()),
    }


def summary_table(frame) -> pd.DataFrame:
    """The whole grid, KL first at each beta (the paper's table layout)."""
    order = {"KL-RLHF": 0, "cPM-RLHF": 1, "PM-RLHF": 2}
    return frame.sort_values(
        ["beta", "method", "alpha"], key=lambda c: c.map(order) if c.name == "method" else c
    ).reset_index(drop=True)


@print_style
def _figure(frame, config):
    import matplotlib.pyplot as plt

    # The PMD panel (with its labels) across the top; reward and mass side by side below.
    fig = plt.figure(figsize=(WIDTH, 6.4), layout="constrained")
    mosaic = fig.subplot_mosaic([["pmd", "pmd"], ["reward", "coverage"]])
    axes = [mosaic["pmd"], mosaic["reward"], mosaic["coverage"]]
    betas = list(config.betas)
    alphas = list(config.alphas)
    columns = [("KL-RLHF", None)] + [("cPM-RLHF", a) for a in alphas] + [("PM-RLHF", None)]
    width = 0.8 / len(columns)
    x = np.arange(len(betas))
    greens = ["#a1d99b", "#41ab5d", "#006d2c", "#00441b"]
    # Every reduction label of a beta sits at one height above that beta's tallest bar:
    # rotated labels on the bars themselves ran into the taller neighbouring bars.
    tallest = frame.groupby("beta").pairwise_pmd.max().clip(lower=FLOOR_STUB)
    for ax, column, ylabel in (
        (axes[0], "pairwise_pmd", "pairwise PMD"),
        (axes[1], "mean_reward", "mean reward E_pi[r]"),
        (axes[2], "coverage", "mass on meaningful sequences"),
    ):
        for k, (method, alpha) in enumerate(columns):
            part = frame[frame.method == method]
            if alpha is not None:
                part = part[np.isclose(part.alpha, alpha)]
            values = part.set_index("beta").loc[betas, column]
            color = (
                greens[alphas.index(alpha) % len(greens)]
                if alpha is not None
                else COLORS["kl" if method == "KL-RLHF" else "pm"]
            )
            label = method if alpha is None else f"{method}, alpha = {alpha:g}"
            below = (values < PMD_FLOOR).to_numpy() if column == "pairwise_pmd" else None
            if below is not None:
                values = values.where(~below, FLOOR_STUB)
            bars = ax.bar(x + k * width, values, width, color=color, label=label)
            if below is not None:
                for bar in np.asarray(bars)[below]:
                    bar.set(hatch="////", edgecolor="white", linewidth=0)
            if column == "pairwise_pmd" and method != "KL-RLHF":
                gains = part.set_index("beta").loc[betas, "pmd_improvement_over_kl_pct"]
                for bar, gain, beta in zip(bars, gains, betas, strict=True):
                    ax.annotate(
                        f"{gain:.0f}%",
                        (bar.get_x() + bar.get_width() / 2, 1.4 * tallest[beta]),
                        ha="center",
                        va="bottom",
                        rotation=90,
                    )
        ax.set_xticks(x + width * (len(columns) - 1) / 2, [f"beta = {b:g}" for b in betas])
        ax.set(ylabel=ylabel)
    top = 60 * float(tallest.max())  # room for the rotated labels above the bars
    axes[0].set(yscale="log", ylim=(PMD_FLOOR, top), ylabel="pairwise PMD (log scale)")
    floor = f"1e{round(np.log10(PMD_FLOOR))}"
    axes[0].set_xlabel(f"hatched: below {floor}, shown at the floor (PM at beta = 1: 0 in theory)")
    axes[0].set_title(
        "Pairwise PM divergence (lower = better)\nlabels: reduction vs KL-RLHF (< 0: worse)"
    )
    axes[1].set_title("Reward the policy collects\n(including reward on gibberish)")
    axes[2].set_title("Mass on meaningful sequences\n(PM's price, cPM's fix)")
    legend_below(fig, axes[0], ncol=3)
    return finish(
        fig,
        f"KL vs conditional PM over beta x alpha ({config.prompts} prompts, "
        "token-level toy language)",
    )
