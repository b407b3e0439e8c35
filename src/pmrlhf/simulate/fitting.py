"""Maximum-likelihood BTL and Plackett–Luce rewards (docs/theory.md §1).

Data formats are described once in :mod:`pmrlhf.simulate.population`. Both fits minimize the
negative log-likelihood plus ``l2/2 ||u||^2`` with analytic gradients (scipy), vectorised
with ``np.bincount``; utilities are returned with mean zero (rewards are identified only up
to a constant).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit
from threadpoolctl import ThreadpoolController

from .._validation import as_array, check_positive_int, check_real
from ..errors import PmrlhfUserError

_TOL = 1e-10
_BLAS = ThreadpoolController()  # discovering the BLAS libraries once costs milliseconds


def _as_index_array(value, name: str, n_items: int, *, ndim: int) -> np.ndarray:
    array = as_array(value, name)  # a ragged list names the argument
    if array.size == 0:
        raise PmrlhfUserError(f"{name} must not be empty")
    if array.ndim != ndim:
        raise PmrlhfUserError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(array == np.round(array)):
            raise PmrlhfUserError(f"{name} must hold integer item indices, got dtype {array.dtype}")
        array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= n_items:
        bad = array[(array < 0) | (array >= n_items)].ravel()[0]
        raise PmrlhfUserError(f"{name} has index {bad} outside [0, {n_items})")
    return array.astype(np.int64)


def _check_l2(l2) -> float:
    l2 = check_real(l2, "l2")
    if l2 < 0:
        raise PmrlhfUserError(f"l2 must be >= 0, got {l2}")
    return l2


def _require_strongly_connected(winners, losers, n_items: int, what: str) -> None:
    """The unregularized MLE exists iff 'i beat j' edges make a strongly connected graph."""
    graph = coo_matrix((np.ones(winners.size), (winners, losers)), shape=(n_items, n_items))
    count, _ = connected_components(graph, directed=True, connection="strong")
    if count > 1:
        raise PmrlhfUserError(
            f"the {what} graph is not strongly connected ({count} components): the maximum-"
            "likelihood estimate does not exist; collect more data or pass l2 > 0"
        )


def _solve(fun, n_items: int) -> np.ndarray:
    # L-BFGS-B's BLAS calls work on vectors of n_items: handing them to a thread pool costs
    # far more than the work itself, so the solver runs with one BLAS thread.
    with _BLAS.limit(limits=1, user_api="blas"):
        result = minimize(
            fun,
            np.zeros(n_items),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 50_000, "ftol": 1e-15, "gtol": _TOL, "maxcor": 20},
        )
    return result.x - result.x.mean()


def btl_log_likelihood(utilities, winners, losers) -> float:
    """``sum_k log sigma(u[w_k] - u[l_k])``."""
    u = np.asarray(utilities, float)
    return float(log_expit(u[winners] - u[losers]).sum())


def fit_btl(winners, losers, n_items: int, *, l2: float = 0.0) -> np.ndarray:
    """Maximum-likelihood Bradley–Terry–Luce utilities from pairwise comparisons.

    Maximizes ``sum_k log sigma(u[w_k] - u[l_k]) - l2/2 ||u||^2``.

    Parameters
    ----------
    winners, losers : int array_like, shape (m,)
        Comparison ``k``: item ``winners[k]`` preferred to item ``losers[k]``.
    n_items : int >= 2
    l2 : float >= 0
        Ridge penalty; with ``l2 = 0`` the comparison graph must be strongly connected.

    Returns
    -------
    ndarray, shape (n_items,), mean zero.

    Raises
    ------
    ValueError
        Empty or mismatched arrays, indices out of range, an item compared with itself, or
        (``l2 = 0``) a comparison graph that is not strongly connected.
    """
    n_items = check_positive_int(n_items, "n_items", minimum=2)
    winners = _as_index_array(winners, "winners", n_items, ndim=1)
    losers = _as_index_array(losers, "losers", n_items, ndim=1)
    if winners.shape != losers.shape:
        raise PmrlhfUserError(f"winners has {winners.size} entries but losers has {losers.size}")
    if np.any(winners == losers):
        raise PmrlhfUserError("winners and losers must differ in every comparison")
    l2 = _check_l2(l2)
    if l2 == 0:
        _require_strongly_connected(winners, losers, n_items, "comparison")
    # Repeated pairs are merged: the likelihood depends on counts only.
    pairs, counts = np.unique(winners * n_items + losers, return_counts=True)
    w, l, c = pairs // n_items, pairs % n_items, counts.astype(float)

    def negative_log_likelihood(u):
        margin = u[w] - u[l]
        value = -(c * log_expit(margin)).sum() + 0.5 * l2 * u @ u
        weight = c * expit(-margin)  # d/dmargin of -c log sigma(margin) is -c sigma(-margin)
        grad = np.bincount(l, weight, n_items) - np.bincount(w, weight, n_items) + l2 * u
        return value, grad

    return _solve(negative_log_likelihood, n_items)


def _pl_terms(u: np.ndarray, rankings: np.ndarray):
    """Per-position log-denominators of the PL likelihood and what the gradient needs."""
    n_items = u.size
    shift = u.max()
    e = np.exp(u - shift)  # (n,)
    ranked = e[rankings]  # (m, k)
    unranked = np.maximum(e.sum() - ranked.sum(1, keepdims=True), 0.0)  # (m, 1)
    # Denominator at position t: ranked items from t on, plus every unranked item.
    denominators = np.cumsum(ranked[:, ::-1], axis=1)[:, ::-1] + unranked  # (m, k)
    return shift, e, ranked, denominators, n_items


def pl_log_likelihood(utilities, rankings) -> float:
    """``sum_i sum_t [u(tau_t) - log sum_{j not yet ranked} exp u(j)]``."""
    u = np.asarray(utilities, float)
    shift, _, _, denominators, _ = _pl_terms(u, np.asarray(rankings))
    return float((u[rankings] - shift - np.log(denominators)).sum())


def fit_pl(rankings, n_items: int, *, l2: float = 0.0) -> np.ndarray:
    """Maximum-likelihood Plackett–Luce utilities from full or top-k rankings.

    ``P(tau) = prod_t exp(u(tau_t)) / sum_{j not in tau_1..tau_{t-1}} exp(u(j))``; for a
    top-k ranking the unranked items stay in every denominator (docs/theory.md §1).

    Parameters
    ----------
    rankings : int array_like, shape (m, k)
        Row ``i`` lists items from most to least preferred, without repeats.
    n_items : int >= 2
    l2 : float >= 0

    Returns
    -------
    ndarray, shape (n_items,), mean zero.

    Raises
    ------
    ValueError
        Empty or non-2-D rankings, indices out of range, repeated items in a ranking, or
        (``l2 = 0``) rankings whose implied comparisons are not strongly connected.
    """
    n_items = check_positive_int(n_items, "n_items", minimum=2)
    rankings = _as_index_array(rankings, "rankings", n_items, ndim=2)
    m, k = rankings.shape
    if k < 2 and k == n_items:
        raise PmrlhfUserError("rankings must rank at least 2 items")
    ordered = np.sort(rankings, axis=1)
    if np.any(ordered[:, 1:] == ordered[:, :-1]):
        raise PmrlhfUserError("rankings must not repeat an item within a row")
    l2 = _check_l2(l2)
    if l2 == 0:
        winners, losers = [rankings[:, :-1].ravel()], [rankings[:, 1:].ravel()]
        if k < n_items:  # the last ranked item beats every unranked one
            unranked = np.ones((m, n_items), bool)
            np.put_along_axis(unranked, rankings, False, axis=1)
            rows, cols = np.nonzero(unranked)
            winners.append(rankings[rows, -1])
            losers.append(cols)
        _require_strongly_connected(
            np.concatenate(winners), np.concatenate(losers), n_items, "ranking"
        )
    flat = rankings.ravel()

    def negative_log_likelihood(u):
        shift, e, ranked, denominators, _ = _pl_terms(u, rankings)
        value = -(u[flat].sum() - m * k * shift - np.log(denominators).sum()) + 0.5 * l2 * u @ u
        inverse = np.cumsum(1.0 / denominators, axis=1)  # (m, k): sum_{t<=s} 1/D_t
        # Every item is in the denominators of all k positions unless ranked; a ranked item
        # at position s is in those of positions 1..s only.
        grad = e * inverse[:, -1].sum()
        grad -= np.bincount(flat, (ranked * (inverse[:, -1:] - inverse)).ravel(), n_items)
        grad -= np.bincount(flat, minlength=n_items)
        return value, grad + l2 * u

    return _solve(negative_log_likelihood, n_items)
