"""The settings of ``pmrlhf lm free-text-data`` (:func:`pmrlhf.lm_experiments.commands.
free_text_data.make_free_text_data`); free of torch, so the command line builds its parser
from these defaults without loading it."""

from __future__ import annotations

from dataclasses import dataclass

from ..._validation import DEFAULT_SEED, check_choice, check_count, check_number, check_seed
from ...errors import PmrlhfUserError
from ..data.free_text import UNFINISHED
from ..models.smollm2 import SMOLLM2

MAX_NEW_TOKENS_LIMIT = 512


@dataclass(frozen=True)
class FreeTextConfig:
    """How the free-text data set is made: ``samples`` responses per prompt from ``model``
    (plain sampling at temperature 1, at most ``max_new_tokens`` tokens each, seeded by
    ``seed``), every pair of a prompt's distinct responses labelled by the population, and
    ``test_share`` of the prompts held out. ``prompts``: a YAML/JSON file of prompts
    (``None``: the 40 shipped ones, ``builtin_datasets/free_text/prompts.yaml``);
    ``batch_prompts``: prompts sampled together; ``unfinished``: what becomes of a response
    the token limit cut off (:data:`UNFINISHED`: cut back to its last full sentence, kept,
    or dropped)."""

    model: str = SMOLLM2
    seed: int = DEFAULT_SEED
    samples: int = 6
    max_new_tokens: int = 48
    test_share: float = 0.25
    prompts: str | None = None
    batch_prompts: int = 8
    unfinished: str = "cut"

    def validate(self, prefix: str = "") -> FreeTextConfig:
        """Check every field (``prefix`` goes in front of each name in messages, ``"--"`` on
        the command line) and return ``self``.

        Raises
        ------
        PmrlhfUserError
            An empty model name, a negative seed, fewer than 2 samples (no pairs), a token
            limit outside 1..512, a test share outside (0, 1), a non-positive batch.
        """
        name = (lambda field: prefix + field.replace("_", "-")) if prefix else (lambda f: f)
        if not isinstance(self.model, str) or not self.model.strip():
            raise PmrlhfUserError(f"{name('model')} must name a model, got {self.model!r}")
        check_seed(self.seed, name("seed"))
        check_count(self.samples, name("samples"), 2, why=" (pairs need two responses)")
        check_count(self.max_new_tokens, name("max_new_tokens"))
        if self.max_new_tokens > MAX_NEW_TOKENS_LIMIT:
            raise PmrlhfUserError(
                f"{name('max_new_tokens')} must be at most {MAX_NEW_TOKENS_LIMIT}, got "
                f"{self.max_new_tokens}"
            )
        check_number(self.test_share, name("test_share"))
        if not self.test_share < 1:
            raise PmrlhfUserError(
                f"{name('test_share')} must lie in (0, 1), got {self.test_share!r}"
            )
        if self.prompts is not None and (not isinstance(self.prompts, str) or not self.prompts):
            raise PmrlhfUserError(f"{name('prompts')} must name a file, got {self.prompts!r}")
        check_count(self.batch_prompts, name("batch_prompts"))
        check_choice(self.unfinished, name("unfinished"), UNFINISHED)
        return self
