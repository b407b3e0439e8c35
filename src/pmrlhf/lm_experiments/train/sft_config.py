"""The settings of the supervised fine-tuning that makes the reference
(:func:`pmrlhf.lm_experiments.train.sft.sft_on_pairs`); free of torch, so the command line
builds its parsers without loading it."""

from __future__ import annotations

from dataclasses import dataclass

from ..._validation import check_count, check_number
from ..models.precision import check_precision


@dataclass
class SFTConfig:
    """Supervised fine-tuning of the reference; the seed is the run's, not here."""

    steps: int = 40
    batch_size: int = 16  # a task with at most this many (prompt, answer) pairs: full batch
    lr: float = 5e-5
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 weights and loss) | auto (.precision)

    def validate(self) -> SFTConfig:
        check_count(self.steps, "sft.steps", 0)
        check_count(self.batch_size, "sft.batch_size")
        check_number(self.lr, "sft.lr")
        check_precision(self.precision, "sft.precision")
        return self
