"""Annotator populations and the preference data they produce (docs/theory.md §1, §6).

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

from .._validation import as_array, as_float_array, check_positive_int, check_rng, check_simplex
from ..errors import PmrlhfTypeError, PmrlhfUserError
from ..theory import preference_distribution


@dataclass(frozen=True)
class Population:
    """Annotator groups ``k`` with weights ``w_k`` and utility vectors ``u_k`` (docs/theory.md §6).

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
            raise PmrlhfUserError(
                f"weights must be 1-D and utilities 2-D, got shapes {weights.shape} "
                f"and {utilities.shape}"
            )
        if utilities.shape[0] != weights.size:
            raise PmrlhfUserError(
                f"utilities has {utilities.shape[0]} group rows but weights has "
                f"{weights.size} entries"
            )
        if utilities.shape[1] < 2:
            raise PmrlhfUserError(
                f"utilities must cover at least 2 items, got {utilities.shape[1]}"
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "utilities", utilities)

    @classmethod
    def btl(cls, utilities) -> Population:
        """A population of one group: plain BTL/PL with ``utilities`` of shape ``(n_items,)``.

        Raises
        ------
        ValueError
            Non-finite or fewer than 2 utilities.
        """
        return cls(np.ones(1), np.atleast_2d(as_float_array(utilities, "utilities")))

    @property
    def n_items(self) -> int:
        return self.utilities.shape[1]

    @property
    def n_groups(self) -> int:
        return self.utilities.shape[0]

    def first_choice_distribution(self) -> np.ndarray:
        """How often each item is a random annotator's favourite (docs/theory.md §6).

        Returns
        -------
        ndarray, shape (n_items,)
            ``sum_k w_k softmax(u_k)``; for one group, the preference distribution ``P_u``.
        """
        return self.weights @ preference_distribution(self.utilities)

    def pairwise_probability(self) -> np.ndarray:
        """Probability that a random annotator prefers item ``i`` to item ``j`` (docs/theory.md §6).

        Returns
        -------
        ndarray, shape (n_items, n_items)
            ``P[i, j] = sum_k w_k sigma(u_k[i] - u_k[j])``; ``P + P.T = 1``, diagonal 1/2.
            In general not a BTL model when ``K > 1``.
        """
        gaps = self.utilities[:, :, None] - self.utilities[:, None, :]  # (K, n, n)
        return np.einsum("k,kij->ij", self.weights, expit(gaps))

    def to_dict(self) -> dict:
        """JSON-ready ``{"weights": [...], "utilities": [[...], ...]}``."""
        return {"weights": self.weights.tolist(), "utilities": self.utilities.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Population:
        """Inverse of :meth:`to_dict`; validates like the constructor.

        Raises
        ------
        PmrlhfUserError
            ``data`` is not a mapping with ``weights`` and ``utilities``; as the constructor.
        PmrlhfTypeError
            ``weights`` or ``utilities`` holds something that is not a number, or is ragged.
        """
        if not isinstance(data, dict) or not {"weights", "utilities"} <= set(data):
            raise PmrlhfUserError(
                "population must be a mapping with 'weights' and 'utilities', "
                f"got {type(data).__name__}"
                + (f" with keys {sorted(map(str, data))}" if isinstance(data, dict) else "")
            )
        return cls(
            as_array(data["weights"], "weights", dtype=float),
            as_array(data["utilities"], "utilities", dtype=float),
        )


def _check_population(population) -> Population:
    if not isinstance(population, Population):
        raise PmrlhfTypeError(f"population must be a Population, got {type(population).__name__}")
    return population


def sample_comparisons(
    population: Population, n: int, *, rng, pairs=None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` BTL comparisons from a population (docs/theory.md §1, §6).

    Each comparison shows a random pair of distinct items to a random annotator (group
    ``k`` with probability ``w_k``), who prefers item ``i`` to ``j`` with probability
    ``sigma(u_k[i] - u_k[j])``; marginally ``P(i beats j)`` is
    :meth:`Population.pairwise_probability`.

    Parameters
    ----------
    population : Population
    n : int >= 1
        Number of comparisons.
    rng : numpy.random.Generator or int >= 0 or None
        Source of randomness (an int is a seed).
    pairs : int array_like, shape (m, 2), optional
        Pairs to compare; each comparison draws one row uniformly at random (with
        replacement). Default: every unordered pair of distinct items, uniformly.

    Returns
    -------
    winners, losers : int arrays, shape (n,)
        The comparison format of this module.

    Raises
    ------
    ValueError
        ``n < 1``; a negative ``rng`` seed; ``pairs`` empty, not ``(m, 2)``, non-integer,
        out of range or with a row that pairs an item with itself.
    TypeError
        ``rng`` is not None, an int or a numpy Generator.
    """
    population = _check_population(population)
    n = check_positive_int(n, "n")
    rng = check_rng(rng)
    items = population.n_items
    if pairs is None:
        first = rng.integers(items, size=n)
        second = (first + rng.integers(1, items, size=n)) % items  # distinct from first
    else:
        pairs = _check_pairs(pairs, items)
        first, second = pairs[rng.integers(len(pairs), size=n)].T
    group = rng.choice(population.n_groups, size=n, p=population.weights)
    u = population.utilities[group]  # (n, items)
    rows = np.arange(n)
    first_wins = rng.random(n) < expit(u[rows, first] - u[rows, second])
    winners = np.where(first_wins, first, second)
    losers = np.where(first_wins, second, first)
    return winners, losers


def _check_pairs(pairs, n_items: int) -> np.ndarray:
    array = np.asarray(pairs)
    if array.size == 0:
        raise PmrlhfUserError("pairs must not be empty")
    if array.ndim != 2 or array.shape[1] != 2:
        raise PmrlhfUserError(f"pairs must have shape (m, 2), got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise PmrlhfUserError(f"pairs must hold integer item indices, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= n_items:
        bad = array[(array < 0) | (array >= n_items)].ravel()[0]
        raise PmrlhfUserError(f"pairs has index {bad} outside [0, {n_items})")
    if np.any(array[:, 0] == array[:, 1]):
        raise PmrlhfUserError("pairs must pair two distinct items in every row")
    return array.astype(np.int64)


def sample_rankings(population: Population, n: int, *, rng, top_k: int | None = None) -> np.ndarray:
    """Draw ``n`` Plackett–Luce rankings (full, or the top ``top_k``) (docs/theory.md §1).

    Each ranking comes from a random annotator (group ``k`` with probability ``w_k``).
    Sorting ``u_k + Gumbel noise`` in decreasing order gives an exact PL ranking (the
    Gumbel-max trick applied position by position), so the batch is one vectorised sort.

    Parameters
    ----------
    population : Population
    n : int >= 1
        Number of rankings.
    rng : numpy.random.Generator or int or None
    top_k : int, optional
        Keep only the ``top_k`` most preferred items of each ranking (default: all).

    Returns
    -------
    int array, shape (n, top_k or n_items)
        The rankings format of this module: row ``i`` from most to least preferred.

    Raises
    ------
    ValueError
        ``n < 1``, ``top_k`` outside ``[1, n_items]``, or a negative ``rng`` seed.
    TypeError
        ``rng`` is not None, an int or a numpy Generator.
    """
    population = _check_population(population)
    n = check_positive_int(n, "n")
    k = population.n_items if top_k is None else check_positive_int(top_k, "top_k")
    if k > population.n_items:
        raise PmrlhfUserError(f"top_k={k} exceeds the number of items {population.n_items}")
    rng = check_rng(rng)
    group = rng.choice(population.n_groups, size=n, p=population.weights)
    noisy = population.utilities[group] + rng.gumbel(size=(n, population.n_items))
    return np.argsort(-noisy, axis=1)[:, :k]
