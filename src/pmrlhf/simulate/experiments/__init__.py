"""The five simulation experiments: name -> (function, full config, quick config)."""

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

__all__ = ["EXPERIMENTS"]
