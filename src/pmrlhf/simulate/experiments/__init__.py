"""The eight simulation experiments.

``EXPERIMENTS`` maps a name to ``(function, full config, quick config)``; each function
takes its config dataclass (with a ``seed`` field) and returns ``(DataFrame, Figure)``.
``HEADLINES`` maps the same names to ``frame -> dict`` of the numbers ``summary.json`` keeps;
``REPORT_TABLES`` maps every name to ``frame -> DataFrame``, the table the report shows
(summarized so that it shows the comparison the report's text makes, not an excerpt of
the CSV).
"""

from __future__ import annotations

from . import (
    beta_alpha_grid,
    biased_reference,
    collapse,
    finite_data,
    heterogeneous,
    implied_preferences,
    pairwise_vs_rankings,
    token_tree,
)

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
    "biased_reference": (
        biased_reference.run_biased_reference,
        biased_reference.BiasedReferenceConfig(),
        biased_reference.QUICK,
    ),
    "implied_preferences": (
        implied_preferences.run_implied_preferences,
        implied_preferences.ImpliedPreferencesConfig(),
        implied_preferences.QUICK,
    ),
    "beta_alpha_grid": (
        beta_alpha_grid.run_beta_alpha_grid,
        beta_alpha_grid.BetaAlphaGridConfig(),
        beta_alpha_grid.QUICK,
    ),
}

HEADLINES = {
    "collapse": collapse.headline,
    "finite_data": finite_data.headline,
    "heterogeneous": heterogeneous.headline,
    "token_tree": token_tree.headline,
    "pairwise_vs_rankings": pairwise_vs_rankings.headline,
    "biased_reference": biased_reference.headline,
    "implied_preferences": implied_preferences.headline,
    "beta_alpha_grid": beta_alpha_grid.headline,
}

REPORT_TABLES = {
    "collapse": collapse.summary_table,
    "finite_data": finite_data.summary_table,
    "heterogeneous": heterogeneous.summary_table,
    "token_tree": token_tree.summary_table,
    "pairwise_vs_rankings": pairwise_vs_rankings.summary_table,
    "biased_reference": biased_reference.summary_table,
    "implied_preferences": implied_preferences.summary_table,
    "beta_alpha_grid": beta_alpha_grid.summary_table,
}

__all__ = ["EXPERIMENTS", "HEADLINES", "REPORT_TABLES"]
