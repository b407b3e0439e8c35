"""The settings of an RL run (:class:`RLConfig`), checked before anything runs;
:func:`~pmrlhf.lm_experiments.train.rl.train_rl` runs them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..._validation import check_choice, check_count, check_number
from ...errors import PmrlhfUserError
from ...theory.regularizers import check_regularizer
from ..models.precision import check_precision
from . import method as methods

PENALTY_GRADIENTS = ("expected", "sampled")


# More samples of one prompt per step than any machine this runs on holds for a 100M model
# (the logits alone: samples x tokens x vocabulary floats); larger asks are refused early.
MAX_SAMPLES_PER_PROMPT = 4096


@dataclass
class RLConfig:
    """Every knob of an RL run; serialises to JSON/YAML. The seed is the run's, not here."""

    regularizer: str = "pm"  # kl | pm | cpm
    beta: float = 1.0
    alpha: float | None = None  # cpm only
    steps: int = 50
    prompts_per_step: int | None = None  # None: every prompt of the task, every step
    # k of RLOO; at 12, KL at beta 0.1's nearly dropped answers ended seed-dependent (README)
    samples_per_prompt: int = 24
    max_new_tokens: int | None = None  # None: the task's longest candidate, end token included
    lr: float = 3e-5
    warmup_steps: int = 10  # linear warmup: Adam's first steps move every weight by ~lr
    lr_final: float = 0.1  # then linear decay to lr * lr_final: late steps average out noise
    inner_epochs: int = 1
    clip: float | None = None  # PPO-style ratio clip; None: plain RLOO policy gradient
    # expected: the penalty's exact expectation over the vocabulary at each sampled history;
    # sampled: the sampled token's penalty in the return, as TRL does (docs/theory.md §4).
    penalty_gradient: str = "expected"
    temperature: float = 1.0  # no top-p / top-k: the theory assumes samples from pi itself
    max_grad_norm: float = 1.0
    eval_every: int = 0  # 0: no evaluation during training (see train_rl's on_eval)
    checkpoint_every: int = 0  # 0: only at the end (and every checkpoint_minutes)
    checkpoint_minutes: float = 5.0  # also checkpoint after this much work; 0: off
    precision: str = "fp32"  # fp32 | bf16 (autocast, fp32 weights and loss) | auto (.precision)

    @property
    def method(self) -> methods.Method:
        """The run's method: its regularizer, ``beta`` and ``alpha``, named."""
        name = methods.method_name(self.regularizer, self.beta, self.alpha)
        return methods.Method(name, self.regularizer, self.beta, self.alpha)

    def with_method(self, method: methods.Method) -> RLConfig:
        """These settings with ``method``'s regularizer, ``beta`` and ``alpha``."""
        return replace(self, **{key: getattr(method, key) for key in methods.FIELDS})

    def shared_settings(self) -> dict:
        """Every setting but the method's: what the methods of a comparison share (its
        ``summary.json`` and the fingerprints of its results hold these)."""
        return {k: v for k, v in asdict(self).items() if k not in methods.FIELDS}

    def validate(self) -> RLConfig:
        check_regularizer(self.regularizer, ref_given=True, alpha=self.alpha)
        for name in ("beta", "lr", "max_grad_norm", "temperature"):
            check_number(getattr(self, name), f"rl.{name}")
        if self.lr >= 1:  # AdamW moves every weight by about lr per step
            raise PmrlhfUserError(
                f"rl.lr must be < 1 (AdamW moves every weight by about lr each step), "
                f"got {self.lr!r}"
            )
        if not 0 <= self.lr_final <= 1:
            raise PmrlhfUserError(f"rl.lr_final must lie in [0, 1], got {self.lr_final!r}")
        for name in ("steps", "inner_epochs", "prompts_per_step", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None or name not in ("prompts_per_step", "max_new_tokens"):
                check_count(value, f"rl.{name}")
        for name in ("eval_every", "checkpoint_every", "warmup_steps"):
            check_count(getattr(self, name), f"rl.{name}", 0)
        check_number(self.checkpoint_minutes, "rl.checkpoint_minutes", zero=True, why=" (0: off)")
        check_count(
            self.samples_per_prompt, "rl.samples_per_prompt", 2,
            why=" (the leave-one-out baseline needs two)",
        )  # fmt: skip
        if self.samples_per_prompt > MAX_SAMPLES_PER_PROMPT:  # checked before anything is written
            raise PmrlhfUserError(
                f"rl.samples_per_prompt must be at most {MAX_SAMPLES_PER_PROMPT}, "
                f"got {self.samples_per_prompt!r}"
            )
        check_choice(self.penalty_gradient, "rl.penalty_gradient", PENALTY_GRADIENTS)
        check_precision(self.precision, "rl.precision")
        if self.clip is not None and not 0 < self.clip < 1:
            raise PmrlhfUserError(f"rl.clip must lie in (0, 1) or be null, got {self.clip!r}")
        return self
