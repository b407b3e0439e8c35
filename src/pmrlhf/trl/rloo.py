"""``PMRLOOTrainer``: TRL's ``RLOOTrainer`` with the KL, PM or conditional-PM penalty.

TRL 1.16 scores a completion in ``_generate_and_score_completions`` as
``r - beta * sum_t (old_logps_t - ref_logps_t)`` with the reference's log-probabilities
from ``_get_per_token_logps_and_entropies``, then takes leave-one-out advantages. The
penalty of docs/theory.md §4 is ``c_t = log pi_t - log w_t`` (:func:`pmrlhf.theory.penalty`)
with the log-weight ``log w`` of :func:`pmrlhf.theory.regularizers.reference_log_weight`.
So this trainer overrides only the reference pass: it returns ``log w`` in place of
``log pi_ref``, and TRL's own subtraction becomes ``c_t``, token by token, for a separate
reference model and for the PEFT "adapters off" reference alike:

* ``"kl"``: nothing is overridden in effect (``log w = log pi_ref``): TRL, bit for bit;
* ``"pm"``: ``log w = 0``, no reference forward pass, no reference model loaded;
* ``"cpm"``: ``log w = 0`` where ``pi_ref(y_t|h_t) > cpm_alpha``, ``log pi_ref`` elsewhere.

The advantage is then ``train_rl``'s with ``penalty_gradient="sampled"``:
``A_i = R_i - mean_{j != i} R_j`` with ``R_i = r_i - beta * sum_t c_t`` (docs/theory.md §4,
"Gradients": the sampled penalty in the return is unbiased). ``log pi`` is TRL's: of the
logits divided by ``temperature``, so ``pi`` is the sampling policy only at
``temperature=1`` with no top-p / top-k truncation, as the theory assumes.

What this says of TRL's internals (its methods, attributes and steps) is TRL 1.16's, the
version tested (:data:`pmrlhf.trl._compat.TESTED_TRL`); another may differ.
"""

from __future__ import annotations

import torch
from trl import RLOOConfig, RLOOTrainer

from ..theory.regularizers import reference_log_weight
from ._compat import get_config_model_id
from ._shared import (
    NoReference,
    bind_callbacks,
    is_reference_pass,
    log_token_mean,
    no_reference_model,
)
from .config import PMRLOOConfig, check_pm_fields


class PMRLOOTrainer(RLOOTrainer):
    """TRL's ``RLOOTrainer`` with ``args.regularizer`` (module docstring).

    Same constructor as ``RLOOTrainer``; ``args`` is a :class:`PMRLOOConfig` (a plain
    ``RLOOConfig`` means ``"kl"``). Metrics: with ``"pm"`` or ``"cpm"`` TRL's ``kl`` (the
    mean per-token penalty, since the penalty takes its place) is logged as ``penalty``;
    ``"cpm"`` adds ``penalty/implausible_fraction``, the share of sampled tokens with
    ``pi_ref <= cpm_alpha`` (those penalized as KL).
    """

    def __init__(self, model, reward_funcs, args: RLOOConfig | None = None, *rest, **kwargs):
        if args is None:  # as TRL names its default config
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = PMRLOOConfig(f"{name.split('/')[-1]}-RLOO")
        self.regularizer, self.cpm_alpha = check_pm_fields(args)
        skip = self.regularizer == "pm"
        with no_reference_model(args, skip) as beta:
            super().__init__(model, reward_funcs, args, *rest, **kwargs)
        if skip:
            self.beta = beta
            self.ref_model = NoReference()
        bind_callbacks(self)

    def add_callback(self, callback):
        """``Trainer.add_callback``; a :class:`~pmrlhf.trl.PreferenceMatchingCallback` is
        bound to this trainer."""
        super().add_callback(callback)
        bind_callbacks(self)

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
    ):
        """TRL's, except on the reference pass of ``"pm"`` / ``"cpm"``: ``log w`` (B, T)."""
        if self.regularizer == "kl" or not is_reference_pass(self, model):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
            )
        if self.regularizer == "pm":  # log w = 0 (reference_log_weight): no forward pass
            shape = (input_ids.shape[0], logits_to_keep)
            return torch.zeros(shape, device=input_ids.device), None, None
        ref_logps, _, _ = super()._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
        )
        log_w = reference_log_weight(ref_logps, regularizer="cpm", alpha=self.cpm_alpha)
        mask = attention_mask[:, -logits_to_keep:]  # (B, T): the completion tokens
        # log w is 0 exactly on the plausible tokens (pi_ref > alpha) and log pi_ref < 0 off them.
        log_token_mean(self, "penalty/implausible_fraction", (log_w != 0).float(), mask)
        return log_w, None, None

    def _generate_and_score_completions(self, inputs):
        """TRL's; with ``"pm"`` / ``"cpm"`` its ``kl`` metric is renamed ``penalty``."""
        output = super()._generate_and_score_completions(inputs)
        if self.regularizer != "kl":
            metrics = self._metrics["train" if self.model.training else "eval"]
            values = metrics.get("kl")
            if values:
                metrics["penalty"].append(values.pop())
                if not values:
                    del metrics["kl"]
        return output
