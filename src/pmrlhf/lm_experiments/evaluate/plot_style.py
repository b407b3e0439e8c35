"""What the comparison's figures share (:mod:`.plots`, :mod:`.paired_plots`) and the report
reuses: the title, the whiskers of an interval, a method's legend label."""

from __future__ import annotations

import numpy as np


def figure_title(summary: dict) -> str:
    n = len(summary["seeds"])
    return f"{summary['model']} on '{summary['task']}', {n} seed(s)"


def whisker_lengths(means, intervals, *, floor: float = -np.inf) -> np.ndarray:
    """Error bars for ``errorbar`` / ``bar``: shape (2, n), from each mean down to
    ``max(lo, floor)`` and up to ``hi``; 0 where the interval is undefined (a single seed).
    ``floor=0`` keeps the whisker of a non-negative metric (PMD) from reaching below 0."""
    means = np.asarray(means, float)
    intervals = np.asarray(intervals, float).reshape(-1, 2)
    return np.nan_to_num([means - np.maximum(intervals[:, 0], floor), intervals[:, 1] - means])


def renormalised_label(name: str, values: dict) -> str:
    """The legend label of a method: plain PM's is suffixed with its candidate mass, since
    its candidate distribution is renormalised from almost none of its mass."""
    if values["regularizer"] != "pm":
        return name
    return f"{name} (renormalised from {values['mean']['coverage']:.2g} of the mass)"
