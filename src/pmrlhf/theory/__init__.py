"""Exact mathematics of PM-RLHF: the derivation and the closed-form optima (docs/theory.md §1–4).

Only the regularizers (numpy) load with the package. The closed forms (scipy.special), the
sympy derivation (:func:`derive_pm_regularizer`, :class:`PMDerivation`) and the numerical
checker (:func:`check_pm_property`, :func:`maximize_objective`, :class:`PMCheck`: sympy and
scipy.optimize) load on first use of one of their names (PEP 562), so that a trainer that
imports :func:`penalty` pays for none of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .regularizers import REGULARIZERS, penalty, reference_log_weight

if TYPE_CHECKING:
    from .closed_forms import collapse_curve, objective, optimal_policy, preference_distribution
    from .derivation import PMDerivation, derive_pm_regularizer
    from .numerical import PMCheck, check_pm_property, maximize_objective

_LAZY = {
    "collapse_curve": "closed_forms",
    "objective": "closed_forms",
    "optimal_policy": "closed_forms",
    "preference_distribution": "closed_forms",
    "PMDerivation": "derivation",
    "derive_pm_regularizer": "derivation",
    "PMCheck": "numerical",
    "check_pm_property": "numerical",
    "maximize_objective": "numerical",
}

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


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
