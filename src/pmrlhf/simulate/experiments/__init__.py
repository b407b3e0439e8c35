"""The five simulation experiments.

``EXPERIMENTS`` maps a name to ``(function, full config, quick config)``; each function
takes its config dataclass (with a ``seed`` field) and returns ``(DataFrame, Figure)``.
``HEADLINES`` maps the same names to ``frame -> dict`` of the numbers ``summary.json`` keeps.
"""

from __future__ import annotations

from . import collapse, finite_data, heterogeneous, pairwise_vs_rankings, token_tree

EXPERIMENTS = {
    "collapse": (collapse.run_collapse, collapse.CollapseConfig(), collapse.QUICK),
    "finite_data": (finite_data.run_finite_data, finite_data.FiniteDataConfig(), finite_data.QUICK),
    "heterogeneous": (
        heterogeneous.run_heterogeneous,
        heterogeneous.HeterogeneousConfig(),
        heterogeneous.QUICK,
    ),
    "token_tree": (token_tree.run_token_tree, token_tree.TokenTreeConfig(), token_tree.QUICK),
    "pairwise_vs_rankings": (
        pairwise_vs_rankings.run_pairwise_vs_rankings,
        pairwise_vs_rankings.RankingsConfig(),
        pairwise_vs_rankings.QUICK,
    ),
}

HEADLINES = {
    "collapse": collapse.headline,
    "finite_data": finite_data.headline,
    "heterogeneous": heterogeneous.headline,
    "token_tree": token_tree.headline,
    "pairwise_vs_rankings": pairwise_vs_rankings.headline,
}

__all__ = ["EXPERIMENTS", "HEADLINES"]
