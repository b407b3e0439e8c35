"""Synthetic preference-collapse simulations (numpy/scipy) on top of :mod:`pmrlhf.theory`."""

from __future__ import annotations

from .._lazy import lazy_names

_WHERE = {
    "OptimizationResult": ".optimize",
    "Population": ".population",
    "TokenTree": ".toy_language",
    "btl_log_likelihood": ".fitting",
    "fit_btl": ".fitting",
    "fit_pl": ".fitting",
    "kl": ".metrics",
    "minority_mass": ".metrics",
    "optimize_policy": ".optimize",
    "pairwise_pmd": ".metrics",
    "pairwise_pmd_matrix": ".metrics",
    "pl_log_likelihood": ".fitting",
    "run_experiments": ".runner",
    "sample_comparisons": ".population",
    "sample_rankings": ".population",
    "total_variation": ".metrics",
}
"""Each public name and the module that defines it, imported when first used: a caller that
needs one class (the command line, a task file's population) does not load them all."""

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
