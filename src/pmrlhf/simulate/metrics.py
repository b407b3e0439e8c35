"""Closeness of a policy to a preference distribution (docs/theory.md §5), for numpy arrays.

Shared by the simulations and the language-model layer: one definition per metric.
All functions are batched over leading axes; the response axis is ``axis`` (last by default).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, rel_entr

from .._validation import as_float_array, check_axis, check_simplex
from ..errors import PmrlhfUserError


def _pair(p, q, axis: int, names=("p", "q")) -> tuple[np.ndarray, np.ndarray, int]:
    p = check_simplex(p, names[0], axis=axis)
    q = check_simplex(q, names[1], axis=axis)
    if p.shape != q.shape:
        raise PmrlhfUserError(f"{names[0]} has shape {p.shape} but {names[1]} has shape {q.shape}")
    return p, q, check_axis(axis, p.ndim)


def kl(p, q, *, axis: int = -1) -> np.ndarray:
    """Kullback–Leibler divergence ``KL(p || q) = sum_y p(y) log(p(y) / q(y))`` (docs/theory.md §5).

    ``0 log 0 = 0``; the result is ``inf`` where ``q(y) = 0 < p(y)``.

    Parameters
    ----------
    p, q : array_like, same shape (..., n)
        Probability vectors along ``axis``; leading axes are batches (prompts).
    axis : int
        Axis of the responses.

    Returns
    -------
    ndarray with ``axis`` removed (a 0-d array for one pair of vectors).

    Raises
    ------
    ValueError
        ``p`` or ``q`` empty, non-finite, negative or not summing to 1; shapes differ.
    """
    p, q, axis = _pair(p, q, axis)
    return rel_entr(p, q).sum(axis)


def total_variation(p, q, *, axis: int = -1) -> np.ndarray:
    """Total variation distance ``TV(p, q) = 1/2 sum_y |p(y) - q(y)|`` (docs/theory.md §5).

    Parameters
    ----------
    p, q : array_like, same shape (..., n)
    axis : int

    Returns
    -------
    ndarray in [0, 1] with ``axis`` removed.

    Raises
    ------
    ValueError
        As :func:`kl`.
    """
    p, q, axis = _pair(p, q, axis)
    return 0.5 * np.abs(p - q).sum(axis)


def minority_mass(policy, target, *, axis: int = -1) -> np.ndarray:
    """Mass of ``policy`` on every response other than ``argmax target`` (docs/theory.md §5).

    ``1 - policy(argmax_y target(y))``. With ``target = P_r`` this is what preference
    collapse drives to zero; ``minority_mass(target, target)`` is the value PM keeps.

    Parameters
    ----------
    policy, target : array_like, same shape (..., n)
        Probability vectors along ``axis``.
    axis : int

    Returns
    -------
    ndarray with ``axis`` removed.

    Raises
    ------
    ValueError
        As :func:`kl`, naming ``policy`` or ``target``.
    """
    policy, target, axis = _pair(policy, target, axis, names=("policy", "target"))
    top = np.expand_dims(target.argmax(axis), axis)
    return 1.0 - np.take_along_axis(policy, top, axis).squeeze(axis)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _bernoulli_kl_from_logits(target_logit: np.ndarray, model_logit: np.ndarray) -> np.ndarray:
    """``KL(Bern(sigma(a)) || Bern(sigma(b)))`` computed from the logits, stably."""
    p = np.exp(_log_sigmoid(target_logit))
    value = p * (_log_sigmoid(target_logit) - _log_sigmoid(model_logit)) + (1 - p) * (
        _log_sigmoid(-target_logit) - _log_sigmoid(-model_logit)
    )
    return np.maximum(value, 0.0)  # a KL divergence; rounding can leave -1e-19 at equality


def pairwise_pmd(log_pi_a, log_pi_b, reward_a, reward_b) -> dict[str, float]:
    """Pairwise preference-matching divergence over pairs ``(a, b)`` (docs/theory.md §5).

    The policy's implied preference is ``p_pi = sigma(log pi(a) - log pi(b))``, the
    reward's ``p_r = sigma(r(a) - r(b))``. Needs no normalizing constant. This is the
    project's own definition, not the paper's (whose exact formula is not available), and
    it is unbounded: a policy that gives one response of a pair almost no mass can make it
    arbitrarily large.

    Parameters
    ----------
    log_pi_a, log_pi_b, reward_a, reward_b : array_like, same shape
        One entry per pair.

    Returns
    -------
    dict
        ``kl_bernoulli``: mean ``KL(Bern(p_r) || Bern(p_pi))``;
        ``abs_logodds_gap``: mean ``|(log pi(a) - log pi(b)) - (r(a) - r(b))|``;
        ``abs_preference_gap``: mean ``|p_r - p_pi|``, bounded in [0, 1].

    Raises
    ------
    ValueError
        Non-finite or empty input, or shapes that differ.
    """
    names = ("log_pi_a", "log_pi_b", "reward_a", "reward_b")
    arrays = [
        as_float_array(v, n)
        for v, n in zip((log_pi_a, log_pi_b, reward_a, reward_b), names, strict=True)
    ]
    for array, name in zip(arrays[1:], names[1:], strict=True):
        if array.shape != arrays[0].shape:
            raise PmrlhfUserError(
                f"{name} has shape {array.shape} but log_pi_a has shape {arrays[0].shape}"
            )
    model_logit = arrays[0] - arrays[1]
    target_logit = arrays[2] - arrays[3]
    return {
        "kl_bernoulli": float(_bernoulli_kl_from_logits(target_logit, model_logit).mean()),
        "abs_logodds_gap": float(np.abs(model_logit - target_logit).mean()),
        "abs_preference_gap": float(np.abs(expit(target_logit) - expit(model_logit)).mean()),
    }


def pairwise_pmd_matrix(log_pi, reward, *, axis: int = -1) -> dict[str, float]:
    """:func:`pairwise_pmd` over every unordered pair of a finite response set (docs/theory.md §5).

    The ``n (n - 1) / 2`` pairs ``i < j`` along ``axis`` are formed by fancy indexing (no
    Python loop); the means run over pairs and leading axes alike. ``log_pi`` need not be
    normalized: a constant shift per prompt cancels in every pair.

    Parameters
    ----------
    log_pi : array_like, shape (..., n)
        Policy log-probabilities (or any log-weights).
    reward : array_like, same shape
    axis : int
        Axis of the responses.

    Returns
    -------
    dict
        ``kl_bernoulli``, ``abs_logodds_gap`` and ``abs_preference_gap`` as in
        :func:`pairwise_pmd`.

    Raises
    ------
    ValueError
        Non-finite or empty input, shapes that differ, or fewer than 2 responses.
    """
    log_pi = as_float_array(log_pi, "log_pi")
    reward = as_float_array(reward, "reward")
    if log_pi.shape != reward.shape:
        raise PmrlhfUserError(
            f"log_pi has shape {log_pi.shape} but reward has shape {reward.shape}"
        )
    axis = check_axis(axis, log_pi.ndim)
    n = log_pi.shape[axis]
    if n < 2:
        raise PmrlhfUserError(f"log_pi needs at least 2 responses along axis {axis}, got {n}")
    i, j = np.triu_indices(n, k=1)
    log_pi, reward = np.moveaxis(log_pi, axis, -1), np.moveaxis(reward, axis, -1)
    return pairwise_pmd(log_pi[..., i], log_pi[..., j], reward[..., i], reward[..., j])
