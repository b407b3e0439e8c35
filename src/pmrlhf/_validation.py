"""Input checks shared by every public function.

Each check names the argument and the bad value in a ``ValueError`` (or ``TypeError`` for
a wrong type); inner functions trust what passed through here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SIMPLEX_ATOL = 1e-6


def as_float_array(value, name: str, *, ndim_min: int = 1) -> np.ndarray:
    """Return ``value`` as a finite float64 array with at least ``ndim_min`` dimensions."""
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers: {err}") from None
    if array.ndim < ndim_min:
        raise ValueError(
            f"{name} must have at least {ndim_min} dimension(s), got shape {array.shape}"
        )
    if array.size == 0 or 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)].ravel()[0]
        raise ValueError(f"{name} must be finite, found {bad}")
    return array


def check_axis(axis: int, ndim: int, name: str = "axis") -> int:
    if not isinstance(axis, int | np.integer) or isinstance(axis, bool):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array with {ndim} dimension(s)")
    return int(axis) % ndim


def check_beta(beta, name: str = "beta") -> float:
    beta = check_real(beta, name)
    if beta <= 0:
        raise ValueError(f"{name} must be > 0, got {beta}")
    return beta


def check_alpha(alpha, name: str = "alpha") -> float:
    alpha = check_real(alpha, name)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {alpha}")
    return alpha


def check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_probability(value, name: str, *, open_interval: bool = False) -> float:
    value = check_real(value, name)
    if open_interval and not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_simplex(value, name: str, *, axis: int = -1, atol: float = SIMPLEX_ATOL) -> np.ndarray:
    """Return ``value`` as an array of probability vectors along ``axis``."""
    array = as_float_array(value, name)
    if np.any(array < 0):
        raise ValueError(f"{name} must be non-negative, found {array[array < 0].ravel()[0]}")
    totals = array.sum(axis=axis)
    worst = float(np.max(np.abs(totals - 1.0)))
    if worst > atol:
        raise ValueError(f"{name} must sum to 1 along axis {axis}, off by {worst:.3g}")
    return array


def check_same_shape(array: np.ndarray, name: str, shape: Sequence[int], other: str) -> None:
    if tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"{name} has shape {tuple(array.shape)} but {other} has shape {tuple(shape)}"
        )


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
