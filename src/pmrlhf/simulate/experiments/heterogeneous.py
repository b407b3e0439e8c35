"""Experiment 3: heterogeneous annotator populations (docs/theory.md §6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import SINGLE, print_style
from ..._validation import DEFAULT_SEED
from ...theory import optimal_policy, preference_distribution
from ..fitting import fit_btl
from ..metrics import total_variation
from ..population import Population, sample_comparisons
from ._plot import COLORS, finish, legend_below, subplots


@dataclass(frozen=True)
class HeterogeneousConfig:
    """Two groups with opposed tastes over ``n_items``; the first group's weight varies."""

    n_items: int = 4
    group_a: tuple[float, ...] = (2.0, 1.0, 0.0, -1.0)
    group_b: tuple[float, ...] = (-1.0, 0.0, 2.5, 1.0)
    weights: tuple[float, ...] = tuple(np.linspace(0.0, 1.0, 11).round(3))
    comparisons: int = 50_000
    kl_beta: float = 0.1
    seed: int = DEFAULT_SEED


QUICK = HeterogeneousConfig(weights=(0.0, 0.25, 0.5, 0.75, 1.0), comparisons=10_000)


def run_heterogeneous(config: HeterogeneousConfig):
    """Reward-model gap and algorithm gap per mixture of two groups (docs/theory.md §6).

    Returns
    -------
    frame : DataFrame
        One row per weight of group A: ``reward_model_gap`` = TV(softmax(r_hat), first
        choice), ``pm_algorithm_gap`` / ``kl_algorithm_gap`` = TV(pi, softmax(r_hat)), and
        ``pm_to_population`` / ``kl_to_population`` = TV(pi, first choice).
    figure : matplotlib Figure
    """
    seed = config.seed
    utilities = np.array([config.group_a, config.group_b])
    uniform = np.full(utilities.shape[1], 1.0 / utilities.shape[1])
    rows = []
    for i, weight in enumerate(config.weights):
        population = Population(np.array([weight, 1 - weight]), utilities)
        winners, losers = sample_comparisons(
            population, config.comparisons, rng=np.random.default_rng([seed, i])
        )
        reward = fit_btl(winners, losers, population.n_items)
        reward_distribution = preference_distribution(reward)
        first_choice = population.first_choice_distribution()
        pm = optimal_policy(reward, regularizer="pm")
        kl = optimal_policy(reward, regularizer="kl", beta=config.kl_beta, ref=uniform)
        rows.append(
            {
                "weight_group_a": weight,
                "reward_model_gap": float(total_variation(reward_distribution, first_choice)),
                "pm_algorithm_gap": float(total_variation(pm, reward_distribution)),
                "kl_algorithm_gap": float(total_variation(kl, reward_distribution)),
                "pm_to_population": float(total_variation(pm, first_choice)),
                "kl_to_population": float(total_variation(kl, first_choice)),
            }
        )
    frame = pd.DataFrame(rows)
    return frame, _figure(frame, config)


def headline(frame) -> dict:
    """Largest reward-model and algorithm gaps over the mixtures."""
    return {
        "max_reward_model_gap": float(frame.reward_model_gap.max()),
        "max_pm_algorithm_gap": float(frame.pm_algorithm_gap.max()),
        "max_kl_algorithm_gap": float(frame.kl_algorithm_gap.max()),
    }


def summary_table(frame) -> pd.DataFrame:
    """The whole frame: one row per weight of group A, the reward model's gap beside PM's and
    KL's algorithmic gaps and their distances to the population (docs/theory.md §6)."""
    return frame


@print_style
def _figure(frame, config):
    fig, (ax,) = subplots(1, width=SINGLE, height=4.0)
    x = frame.weight_group_a
    ax.plot(
        x,
        frame.kl_algorithm_gap,
        "o-",
        color=COLORS["kl"],
        label=f"algorithm gap, KL-RLHF (beta = {config.kl_beta:g}): TV(pi, softmax(r_hat))",
    )
    ax.plot(
        x,
        frame.pm_algorithm_gap,
        "s-",
        color=COLORS["pm"],
        label="algorithm gap, PM-RLHF: TV(pi, softmax(r_hat))",
    )
    ax.plot(
        x,
        frame.reward_model_gap,
        "^--",
        color=COLORS["rm"],
        label="reward-model gap: TV(softmax(r_hat), population first choice)",
    )
    ax.set(
        xlabel="weight of annotator group A (group B has the rest)",
        ylabel="total variation distance",
        ylim=(-0.02, 1.0),
        title="Two annotator groups with opposed preferences",
    )
    legend_below(fig, ax, ncol=1)
    return finish(fig, "Heterogeneous populations:\nPM removes the algorithm's gap")
