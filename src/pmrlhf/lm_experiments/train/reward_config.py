"""The settings of the Bradley-Terry reward model's training
(:func:`pmrlhf.lm_experiments.train.reward_model.train_reward_model`); free of torch, so the
command line builds its parsers without loading it."""

from __future__ import annotations

from dataclasses import dataclass

from ..._validation import check_count, check_number
from ...errors import PmrlhfUserError


@dataclass
class RewardConfig:
    steps: int = 100
    batch_size: int = 8
    lr: float = 5e-5
    heldout: float = 0.2  # share of the pairs kept out of training for the accuracy

    def validate(self) -> RewardConfig:
        for name in ("steps", "batch_size"):
            check_count(getattr(self, name), f"rm.{name}")
        check_number(self.lr, "rm.lr")
        if not 0 <= check_number(self.heldout, "rm.heldout", zero=True) < 1:
            raise PmrlhfUserError(f"rm.heldout must lie in [0, 1), got {self.heldout!r}")
        return self
