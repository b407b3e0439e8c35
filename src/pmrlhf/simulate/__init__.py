"""Synthetic preference-collapse simulations (numpy/scipy) on top of :mod:`pmrlhf.theory`."""

from .fitting import btl_log_likelihood, fit_btl, fit_pl, pl_log_likelihood
from .metrics import kl, minority_mass, pairwise_pmd, pairwise_pmd_matrix, total_variation
from .optimize import OptimizationResult, optimize_policy
from .population import Population, sample_comparisons, sample_rankings
from .runner import run_experiments
from .toy_language import TokenTree

__all__ = [
    "OptimizationResult",
    "Population",
    "TokenTree",
    "btl_log_likelihood",
    "fit_btl",
    "fit_pl",
    "kl",
    "minority_mass",
    "optimize_policy",
    "pairwise_pmd",
    "pairwise_pmd_matrix",
    "pl_log_likelihood",
    "run_experiments",
    "sample_comparisons",
    "sample_rankings",
    "total_variation",
]
