"""Closed-form optima and objectives of the regularized RLHF problems (docs/theory.md §1–4).

All functions are vectorised over leading axes (many prompts at once) and computed in log
space, so rewards of magnitude 1e4 with ``beta`` down to 1e-6 give finite probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import log_softmax, xlogy

from .._validation import (
    as_float_array,
    check_axis,
    check_beta,
    check_probability,
    check_simplex,
)
from ..errors import PmrlhfUserError
from .regularizers import check_regularizer, reference_log_weight

if TYPE_CHECKING:
    import pandas as pd


def preference_distribution(reward, axis: int = -1) -> np.ndarray:
    """Preference distribution ``P_r = softmax(r)`` (docs/theory.md §1).

    Under Plackett–Luce, ``P_r(y)`` is the probability that ``y`` is ranked first; it is
    consistent with Bradley–Terry–Luce and unchanged by adding a constant to ``r``.

    Parameters
    ----------
    reward : array_like, shape (..., n, ...)
        Finite rewards; ``axis`` indexes the responses.
    axis : int
        Axis of the responses.

    Returns
    -------
    ndarray, same shape as ``reward``, summing to 1 along ``axis``.

    Raises
    ------
    ValueError
        If ``reward`` is empty or has a non-finite entry, or ``axis`` is out of range.
    """
    reward = as_float_array(reward, "reward")
    axis = check_axis(axis, reward.ndim)
    return np.exp(log_optimal_policy(reward, 1.0, np.zeros_like(reward), axis=axis))


def validate_problem(reward, *, regularizer, beta, ref, alpha, axis):
    """Validate the arguments shared by every regularized problem (docs/theory.md §2–4).

    Returns ``(reward, axis, beta, log_w)`` with ``log_w`` the regularizer's reference
    log-weight broadcast to ``reward``'s shape (``-inf`` where the reference is 0 under KL).
    ``ref`` may have ``reward``'s shape or be one ``(n,)`` vector shared by every prompt.
    """
    reward = as_float_array(reward, "reward")
    axis = check_axis(axis, reward.ndim)
    beta = check_beta(beta)
    regularizer, alpha = check_regularizer(regularizer, ref_given=ref is not None, alpha=alpha)
    if ref is None:
        return reward, axis, beta, np.zeros_like(reward)
    ref = check_simplex(ref, "ref", axis=axis if np.ndim(ref) == reward.ndim else -1)
    if (
        ref.ndim > reward.ndim
        or ref.shape[-1 if ref.ndim < reward.ndim else axis] != reward.shape[axis]
    ):
        raise PmrlhfUserError(
            f"ref has shape {ref.shape}, which does not match reward's {reward.shape} "
            f"along the response axis {axis}"
        )
    if ref.ndim < reward.ndim:
        # A single reference shared by every prompt: move its response axis into place.
        ref = np.moveaxis(ref.reshape((1,) * (reward.ndim - ref.ndim) + ref.shape), -1, axis)
    try:
        np.broadcast_shapes(ref.shape, reward.shape)
    except ValueError:
        raise PmrlhfUserError(
            f"ref has shape {ref.shape}, not broadcastable to reward's {reward.shape}"
        ) from None
    with np.errstate(divide="ignore"):
        log_ref = np.log(ref)
    log_w = reference_log_weight(log_ref, regularizer=regularizer, alpha=alpha)
    return reward, axis, beta, np.broadcast_to(log_w, reward.shape)


def optimal_policy(
    reward,
    *,
    regularizer: str,
    beta: float = 1.0,
    ref=None,
    alpha: float | None = None,
    axis: int = -1,
) -> np.ndarray:
    """Maximizer of ``E_pi[r] - beta * E_pi[log pi - log w]`` over the simplex.

    ``pi*(y) = w(y) exp(r(y)/beta) / Z`` with ``w`` from
    :func:`pmrlhf.theory.regularizers.reference_log_weight`:

    * ``"kl"``: ``pi_ref * exp(r/beta) / Z`` (docs/theory.md §2);
    * ``"pm"``: ``softmax(r/beta)``, ``= P_r`` at ``beta = 1`` (docs/theory.md §3);
    * ``"cpm"``: ``exp(r/beta)`` on ``M_alpha = {pi_ref > alpha}``, damped by ``pi_ref``
      off it (docs/theory.md §4, sequence level).

    Parameters
    ----------
    reward : array_like, shape (..., n)
        Finite rewards; leading axes are prompts.
    regularizer : {"kl", "pm", "cpm"}
    beta : float > 0
    ref : array_like, optional
        Reference policy, same shape as ``reward`` or a single ``(n,)`` vector shared by all
        prompts; required for ``"kl"`` and ``"cpm"``; non-negative, summing to 1.
    alpha : float in (0, 1), optional
        Threshold of conditional PM (``"cpm"`` only).
    axis : int
        Axis of the responses.

    Returns
    -------
    ndarray, same shape as ``reward``; each slice along ``axis`` sums to 1.

    Raises
    ------
    ValueError
        Non-finite or empty ``reward``; ``beta <= 0``; ``ref`` missing, negative, not
        summing to 1 or of the wrong shape; ``alpha`` missing or outside (0, 1); an unknown
        ``regularizer``.
    """
    reward, axis, beta, log_w = validate_problem(
        reward, regularizer=regularizer, beta=beta, ref=ref, alpha=alpha, axis=axis
    )
    return np.exp(log_optimal_policy(reward, beta, log_w, axis=axis))


def log_optimal_policy(reward, beta: float, log_w, *, axis: int = -1) -> np.ndarray:
    """``log softmax(reward / beta + log_w)`` that stays finite where ``reward / beta`` overflows.

    Inputs as returned by :func:`validate_problem` (no checks here). The reward is shifted
    by its maximum over the support ``{log_w > -inf}`` before dividing by ``beta``, so every
    scaled entry on the support is ``<= 0`` and the maximizer's is exactly 0: an overflow
    can only give ``-inf`` (probability 0), never ``inf - inf = nan``. Off the support the
    result is ``-inf``.
    """
    support = np.isfinite(log_w)
    top = np.max(np.where(support, reward, -np.inf), axis=axis, keepdims=True)
    with np.errstate(over="ignore"):
        scaled = (reward - top) / beta  # (r - max r) / beta; -inf when it overflows
    logits = np.where(support, scaled + np.where(support, log_w, 0.0), -np.inf)
    return log_softmax(logits, axis=axis)


def objective(
    policy,
    reward,
    *,
    regularizer: str,
    beta: float = 1.0,
    ref=None,
    alpha: float | None = None,
    axis: int = -1,
) -> np.ndarray:
    """Regularized objective ``J(pi) = E_pi[r] - beta * E_pi[log pi - log w]``.

    For ``"kl"`` this is ``E_pi[r] - beta KL(pi || pi_ref)`` (docs/theory.md §2); for ``"pm"``
    it is ``E_pi[r] + beta H(pi)`` (docs/theory.md §3); for ``"cpm"`` the sequence-level
    ``J_cPM`` (docs/theory.md §4). Terms with ``pi(y) = 0`` contribute 0; mass on a response that
    the regularizer forbids (``w(y) = 0``) gives ``-inf``.

    Returns
    -------
    ndarray with ``axis`` removed (a float for a single prompt).

    Raises
    ------
    ValueError
        As :func:`optimal_policy`, plus ``policy`` off the simplex or of another shape.
    """
    reward, axis, beta, log_w = validate_problem(
        reward, regularizer=regularizer, beta=beta, ref=ref, alpha=alpha, axis=axis
    )
    policy = check_simplex(policy, "policy", axis=axis)
    if policy.shape != reward.shape:
        raise PmrlhfUserError(
            f"policy has shape {policy.shape} but reward has shape {reward.shape}"
        )
    with np.errstate(invalid="ignore"):
        cross = np.where(policy > 0, policy * log_w, 0.0)
    value = (policy * reward).sum(axis) - beta * (xlogy(policy, policy).sum(axis) - cross.sum(axis))
    return value if value.ndim else float(value)


def collapse_curve(p: float, betas, *, reference: str = "uniform") -> pd.DataFrame:
    """Minority mass of the KL and PM optima for two responses (docs/theory.md §2).

    The reward is the BTL logit of a ``p : 1 - p`` preference, ``r = (log p, log(1-p))``,
    so ``P_r = (p, 1 - p)``. The KL optimum at strength ``beta`` uses a uniform reference
    (``reference="uniform"``: minority mass ``1 / (1 + (p/(1-p))^(1/beta))``) or a reference
    already equal to ``P_r`` (``"preference"``: ``1 / (1 + (p/(1-p))^(1 + 1/beta))``).
    The PM optimum is the maximizer with the PM regularizer ``-log pi`` on the BTL scale
    (equivalently strength ``beta`` on the reward ``beta * r``), which is ``P_r`` for every
    ``beta``. Both are computed by :func:`optimal_policy`, not typed in.

    Parameters
    ----------
    p : float in (1/2, 1)
        Majority share.
    betas : array_like of float > 0
    reference : {"uniform", "preference"}

    Returns
    -------
    DataFrame with columns ``p, beta, reference, target_minority_mass,
    kl_minority_mass, pm_minority_mass``, one row per ``beta``.
    """
    import pandas as pd  # here, not at the top: the closed forms themselves need no pandas

    p = check_probability(p, "p", open_interval=True)
    if p <= 0.5:
        raise PmrlhfUserError(f"p is the majority share and must lie in (0.5, 1), got {p}")
    betas = as_float_array(betas, "betas").ravel()
    if np.any(betas <= 0):
        raise PmrlhfUserError(f"betas must be > 0, found {betas[betas <= 0][0]}")
    if reference not in ("uniform", "preference"):
        raise PmrlhfUserError(f"reference must be 'uniform' or 'preference', got {reference!r}")
    reward = np.log([p, 1.0 - p])
    ref = np.full(2, 0.5) if reference == "uniform" else np.array([p, 1.0 - p])
    rewards = np.broadcast_to(reward, (betas.size, 2))
    kl = np.stack([optimal_policy(reward, regularizer="kl", beta=b, ref=ref) for b in betas])
    pm = np.stack([optimal_policy(b * reward, regularizer="pm", beta=b) for b in betas])
    return pd.DataFrame(
        {
            "p": p,
            "beta": betas,
            "reference": reference,
            "target_minority_mass": preference_distribution(rewards)[:, 1],
            "kl_minority_mass": kl[:, 1],
            "pm_minority_mass": pm[:, 1],
        }
    )
