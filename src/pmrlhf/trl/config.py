"""``PMRLOOConfig`` and ``PMGRPOConfig``: TRL's configs plus the regularizer (docs/theory.md §4).

Two fields are added to TRL's ``RLOOConfig`` / ``GRPOConfig``, so that ``TrlParser`` reads
them from the command line or a YAML file like any other:

* ``regularizer``: ``"kl"`` (TRL's own KL, the default), ``"pm"`` (per-token penalty
  ``log pi``) or ``"cpm"`` (``log pi`` where ``pi_ref > cpm_alpha``, ``log pi - log pi_ref``
  elsewhere), the three rows of docs/theory.md §4; ``beta`` stays the strength.
* ``cpm_alpha``: conditional PM's plausibility threshold, in (0, 1), for ``"cpm"`` only.

An invalid combination raises a ``ValueError`` naming the field when the config is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig, RLOOConfig

from .._validation import check_alpha, check_choice
from ..errors import PmrlhfUserError
from ..theory.regularizers import REGULARIZERS

_REGULARIZER_HELP = (
    "Penalty subtracted from the reward, per sampled token: 'kl' (log pi - log pi_ref, TRL's "
    "own), 'pm' (log pi: preference matching, no reference model) or 'cpm' (log pi where "
    "pi_ref > cpm_alpha, log pi - log pi_ref elsewhere). beta is its strength."
)
_ALPHA_HELP = "Plausibility threshold of conditional PM, in (0, 1); only with regularizer='cpm'."


def check_pm_fields(config) -> tuple[str, float | None]:
    """Validate ``regularizer``, ``cpm_alpha`` and their companions on a TRL config.

    A config without a ``regularizer`` field (TRL's own) is ``"kl"``. Returns
    ``(regularizer, cpm_alpha)``.

    Raises
    ------
    ValueError
        Unknown ``regularizer``; ``cpm_alpha`` missing for ``"cpm"``, outside (0, 1), or
        given to another regularizer; ``beta`` not a positive finite number with ``"pm"`` or
        ``"cpm"`` (``beta = 0`` would switch the penalty off); ``sync_ref_model`` with
        ``"pm"`` (there is no reference to sync); GRPO's
        ``multi_objective_aggregation='normalize_then_sum'`` with ``"pm"`` or ``"cpm"``
        (it would normalise the penalty on its own, changing its weight).
    """
    regularizer = getattr(config, "regularizer", "kl")
    alpha = getattr(config, "cpm_alpha", None)
    check_choice(regularizer, "regularizer", REGULARIZERS)
    if regularizer == "cpm":
        if alpha is None:
            raise PmrlhfUserError(
                "cpm_alpha is required with regularizer='cpm' (a value in (0, 1))"
            )
        alpha = check_alpha(alpha, "cpm_alpha")
    elif alpha is not None:
        raise PmrlhfUserError(
            f"cpm_alpha only applies to regularizer='cpm', got regularizer={regularizer!r} "
            f"and cpm_alpha={alpha!r}"
        )
    if regularizer == "kl":
        return regularizer, None
    beta = config.beta
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta < math.inf:
        raise PmrlhfUserError(
            f"beta must be a positive finite number with regularizer={regularizer!r} "
            f"(beta = 0 switches the penalty off), got {beta!r}"
        )
    if regularizer == "pm" and config.sync_ref_model:
        raise PmrlhfUserError(
            "sync_ref_model has nothing to sync with regularizer='pm' (plain PM uses no "
            "reference model); set sync_ref_model=False"
        )
    if getattr(config, "multi_objective_aggregation", "sum_then_normalize") != "sum_then_normalize":
        raise PmrlhfUserError(
            f"multi_objective_aggregation must be 'sum_then_normalize' with "
            f"regularizer={regularizer!r}: 'normalize_then_sum' would normalise the penalty "
            "on its own and change its weight beta"
        )
    return regularizer, alpha


@dataclass
class PMRLOOConfig(RLOOConfig):
    """TRL's ``RLOOConfig`` with ``regularizer`` and ``cpm_alpha`` (module docstring).

    The score of a completion is ``r - beta * sum_t c_t`` with the per-token penalty
    ``c_t = log pi(y_t|h_t) - log w(y_t|h_t)`` of docs/theory.md §4; ``"kl"`` is TRL's
    ``per_token_kl = old_logps - ref_logps``.
    """

    regularizer: str = field(
        default="kl", metadata={"help": _REGULARIZER_HELP, "choices": list(REGULARIZERS)}
    )
    cpm_alpha: float | None = field(default=None, metadata={"help": _ALPHA_HELP})

    def __post_init__(self):
        check_pm_fields(self)  # before TRL's own checks: a wrong field fails at once
        super().__post_init__()


@dataclass
class PMGRPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` with ``regularizer`` and ``cpm_alpha`` (module docstring).

    ``"kl"`` is GRPO as TRL runs it (k3 estimator in the loss). ``"pm"`` and ``"cpm"`` put
    ``-beta * sum_t c_t`` (docs/theory.md §4) into each completion's reward, before the
    group normalisation, and no KL term into the loss (see :class:`PMGRPOTrainer`).
    """

    regularizer: str = field(
        default="kl", metadata={"help": _REGULARIZER_HELP, "choices": list(REGULARIZERS)}
    )
    cpm_alpha: float | None = field(default=None, metadata={"help": _ALPHA_HELP})

    def __post_init__(self):
        check_pm_fields(self)
        super().__post_init__()
