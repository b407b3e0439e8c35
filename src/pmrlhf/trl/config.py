"""``PMRLOOConfig`` and ``PMGRPOConfig``: TRL's configs plus the regularizer (docs/theory.md §4).

Two fields are added to TRL's ``RLOOConfig`` / ``GRPOConfig``, so that ``TrlParser`` reads
them from the command line or a YAML file like any other:

* ``regularizer``: ``"kl"`` (TRL's own KL, the default), ``"pm"`` (per-token penalty
  ``log pi``) or ``"cpm"`` (``log pi`` where ``pi_ref > cpm_alpha``, ``log pi - log pi_ref``
  elsewhere), the three rows of docs/theory.md §4; ``beta`` stays the strength.
* ``cpm_alpha``: conditional PM's plausibility threshold, in (0, 1), for ``"cpm"`` only.

``beta`` weighs the penalty, and PM's optimum is ``softmax(r / beta)`` (cPM's, on the
responses it treats as plausible): the preference distribution ``softmax(r)`` only at
``beta = 1`` (docs/theory.md §3). So with ``"pm"`` or ``"cpm"`` a ``beta`` left unset
becomes 1.0, not TRL's default (0.05 for RLOO, 0 for GRPO); ``"kl"`` keeps TRL's default.
The field's default is ``None`` so that an explicit value, from Python, the command line or
a YAML file, is told apart from none; an explicit ``beta != 1`` with ``"pm"`` or ``"cpm"``
is honoured with a ``UserWarning`` naming the optimum it targets.

With ``"pm"`` or ``"cpm"`` a ``UserWarning`` also names each setting under which the
penalty's theory does not hold:

* sampling other than from the policy itself: ``temperature != 1``, ``top_p < 1``,
  ``top_k > 0``, ``min_p > 0`` or ``repetition_penalty != 1`` (also inside
  ``generation_kwargs``);
* GRPO's ``scale_rewards`` other than ``"none"``: each group's advantages are divided by
  the standard deviation of its rewards, the penalty included.

An invalid combination raises a ``ValueError`` naming the field when the config is built.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields

from trl import GRPOConfig, RLOOConfig

from .._validation import check_alpha, check_choice, check_number
from ..errors import PmrlhfUserError
from ..theory.regularizers import REGULARIZERS

PM_BETA = 1.0
"""``beta`` of ``"pm"`` / ``"cpm"`` when none is given: its optimum is ``softmax(r)``."""

# Sampling from the policy itself, field by field (TRL 1.16's names): a value for which the
# predicate holds samples from another distribution (None: the field's neutral default).
_SAMPLING = {
    "temperature": lambda v: v != 1.0,
    "top_p": lambda v: v < 1.0,
    "top_k": lambda v: v > 0,  # 0 (and vLLM's -1): no truncation
    "min_p": lambda v: v > 0,
    "repetition_penalty": lambda v: v != 1.0,
}

_REGULARIZER_HELP = (
    "Penalty subtracted from the reward, per sampled token: 'kl' (log pi - log pi_ref, TRL's "
    "own), 'pm' (log pi: preference matching, no reference model) or 'cpm' (log pi where "
    "pi_ref > cpm_alpha, log pi - log pi_ref elsewhere). beta is its strength."
)
_ALPHA_HELP = "Plausibility threshold of conditional PM, in (0, 1); only with regularizer='cpm'."


def _beta_help(trl_default: float) -> str:
    return (
        "Weight of the penalty subtracted from the reward (see regularizer). With 'pm' or "
        "'cpm' the optimum is softmax(r / beta), the preference distribution softmax(r) at "
        f"beta=1, the default for 'pm' and 'cpm'; with 'kl' the default is TRL's, {trl_default}."
    )


def _trl_default(config_cls, name: str):
    (default,) = [f.default for f in fields(config_cls) if f.name == name]
    return default


def resolve_beta(config, trl_default: float) -> None:
    """Set ``config.beta`` when it is ``None`` (not given): :data:`PM_BETA` with ``"pm"`` or
    ``"cpm"``, ``trl_default`` otherwise."""
    if config.beta is None:
        pm = getattr(config, "regularizer", "kl") in ("pm", "cpm")
        config.beta = PM_BETA if pm else trl_default


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
    check_number(
        config.beta, "beta",
        why=f" with regularizer={regularizer!r} (beta = 0 switches the penalty off)",
    )  # fmt: skip
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


def warn_objective(config, *, stacklevel: int = 4) -> None:
    """Warn (``UserWarning``) about each setting with which ``"pm"`` / ``"cpm"`` does not
    train towards the preference distribution as docs/theory.md §3-4 has it (module
    docstring): ``beta != 1``, sampling other than from the policy itself, GRPO's reward
    scaling. Nothing for ``"kl"``, which is TRL's own. ``stacklevel`` 4 points at the line
    that built the config (through ``__post_init__`` and the dataclass ``__init__``)."""
    regularizer = getattr(config, "regularizer", "kl")
    if regularizer == "kl":
        return
    name = f"{type(config).__name__}(regularizer={regularizer!r})"
    messages = []
    if config.beta != PM_BETA:
        where = " (among the responses conditional PM treats as plausible)"
        messages.append(
            f"{name}: beta={config.beta:g} was given, so the optimum is softmax(r / beta) = "
            f"softmax(r / {config.beta:g}), not the preference distribution softmax(r)"
            f"{where if regularizer == 'cpm' else ''}, unless the reward is already "
            "multiplied by beta; beta=1 (the default with 'pm' and 'cpm') targets softmax(r) "
            "(docs/theory.md §3)"
        )
    sampling = {key: getattr(config, key, None) for key in _SAMPLING}
    sampling.update((k, v) for k, v in (config.generation_kwargs or {}).items() if k in _SAMPLING)
    changed = [
        f"{key}={value!r}"
        for key, value in sampling.items()
        if value is not None and _SAMPLING[key](value)
    ]
    if changed:
        messages.append(
            f"{name}: sampling with {', '.join(changed)}, but the penalty log pi and its optimum "
            "softmax(r / beta) assume completions sampled from the policy itself (temperature=1, "
            "top_p=1, top_k=0, no min_p, repetition_penalty=1): truncation or a repetition "
            "penalty samples from another distribution than the one the penalty scores, and a "
            "temperature trains the tempered policy, not the model sampled at temperature 1"
        )
    scale = getattr(config, "scale_rewards", "none")
    if scale not in ("none", False):
        spread = "batch" if scale == "batch" else "group"
        messages.append(
            f"{name}: scale_rewards={scale!r} divides each advantage by std({spread} rewards), "
            f"the penalty included, so the penalty's weight becomes beta / std({spread} "
            "rewards) (the reward's 1 / std), varying with the prompt and the step; the updates "
            "are then no longer the gradient of E[r] - beta E[sum_t c_t], whose optimum is "
            "softmax(r / beta), and training need not reach softmax(r / beta) any more. Set "
            "scale_rewards='none' (--scale_rewards none) to keep that objective exact"
        )
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=stacklevel)


@dataclass
class PMRLOOConfig(RLOOConfig):
    """TRL's ``RLOOConfig`` with ``regularizer`` and ``cpm_alpha`` (module docstring).

    The score of a completion is ``r - beta * sum_t c_t`` with the per-token penalty
    ``c_t = log pi(y_t|h_t) - log w(y_t|h_t)`` of docs/theory.md §4; ``"kl"`` is TRL's
    ``per_token_kl = old_logps - ref_logps``. ``beta`` left unset is 1.0 with ``"pm"`` or
    ``"cpm"``, TRL's 0.05 with ``"kl"``.
    """

    regularizer: str = field(
        default="kl", metadata={"help": _REGULARIZER_HELP, "choices": list(REGULARIZERS)}
    )
    cpm_alpha: float | None = field(default=None, metadata={"help": _ALPHA_HELP})
    beta: float | None = field(
        default=None, metadata={"help": _beta_help(_trl_default(RLOOConfig, "beta"))}
    )

    def __post_init__(self):
        resolve_beta(self, _trl_default(RLOOConfig, "beta"))
        check_pm_fields(self)  # before TRL's own checks: a wrong field fails at once
        super().__post_init__()
        warn_objective(self)


@dataclass
class PMGRPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` with ``regularizer`` and ``cpm_alpha`` (module docstring).

    ``"kl"`` is GRPO as TRL runs it (k3 estimator in the loss). ``"pm"`` and ``"cpm"`` put
    ``-beta * sum_t c_t`` (docs/theory.md §4) into each completion's reward, before the
    group normalisation, and no KL term into the loss (see :class:`PMGRPOTrainer`).
    ``beta`` left unset is 1.0 with ``"pm"`` or ``"cpm"``, TRL's 0 with ``"kl"``.
    """

    regularizer: str = field(
        default="kl", metadata={"help": _REGULARIZER_HELP, "choices": list(REGULARIZERS)}
    )
    cpm_alpha: float | None = field(default=None, metadata={"help": _ALPHA_HELP})
    beta: float | None = field(
        default=None, metadata={"help": _beta_help(_trl_default(GRPOConfig, "beta"))}
    )

    def __post_init__(self):
        resolve_beta(self, _trl_default(GRPOConfig, "beta"))
        check_pm_fields(self)
        super().__post_init__()
        warn_objective(self)
