"""Experiment 5: data efficiency of the reward fit, comparisons vs PL rankings.

The preference models are those of docs/theory.md §1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import SINGLE, print_style
from ..._validation import DEFAULT_SEED
from ...theory import preference_distribution
from ..fitting import fit_btl, fit_pl
from ..metrics import total_variation
from ..population import Population, sample_comparisons, sample_rankings
from ._plot import finish, legend_below, subplots


@dataclass(frozen=True)
class RankingsConfig:
    """Equal numbers of *annotations*: one comparison, one top-3 or one full ranking each."""

    n_items: int = 6
    annotations: tuple[int, ...] = (20, 50, 100, 200, 500, 1000, 2000)
    seeds: int = 20
    top_k: int = 3
    l2: float = 1e-3
    seed: int = DEFAULT_SEED


QUICK = RankingsConfig(annotations=(20, 200, 2000), seeds=5)


def run_pairwise_vs_rankings(config: RankingsConfig):
    """Reward-fit accuracy per data format at equal numbers of annotations (docs/theory.md §1).

    One annotation is one pairwise comparison, one top-``k`` ranking or one full ranking
    (so rankings carry more implied pairs per annotation: this is the annotator's view).

    Returns
    -------
    frame : DataFrame
        ``annotations, seed, data, tv_to_truth`` (TV of ``softmax(u_hat)`` to the true
        ``P_r``) and ``utility_rmse`` (of the centered utilities).
    figure : matplotlib Figure
    """
    seed = config.seed
    rng = np.random.default_rng(seed)
    truth = Population.btl(rng.normal(size=config.n_items))
    u_true = truth.utilities[0] - truth.utilities[0].mean()
    target = preference_distribution(u_true)
    rows = []
    for n in config.annotations:
        for s in range(config.seeds):
            draw = np.random.default_rng([seed, n, s])
            winners, losers = sample_comparisons(truth, n, rng=draw)
            fits = {
                "pairwise": fit_btl(winners, losers, config.n_items, l2=config.l2),
                f"top-{config.top_k} rankings": fit_pl(
                    sample_rankings(truth, n, rng=draw, top_k=config.top_k),
                    config.n_items,
                    l2=config.l2,
                ),
                "full rankings": fit_pl(
                    sample_rankings(truth, n, rng=draw), config.n_items, l2=config.l2
                ),
            }
            for data, u in fits.items():
                rows.append(
                    {
                        "annotations": n,
                        "seed": s,
                        "data": data,
                        "tv_to_truth": float(total_variation(preference_distribution(u), target)),
                        "utility_rmse": float(np.sqrt(np.mean((u - u_true) ** 2))),
                    }
                )
    frame = pd.DataFrame(rows)
    return frame, _figure(frame, config)


def headline(frame) -> dict:
    """Mean TV to the truth per data format at the largest number of annotations."""
    means = frame[frame.annotations == frame.annotations.max()].groupby("data").tv_to_truth.mean()
    numbers = {f"tv_{k.replace(' ', '_').replace('-', '')}": float(v) for k, v in means.items()}
    numbers["annotations"] = int(frame.annotations.max())
    return numbers


def summary_table(frame) -> pd.DataFrame:
    """Every data format beside the others at each number of annotations (means over seeds)."""
    formats = list(frame.data.unique())
    means = frame.groupby(["annotations", "data"])[["tv_to_truth", "utility_rmse"]].mean()
    table = means.unstack("data")
    columns = {f"{data}: mean TV to truth": table[("tv_to_truth", data)] for data in formats}
    columns |= {f"{data}: mean utility RMSE": table[("utility_rmse", data)] for data in formats}
    return pd.DataFrame(columns).reset_index()


@print_style
def _figure(frame, config):
    fig, (ax,) = subplots(1, width=SINGLE, height=3.9)
    for data, color in zip(frame.data.unique(), ("#7f7f7f", "#17becf", "#1f77b4"), strict=False):
        stats = frame[frame.data == data].groupby("annotations").tv_to_truth
        ax.plot(stats.mean().index, stats.mean().values, "o-", color=color, label=data)
        ax.fill_between(
            stats.mean().index,
            stats.quantile(0.05).values,
            stats.quantile(0.95).values,
            color=color,
            alpha=0.15,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="annotations (each: one comparison or one ranking)",
        ylabel="TV of softmax(fitted reward) to the truth",
        title=f"{config.n_items} items; bands: 5-95% over {config.seeds} seeds",
    )
    legend_below(fig, ax, ncol=3)  # inside, it hid the bands
    return finish(fig, "Rankings are more data-efficient\nthan pairwise comparisons")
