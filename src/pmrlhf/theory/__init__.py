"""Exact mathematics of PM-RLHF: the derivation and the closed-form optima (docs/theory.md §1–4)."""

from .closed_forms import collapse_curve, objective, optimal_policy, preference_distribution
from .derivation import PMDerivation, derive_pm_regularizer
from .numerical import PMCheck, check_pm_property, maximize_objective
from .regularizers import REGULARIZERS, penalty, reference_log_weight

__all__ = [
    "REGULARIZERS",
    "PMCheck",
    "PMDerivation",
    "check_pm_property",
    "collapse_curve",
    "derive_pm_regularizer",
    "maximize_objective",
    "objective",
    "optimal_policy",
    "penalty",
    "preference_distribution",
    "reference_log_weight",
]
