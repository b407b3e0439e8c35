"""Experiment 2: finite comparison data -> fitted BTL reward -> policy (docs/theory.md §1–3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import print_style
from ..._validation import DEFAULT_SEED
from ...theory import optimal_policy, preference_distribution
from ..fitting import fit_btl
from ..metrics import kl, total_variation
from ..population import Population, sample_comparisons
from ._plot import COLORS, finish, legend_below, subplots


@dataclass(frozen=True)
class FiniteDataConfig:
    n_items: int = 5
    utility_scale: float = 1.0
    comparisons: tuple[int, ...] = (30, 100, 300, 1000, 3000, 10000, 30000)
    seeds: int = 20
    kl_beta: float = 0.1
    l2: float = 1e-3  # a tiny ridge so that small samples always have an estimate
    seed: int = DEFAULT_SEED


QUICK = FiniteDataConfig(comparisons=(30, 300, 3000), seeds=5)


def run_finite_data(config: FiniteDataConfig):
    """Distance of the KL and PM policies of a fitted BTL reward to the true ``P_r``.

    Per number of comparisons and per seed: sample comparisons from a BTL truth, fit
    :func:`fit_btl`, take the PM and KL (uniform reference) optima of the fitted reward.

    Returns
    -------
    frame : DataFrame
        ``comparisons, seed, method, tv_to_truth, kl_to_truth`` (``kl_to_truth`` is
        ``KL(P_true || pi)``).
    figure : matplotlib Figure
        TV and KL vs number of comparisons, 5-95% bands over seeds.
    """
    seed = config.seed
    rng = np.random.default_rng(seed)
    truth = Population.btl(rng.normal(scale=config.utility_scale, size=config.n_items))
    target = preference_distribution(truth.utilities[0])
    uniform = np.full(config.n_items, 1.0 / config.n_items)
    rows = []
    for n in config.comparisons:
        for s in range(config.seeds):
            winners, losers = sample_comparisons(truth, n, rng=np.random.default_rng([seed, n, s]))
            reward = fit_btl(winners, losers, config.n_items, l2=config.l2)
            policies = {
                "pm": optimal_policy(reward, regularizer="pm"),
                "kl": optimal_policy(reward, regularizer="kl", beta=config.kl_beta, ref=uniform),
            }
            for method, policy in policies.items():
                rows.append(
                    {
                        "comparisons": n,
                        "seed": s,
                        "method": method,
                        "tv_to_truth": float(total_variation(policy, target)),
                        "kl_to_truth": float(kl(target, policy)),
                    }
                )
    frame = pd.DataFrame(rows)
    return frame, _figure(frame, config)


def headline(frame) -> dict:
    """Mean TV to the truth of PM and KL at the largest number of comparisons."""
    last = frame[frame.comparisons == frame.comparisons.max()].groupby("method").tv_to_truth.mean()
    return {
        "comparisons": int(frame.comparisons.max()),
        "pm_tv_to_truth": float(last["pm"]),
        "kl_tv_to_truth": float(last["kl"]),
    }


def summary_table(frame) -> pd.DataFrame:
    """PM beside KL at every number of comparisons: mean TV and KL to the truth over seeds."""
    means = frame.groupby(["comparisons", "method"])[["tv_to_truth", "kl_to_truth"]].mean()
    table = means.unstack("method")
    columns = {}
    for metric, label in (("tv_to_truth", "mean TV to truth"), ("kl_to_truth", "mean KL to truth")):
        for method, name in (("pm", "PM"), ("kl", "KL")):
            columns[f"{name}: {label}"] = table[(metric, method)]
    out = pd.DataFrame(columns).reset_index()
    out.insert(1, "seeds", frame.groupby("comparisons").seed.nunique().values)
    return out


@print_style
def _figure(frame, config):
    fig, axes = subplots(2, height=3.4)
    methods = (("kl", f"KL-RLHF (beta = {config.kl_beta:g})"), ("pm", "PM-RLHF"))
    for ax, column, ylabel in (
        (axes[0], "tv_to_truth", "TV(pi, P_true) (probability)"),
        (axes[1], "kl_to_truth", "KL(P_true || pi) (nats)"),
    ):
        for method, label in methods:
            stats = frame[frame.method == method].groupby("comparisons")[column]
            mean, low, high = stats.mean(), stats.quantile(0.05), stats.quantile(0.95)
            ax.plot(mean.index, mean.values, "o-", color=COLORS[method], label=f"{label}, mean")
            ax.fill_between(
                mean.index,
                low.values,
                high.values,
                color=COLORS[method],
                alpha=0.2,
                label=f"{label}, 5-95% over {config.seeds} seeds",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="pairwise comparisons (log scale)",
            ylabel=ylabel + ", log scale",
        )
    legend_below(fig, axes[0])
    axes[0].set_title("Total variation to the true\npreference distribution")
    axes[1].set_title("KL divergence from the true\npreference distribution")
    return finish(
        fig,
        f"Finite data ({config.n_items} responses, BTL reward fitted by maximum likelihood):\n"
        "more comparisons fix the reward, not the KL bias",
    )
