"""A method: one RL objective, a regularizer at a strength ``beta`` (and conditional PM's
``alpha``), with the name a comparison shows. ``lm run`` and ``lm trl`` read theirs from
``rl.regularizer``, ``rl.beta`` and ``rl.alpha`` (:attr:`RLConfig.method
<pmrlhf.lm_experiments.train.rl_config.RLConfig.method>`); ``lm compare`` trains several
(:meth:`RLConfig.with_method <pmrlhf.lm_experiments.train.rl_config.RLConfig.with_method>`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..._validation import check_beta
from ...errors import PmrlhfUserError
from ...theory.regularizers import check_regularizer

FIELDS = ("regularizer", "beta", "alpha")
"""What a method sets of an :class:`~pmrlhf.lm_experiments.train.rl_config.RLConfig`."""


@dataclass(frozen=True)
class Method:
    """One RL objective: a regularizer at a strength ``beta`` (and cPM's ``alpha``)."""

    name: str
    regularizer: str
    beta: float
    alpha: float | None = None

    def validate(self) -> Method:
        check_regularizer(self.regularizer, ref_given=True, alpha=self.alpha)
        check_beta(self.beta, f"beta of method {self.name!r}")
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise PmrlhfUserError(
                f"method name must be a non-empty string without '/', got {self.name!r}"
            )
        return self


LABELS = {"kl": "KL", "pm": "PM", "cpm": "cPM"}
REFERENCE = "reference (SFT)"
"""The row of a comparison that holds the reference itself, beside the methods' names."""


def method_name(regularizer: str, beta: float, alpha: float | None = None) -> str:
    """The name a comparison shows: ``KL b=1``, ``PM b=1``, ``cPM b=1 a=0.1``."""
    name = f"{LABELS[regularizer]} b={beta:g}"
    return name if alpha is None else f"{name} a={alpha:g}"
