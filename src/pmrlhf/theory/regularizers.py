"""The three regularizers, defined once for numpy and torch callers (docs/theory.md §2–4).

Every regularizer in pmrlhf has the same shape. With ``log w(y)`` the *reference log-weight*

    KL:  log w(y) = log pi_ref(y)
    PM:  log w(y) = 0
    cPM: log w(y) = 0 if pi_ref(y) > alpha else log pi_ref(y)

the per-sample (or per-token) penalty is ``c = log pi(y) - log w(y)`` (docs/theory.md §4 table),
the regularized objective is ``E_pi[r] - beta * E_pi[c]`` and its maximizer over the simplex
is ``pi*(y) ∝ exp(r(y)/beta) * w(y)`` (docs/theory.md §2, §3, §4). The closed forms, the
simulations and the language-model trainer all call :func:`reference_log_weight` and
:func:`penalty`; nothing else encodes a regularizer.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_alpha, check_choice
from ..errors import PmrlhfUserError

REGULARIZERS = ("kl", "pm", "cpm")
"""Names accepted wherever a ``regularizer`` argument appears."""

NEEDS_REFERENCE = ("kl", "cpm")


def check_regularizer(
    regularizer, *, ref_given: bool, alpha, ref_name: str = "ref"
) -> tuple[str, float | None]:
    """Validate a regularizer name with its ``ref`` / ``alpha`` companions.

    ``ref_name`` is how the caller calls its reference argument in messages.

    Raises
    ------
    ValueError
        Unknown name, ``"kl"``/``"cpm"`` without a reference, ``"cpm"`` without ``alpha``
        or with ``alpha`` outside (0, 1), or ``alpha`` given to a regularizer that ignores it.
    """
    regularizer = check_choice(regularizer, "regularizer", REGULARIZERS)
    if regularizer in NEEDS_REFERENCE and not ref_given:
        raise PmrlhfUserError(f"{ref_name} is required for regularizer={regularizer!r}")
    if regularizer == "cpm":
        if alpha is None:
            raise PmrlhfUserError("alpha is required for regularizer='cpm'")
        return regularizer, check_alpha(alpha)
    if alpha is not None:
        raise PmrlhfUserError(
            f"alpha only applies to regularizer='cpm', got regularizer={regularizer!r}"
        )
    return regularizer, None


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def reference_log_weight(ref_logp, *, regularizer: str, alpha: float | None = None):
    """Log-weight ``log w`` that the regularizer puts on a response or token.

    Parameters
    ----------
    ref_logp : ndarray or torch.Tensor or None
        Reference log-probabilities ``log pi_ref``, any shape (``None`` allowed for ``"pm"``).
    regularizer : {"kl", "pm", "cpm"}
    alpha : float, optional
        Plausibility threshold of conditional PM: ``pi_ref > alpha`` is "in M_alpha".

    Returns
    -------
    Same type and shape as ``ref_logp``: ``ref_logp`` (KL), zeros (PM), or zeros where
    ``ref_logp > log(alpha)`` and ``ref_logp`` elsewhere (cPM). docs/theory.md §4.

    Raises
    ------
    PmrlhfUserError
        As :func:`check_regularizer`: an unknown ``regularizer``, ``ref_logp`` missing for
        ``"kl"``/``"cpm"``, ``alpha`` missing or outside (0, 1) for ``"cpm"``, or given to
        ``"kl"``/``"pm"``. Only these scalars are checked, never the array's values.
    """
    regularizer, alpha = check_regularizer(
        regularizer, ref_given=ref_logp is not None, alpha=alpha, ref_name="ref_logp"
    )
    return _log_weight(ref_logp, regularizer, alpha)


def _log_weight(ref_logp, regularizer: str, alpha: float | None):
    """:func:`reference_log_weight` on checked arguments."""
    if regularizer == "pm":
        if ref_logp is None:
            return 0.0
        return (
            ref_logp.new_zeros(ref_logp.shape) if _is_torch(ref_logp) else np.zeros_like(ref_logp)
        )
    if regularizer == "kl":
        return ref_logp
    # cPM: the comparison is made in log space so that it is exact for tiny probabilities.
    plausible = ref_logp > math.log(alpha)
    if _is_torch(ref_logp):
        import torch

        return torch.where(plausible, torch.zeros_like(ref_logp), ref_logp)
    return np.where(plausible, 0.0, ref_logp)


def penalty(logp, ref_logp=None, *, regularizer: str, alpha: float | None = None):
    """Per-token (or per-response) penalty ``c = log pi - log w`` (docs/theory.md §4 table).

    ``logp`` and ``ref_logp`` are log-probabilities of the *sampled* tokens (or responses)
    under the policy and the reference, same shape, numpy or torch. Summed over the tokens
    of a response, the KL and PM penalties are exactly the sequence-level regularizers.
    An RLHF trainer uses it as ``reward - beta * penalty(...).sum(-1)``.

    Raises
    ------
    PmrlhfUserError
        The checks of :func:`reference_log_weight` (``ref_logp`` must be given for
        ``"kl"``/``"cpm"``, ``alpha`` in (0, 1) for ``"cpm"`` only, a known ``regularizer``),
        and ``ref_logp`` of another shape than ``logp``. Cheap: scalars and shapes only.
    """
    regularizer, alpha = check_regularizer(
        regularizer, ref_given=ref_logp is not None, alpha=alpha, ref_name="ref_logp"
    )
    if ref_logp is not None:
        shape, ref_shape = tuple(np.shape(logp)), tuple(np.shape(ref_logp))
        if shape != ref_shape:
            raise PmrlhfUserError(
                f"ref_logp must have the shape of logp {shape}, got shape {ref_shape}"
            )
    return logp - _log_weight(ref_logp, regularizer, alpha)
