"""Annotator populations and the preference data they produce (THEORY.md §1, §6).

Data formats, described once:

* **comparisons**: two integer arrays ``(winners, losers)`` of equal length; entry ``k`` says
  that item ``winners[k]`` was preferred to item ``losers[k]``;
* **rankings**: an integer array ``(n_rankings, k)``; row ``i`` lists items from most to
  least preferred (a full ranking when ``k = n_items``, a top-``k`` ranking otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .._validation import as_float_array, check_positive_int, check_simplex
from ..theory import preference_distribution


@dataclass(frozen=True)
class Population:
    """Annotator groups ``k`` with weights ``w_k`` and utility vectors ``u_k`` (THEORY.md §6).

    A random annotator belongs to group ``k`` with probability ``w_k`` and compares items by
    BTL with utilities ``u_k``; one group is plain BTL/PL.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Non-negative, summing to 1.
    utilities : array_like, shape (K, n_items)
        Finite utilities; ``n_items >= 2``.

    Raises
    ------
    ValueError
        Weights off the simplex, non-finite utilities, or mismatched shapes.
    """

    weights: np.ndarray
    utilities: np.ndarray

    def __post_init__(self):
        weights = check_simplex(np.atleast_1d(self.weights), "weights")
        utilities = as_float_array(self.utilities, "utilities")
        if utilities.ndim == 1:
            utilities = utilities[None, :]
        if weights.ndim != 1 or utilities.ndim != 2:
            raise ValueError(
                f"weights must be 1-D and utilities 2-D, got shapes {weights.shape} "
                f"and {utilities.shape}"
            )
        if utilities.shape[0] != weights.size:
            raise ValueError(
                f"utilities has {utilities.shape[0]} group rows but weights has "
                f"{weights.size} entries"
            )
        if utilities.shape[1] < 2:
            raise ValueError(f"utilities must cover at least 2 items, got {utilities.shape[1]}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "utilities", utilities)

    @classmethod
    def btl(cls, utilities) -> Population:
        """A single BTL group."""
        return cls(np.ones(1), np.atleast_2d(as_float_array(utilities, "utilities")))

    @property
    def n_items(self) -> int:
        return self.utilities.shape[1]

    @property
    def n_groups(self) -> int:
        return self.utilities.shape[0]

    def first_choice_distribution(self) -> np.ndarray:
        """``sum_k w_k softmax(u_k)``: how often each item is a random annotator's favourite."""
        return self.weights @ preference_distribution(self.utilities)

    def pairwise_probability(self) -> np.ndarray:
        """``(n, n)`` matrix ``P(i beats j) = sum_k w_k sigma(u_k[i] - u_k[j])``."""
        gaps = self.utilities[:, :, None] - self.utilities[:, None, :]  # (K, n, n)
        return np.einsum("k,kij->ij", self.weights, expit(gaps))

    def to_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "utilities": self.utilities.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Population:
        if not isinstance(data, dict) or not {"weights", "utilities"} <= set(data):
            raise ValueError("population must be a mapping with 'weights' and 'utilities'")
        return cls(np.asarray(data["weights"], float), np.asarray(data["utilities"], float))


def _check_population(population) -> Population:
    if not isinstance(population, Population):
        raise TypeError(f"population must be a Population, got {type(population).__name__}")
    return population


def sample_comparisons(population: Population, n: int, *, rng) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` BTL comparisons of uniformly random distinct pairs (THEORY.md §1, §6).

    Each comparison has its own random annotator (group ``k`` with probability ``w_k``).

    Returns
    -------
    winners, losers : int arrays, shape (n,)
    """
    population = _check_population(population)
    n = check_positive_int(n, "n")
    rng = np.random.default_rng(rng)
    items = population.n_items
    first = rng.integers(items, size=n)
    second = (first + rng.integers(1, items, size=n)) % items  # distinct from first
    group = rng.choice(population.n_groups, size=n, p=population.weights)
    u = population.utilities[group]  # (n, items)
    rows = np.arange(n)
    first_wins = rng.random(n) < expit(u[rows, first] - u[rows, second])
    winners = np.where(first_wins, first, second)
    losers = np.where(first_wins, second, first)
    return winners, losers


def sample_rankings(population: Population, n: int, *, rng, top_k: int | None = None) -> np.ndarray:
    """Draw ``n`` Plackett–Luce rankings (full, or the top ``top_k``) (THEORY.md §1).

    Sorting ``u + Gumbel noise`` in decreasing order gives an exact PL ranking, so the
    whole batch is one vectorised sort.

    Returns
    -------
    int array, shape (n, top_k or n_items)
    """
    population = _check_population(population)
    n = check_positive_int(n, "n")
    k = population.n_items if top_k is None else check_positive_int(top_k, "top_k")
    if k > population.n_items:
        raise ValueError(f"top_k={k} exceeds the number of items {population.n_items}")
    rng = np.random.default_rng(rng)
    group = rng.choice(population.n_groups, size=n, p=population.weights)
    noisy = population.utilities[group] + rng.gumbel(size=(n, population.n_items))
    return np.argsort(-noisy, axis=1)[:, :k]
