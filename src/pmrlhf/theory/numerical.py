"""Generic numerical maximization over the simplex, to confirm every closed form.

It backs the PM-property check of docs/theory.md §3.

Nothing here knows a closed form: the policy is parameterized by unconstrained logits,
``pi = softmax(z)``, and scipy's L-BFGS-B maximizes the objective from the uniform policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from .._validation import DEFAULT_SEED, as_float_array, check_beta, check_positive_int
from ..errors import PmrlhfTypeError, PmrlhfUserError
from .closed_forms import preference_distribution, validate_problem

ElementwiseRegularizer = Callable[[np.ndarray], np.ndarray]


def _as_pair(R) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Return ``f(pi) = pi R(pi)`` and ``f'(pi)`` as vectorised numpy functions."""
    if isinstance(R, sp.Expr):
        free = sorted(R.free_symbols, key=str)
        if len(free) > 1:
            raise PmrlhfUserError(f"R must have one free symbol (pi), found {free}")
        x = free[0] if free else sp.Symbol("pi", positive=True)
        f = x * R
        f_num = sp.lambdify(x, f, "numpy")
        df_num = sp.lambdify(x, sp.diff(f, x), "numpy")
        return (
            lambda pi: np.broadcast_to(f_num(pi), pi.shape).astype(float),
            lambda pi: np.broadcast_to(df_num(pi), pi.shape).astype(float),
        )
    if not callable(R):
        raise PmrlhfTypeError(f"R must be a sympy expression or a callable, got {type(R).__name__}")

    def f(pi):
        return pi * np.asarray(R(pi), dtype=float)

    def df(pi):
        # Central differences with a relative step: pi may be tiny, never negative.
        h = 1e-6 * pi
        return (f(pi + h) - f(pi - h)) / (2 * h)

    return f, df


def _maximize(value_and_grad_pi, n: int, *, tol: float) -> np.ndarray:
    """Maximize a function of ``pi`` over the open simplex through logits."""

    def negative(z):
        log_pi = log_softmax(z)
        pi = np.exp(log_pi)
        value, grad_pi = value_and_grad_pi(pi, log_pi)
        # Chain rule through softmax: dJ/dz = pi * (g - <pi, g>).
        grad_z = pi * (grad_pi - pi @ grad_pi)
        return -value, -grad_z

    result = minimize(
        negative,
        np.zeros(n),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": tol, "gtol": tol, "maxcor": 30},
    )
    return softmax(result.x)


def maximize_objective(
    reward,
    *,
    regularizer: str | ElementwiseRegularizer | sp.Expr,
    beta: float = 1.0,
    ref=None,
    alpha: float | None = None,
    tol: float = 1e-14,
) -> np.ndarray:
    """Numerically maximize a regularized objective over the simplex (scipy L-BFGS-B).

    For a named regularizer (``"kl"``, ``"pm"``, ``"cpm"``) the objective is that of
    :func:`pmrlhf.theory.objective`. For a user's regularizer ``R`` (a sympy expression in
    one symbol, or a numpy callable applied elementwise to the policy vector, which may close
    over a per-response vector such as a reference) it is docs/theory.md §3's
    ``J_R(pi) = sum_y pi(y) [r(y) + beta R(pi(y))]``.

    Parameters
    ----------
    reward : array_like, shape (..., n)
        Rewards; each leading index is solved separately (a reference solver, not a fast
        path: use :func:`pmrlhf.theory.optimal_policy` for that).

    Returns
    -------
    ndarray, same shape as ``reward``.

    Raises
    ------
    ValueError, TypeError
        As :func:`pmrlhf.theory.optimal_policy`; a sympy ``R`` with several free symbols.
    """
    if isinstance(regularizer, str):
        reward, _, beta, log_w = validate_problem(
            reward, regularizer=regularizer, beta=beta, ref=ref, alpha=alpha, axis=-1
        )
        flat_r = reward.reshape(-1, reward.shape[-1])
        flat_w = log_w.reshape(flat_r.shape)
        out = np.zeros_like(flat_r)
        for i, (r, lw) in enumerate(zip(flat_r, flat_w, strict=True)):
            allowed = np.isfinite(lw)  # w(y) = 0 forces pi(y) = 0 at any optimum
            r_a, lw_a = r[allowed], lw[allowed]

            def value_and_grad(pi, log_pi, r_a=r_a, lw_a=lw_a):
                value = pi @ r_a - beta * (pi @ log_pi - pi @ lw_a)
                return value, r_a - beta * (log_pi + 1.0 - lw_a)

            out[i, allowed] = _maximize(value_and_grad, int(allowed.sum()), tol=tol)
        return out.reshape(reward.shape)

    if ref is not None or alpha is not None:
        raise PmrlhfUserError(
            "ref and alpha apply to named regularizers only; close over them in R"
        )
    reward = as_float_array(reward, "reward")
    beta = check_beta(beta)
    f, df = _as_pair(regularizer)
    flat_r = reward.reshape(-1, reward.shape[-1])
    out = np.zeros_like(flat_r)
    for i, r in enumerate(flat_r):

        def value_and_grad(pi, log_pi, r=r):
            return pi @ r + beta * f(pi).sum(), r + beta * df(pi)

        out[i] = _maximize(value_and_grad, r.size, tol=tol)
    return out.reshape(reward.shape)


@dataclass(frozen=True)
class PMCheck:
    """Outcome of :func:`check_pm_property`.

    ``max_distance`` is the largest total-variation distance between the numerical
    maximizer and ``softmax(r)`` over the trials; ``passed`` compares it with ``tolerance``.
    """

    max_distance: float
    passed: bool
    tolerance: float
    n_responses: int
    trials: int


def check_pm_property(
    R,
    *,
    n_responses: int = 4,
    trials: int = 20,
    seed: int = DEFAULT_SEED,
    reward_scale: float = 1.5,
    tolerance: float = 1e-5,
) -> PMCheck:
    """Check numerically whether ``argmax_pi sum pi (r + R(pi)) = softmax(r)`` (docs/theory.md §3).

    Draws ``trials`` reward vectors ``r ~ N(0, reward_scale^2)`` of length ``n_responses``,
    maximizes ``J_R`` with :func:`maximize_objective` (no closed form involved) and reports
    the worst total-variation distance to ``softmax(r)``. ``-log pi + C1 + C2/pi`` passes for
    any constants; ``0``, ``-pi``, ``log pi`` and KL to a non-uniform reference fail.

    Parameters
    ----------
    R : sympy expression in one symbol, or callable
        The regularizer; a callable receives the policy vector and returns ``R`` elementwise.
    n_responses, trials : int >= 2, >= 1
    seed : int
    reward_scale : float > 0
    tolerance : float > 0

    Raises
    ------
    ValueError, TypeError
        Bad sizes, a non-positive scale or tolerance, an ``R`` that is neither.
    """
    n_responses = check_positive_int(n_responses, "n_responses", minimum=2)
    trials = check_positive_int(trials, "trials")
    reward_scale = check_beta(reward_scale, "reward_scale")
    tolerance = check_beta(tolerance, "tolerance")
    rng = np.random.default_rng(seed)
    rewards = rng.normal(scale=reward_scale, size=(trials, n_responses))
    with np.errstate(all="ignore"):
        found = maximize_objective(rewards, regularizer=R)
    distance = 0.5 * np.abs(found - preference_distribution(rewards)).sum(-1)
    worst = float(np.nanmax(distance)) if np.all(np.isfinite(distance)) else float("inf")
    return PMCheck(worst, worst <= tolerance, tolerance, n_responses, trials)
