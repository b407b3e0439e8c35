"""What the RLOO and GRPO trainers share: finding the reference pass, skipping the
reference model of plain PM, logging a token mean, binding the evaluation callback.

What this says of TRL's internals (its methods, attributes and steps) is TRL 1.16's, the
version tested (:data:`pmrlhf.trl._compat.TESTED_TRL`); another may differ.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate.utils import is_peft_model


class NoReference(torch.nn.Module):
    """Stands in for the reference model of plain PM, whose penalty ``log pi`` needs none
    (docs/theory.md §4): the trainer intercepts every pass meant for it."""

    def forward(self, *args, **kwargs):
        raise RuntimeError("plain PM (regularizer='pm') has no reference model to run")


@contextlib.contextmanager
def no_reference_model(args, skip: bool):
    """While TRL's ``__init__`` runs: ``args.beta = 0`` when ``skip``, so that TRL loads no
    reference model (TRL 1.16 builds one iff ``beta != 0`` and the model is no PEFT model);
    ``args.beta`` is restored afterwards."""
    beta = args.beta
    if skip:
        args.beta = 0.0
    try:
        yield beta
    finally:
        args.beta = beta


def is_reference_pass(trainer, model) -> bool:
    """Whether ``trainer`` is running ``model`` as the reference: the separate reference
    model, or the PEFT model with its adapters disabled (or its frozen ``"ref"`` adapter
    active), as TRL 1.16's ``_generate_and_score_completions`` runs it."""
    if trainer.ref_model is not None:
        return model is trainer.ref_model
    unwrapped = trainer.accelerator.unwrap_model(model)
    if not is_peft_model(unwrapped):
        return False
    return not unwrapped.has_active_enabled_adapter or unwrapped.active_adapter == "ref"


def log_token_mean(trainer, name: str, values, mask) -> None:
    """Append the mean of ``values`` (B, T) over the tokens of ``mask`` (B, T), all
    processes together, to the trainer's metrics (logged, averaged, at the next log)."""
    mode = "train" if trainer.model.training else "eval"
    mask = mask.to(values.dtype)
    stats = torch.stack([(values * mask).sum(), mask.sum()])
    stats = trainer.accelerator.reduce(stats, reduction="sum")
    trainer._metrics[mode][name].append((stats[0] / stats[1].clamp(min=1.0)).item())


def bind_callbacks(trainer) -> None:
    """Give each :class:`~pmrlhf.trl.PreferenceMatchingCallback` of ``trainer`` the
    trainer to log through."""
    from .callback import PreferenceMatchingCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, PreferenceMatchingCallback) and callback.trainer is None:
            callback.bind(trainer)
