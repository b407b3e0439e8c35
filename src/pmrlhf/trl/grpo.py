"""``PMGRPOTrainer``: TRL's ``GRPOTrainer`` with the PM or conditional-PM penalty in the reward.

GRPO (TRL 1.16) regularizes in the *loss*: ``beta * k3`` per token with
``k3 = pi_ref/pi - log(pi_ref/pi) - 1``, evaluated at the sampled token and differentiated
directly. Its gradient is ``(1 - pi_ref/pi) grad log pi``, whose expectation over the
sampled token is ``-sum_v pi_ref(v) grad log pi(v)``: the gradient of ``KL(pi_ref || pi)``.
Substituting the PM weight ``w = 1`` for ``pi_ref`` gives ``-sum_v grad log pi(v|h)``, a
push towards the uniform distribution over the whole vocabulary, not the gradient of
``E_pi[log pi]`` (minus the entropy), so the PM optimum ``softmax(r / beta)`` is not what
such a loss reaches (docs/theory.md §4, "In the loss or in the reward").

This trainer therefore puts the penalty where the theory has it, in the return: each
completion's reward becomes ``r - beta * sum_t c_t`` with the per-token penalty
``c_t = log pi(y_t|h_t) - log w(y_t|h_t)`` of :func:`pmrlhf.theory.penalty`, *before*
GRPO's group normalisation, and the k3 loss term is off. Technically the penalty is one
more reward function (named ``penalty``, weight ``-beta``), computed from the sampling
policy's log-probabilities of the sampled tokens (one forward pass without gradients) and,
for ``"cpm"``, the reference's (the separate reference model or the PEFT "adapters off"
model, as TRL obtains them). GRPO's scaling by the group's reward standard deviation
(``scale_rewards``) then divides the penalty with the reward: its weight becomes
``beta / std(group rewards)``, varying with the prompt and the step, and the updates no
longer follow ``E[r] - beta E[sum_t c_t]`` (:class:`PMGRPOConfig` warns);
``scale_rewards="none"`` keeps that objective exact. ``regularizer="kl"`` is GRPO as TRL
runs it.

What this says of TRL's internals (its methods, attributes and steps) is TRL 1.16's, the
version tested (:data:`pmrlhf.trl._compat.TESTED_TRL`); another may differ.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
from trl import GRPOConfig, GRPOTrainer

from ..errors import PmrlhfUserError
from ..theory import penalty
from ..theory.regularizers import reference_log_weight
from ._compat import disable_gradient_checkpointing, get_config_model_id, pad, use_adapter
from ._shared import bind_callbacks, log_token_mean, no_reference_model
from .config import PMGRPOConfig, check_pm_fields

UNSUPPORTED = ("tools", "rollout_func", "environment_factory")
"""GRPO options whose completions hold tokens the policy did not sample (tool or
environment output): the penalty would count them, so ``"pm"`` / ``"cpm"`` refuse them."""


class PenaltyReward:
    """The per-completion penalty ``sum_t c_t`` as a TRL reward function (weight ``-beta``)."""

    __name__ = "penalty"

    def __init__(self, trainer):
        self.trainer = trainer

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs):
        return self.trainer._sequence_penalty(completion_ids).tolist()


@contextlib.contextmanager
def _replaced(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class PMGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with ``args.regularizer`` (module docstring).

    Same constructor as ``GRPOTrainer``; ``args`` is a :class:`PMGRPOConfig` (a plain
    ``GRPOConfig`` means ``"kl"``). With ``"pm"`` / ``"cpm"``: ``reward_weights`` (if given)
    weigh the caller's reward functions and ``-beta`` the penalty; logged are
    ``rewards/penalty/mean`` (the summed penalty per completion), ``penalty`` (its mean per
    token) and, for ``"cpm"``, ``penalty/implausible_fraction``; TRL's ``reward`` is the
    weighted sum, penalty included.

    Raises
    ------
    ValueError
        ``tools``, ``rollout_func`` or ``environment_factory`` with ``"pm"`` / ``"cpm"``, a
        vision-language model with them, or ``reward_weights`` of the wrong length.
    """

    def __init__(self, model, reward_funcs=None, args: GRPOConfig | None = None, *rest, **kwargs):
        if args is None:  # as TRL names its default config
            name = model if isinstance(model, str) else get_config_model_id(model.config)
            args = PMGRPOConfig(f"{name.split('/')[-1]}-GRPO")
        self.regularizer, self.cpm_alpha = check_pm_fields(args)
        if self.regularizer == "kl":
            super().__init__(model, reward_funcs, args, *rest, **kwargs)
            bind_callbacks(self)
            return
        bound = inspect.signature(GRPOTrainer.__init__).bind(
            self, model, reward_funcs, args, *rest, **kwargs
        )
        arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
        for name in UNSUPPORTED:
            if arguments.get(name) is not None:
                raise PmrlhfUserError(
                    f"{name} is not supported with regularizer={self.regularizer!r}: the "
                    "completions would hold tokens the policy did not sample"
                )
        funcs = arguments.get("reward_funcs")
        funcs = [] if funcs is None else list(funcs) if isinstance(funcs, list) else [funcs]
        arguments["reward_funcs"] = [*funcs, PenaltyReward(self)]
        classes = arguments.get("reward_processing_classes")
        if classes is not None:
            classes = list(classes) if isinstance(classes, list) else [classes]
            arguments["reward_processing_classes"] = [*classes, None]
        weights = args.reward_weights
        if weights is not None and len(weights) != len(funcs):
            raise PmrlhfUserError(
                f"reward_weights has {len(weights)} entries but there are {len(funcs)} "
                "reward functions"
            )
        weights = [*(weights if weights is not None else [1.0] * len(funcs)), -args.beta]
        self._sampled_prompt_ids = None
        with (
            no_reference_model(args, self.regularizer == "pm") as beta,
            _replaced(args, "reward_weights", weights),
        ):
            super().__init__(**arguments)
        if self._is_vlm:
            raise PmrlhfUserError(
                f"regularizer={self.regularizer!r} is not supported for vision-language models"
            )
        self.penalty_beta = beta
        self.beta = 0.0  # GRPO's k3 loss term and its own reference pass: off
        bind_callbacks(self)

    def add_callback(self, callback):
        """``Trainer.add_callback``; a :class:`~pmrlhf.trl.PreferenceMatchingCallback` is
        bound to this trainer."""
        super().add_callback(callback)
        bind_callbacks(self)

    def _generate(self, prompts):
        """TRL's; keeps the prompt token ids for the penalty of these completions."""
        output = super()._generate(prompts)
        self._sampled_prompt_ids = output[0]
        return output

    def _sequence_penalty(self, completion_ids) -> torch.Tensor:
        """``sum_t c_t`` (B,) of the completions just sampled, ``c_t`` by
        :func:`pmrlhf.theory.penalty` from the sampling policy's and (``"cpm"``) the
        reference's log-probabilities; logs ``penalty`` (mean per token)."""
        prompt_ids = self._sampled_prompt_ids
        if prompt_ids is None or len(prompt_ids) != len(completion_ids):
            raise RuntimeError("the penalty reward was called outside a GRPO generation step")
        device, pad_id = self.accelerator.device, self._tokenizer.pad_token_id
        multiple = self.pad_to_multiple_of

        def padded(rows, value, side):
            tensors = [torch.as_tensor(r, dtype=torch.long) for r in rows]
            return pad(tensors, value, side, pad_to_multiple_of=multiple).to(device)

        ones = [[1] * len(r) for r in prompt_ids], [[1] * len(r) for r in completion_ids]
        p_ids, p_mask = padded(prompt_ids, pad_id, "left"), padded(ones[0], 0, "left")
        c_ids, c_mask = padded(completion_ids, pad_id, "right"), padded(ones[1], 0, "right")
        ids, mask = torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1)  # (B, P+T)
        t = c_ids.size(1)
        training = self.model.training
        batch = self.args.per_device_train_batch_size if training else None
        batch = batch or self.args.per_device_eval_batch_size
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
        ):
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, mask, t, batch_size=batch
            )
            ref_logps = (
                None if self.regularizer == "pm" else self._reference_logps(ids, mask, t, batch)
            )
        c = penalty(logps, ref_logps, regularizer=self.regularizer, alpha=self.cpm_alpha)  # (B, T)
        log_token_mean(self, "penalty", c, c_mask)
        if ref_logps is not None:  # tokens with pi_ref <= alpha (log w = log pi_ref != 0)
            log_w = reference_log_weight(ref_logps, regularizer="cpm", alpha=self.cpm_alpha)
            log_token_mean(self, "penalty/implausible_fraction", (log_w != 0).float(), c_mask)
        return (c * c_mask).sum(-1)  # (B,)

    def _reference_logps(self, ids, mask, logits_to_keep: int, batch_size: int):
        # The reference pass of TRL 1.16's GRPOTrainer._generate_and_score_completions,
        # copied (self.beta is 0 here, so TRL skips it): the reference model, or the PEFT
        # model with its adapters disabled (its frozen "ref" adapter when retraining one).
        if self.ref_model is not None:
            return self._get_per_token_logps_and_entropies(
                self.ref_model, ids, mask, logits_to_keep, batch_size=batch_size
            )[0]
        model = self.accelerator.unwrap_model(self.model)
        with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
            return self._get_per_token_logps_and_entropies(
                self.model, ids, mask, logits_to_keep, batch_size=batch_size
            )[0]
