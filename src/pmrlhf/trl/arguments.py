"""The TRL config of a ``pmrlhf lm trl`` run (:mod:`.command`): which trainer, GRPO's reward
scaling, where TRL reports, and the arguments of TRL's ``RLOOConfig`` / ``GRPOConfig``
that carry an :class:`~pmrlhf.lm_experiments.train.rl_config.RLConfig` (also what the
benchmark's TRL side runs with, ``benchmarks/_rl_worker.py``)."""

from __future__ import annotations

from .._validation import check_choice
from ..errors import PmrlhfTypeError, PmrlhfUserError

TRAINERS = ("rloo", "grpo")
SCALE_REWARDS = ("group", "batch", "none")


def check_report_to(report_to) -> str | list[str]:
    """``report_to`` as transformers takes it: a non-empty string or list of them.

    Raises
    ------
    TypeError
        Neither a string nor a list (or tuple) of strings.
    ValueError
        An empty string or list.
    """
    items = [report_to] if isinstance(report_to, str) else report_to
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise PmrlhfTypeError(f"report_to must be a string or a list of strings, got {report_to!r}")
    if not items or not all(i.strip() for i in items):
        raise PmrlhfUserError(f"report_to must name an integration or 'none', got {report_to!r}")
    return report_to if isinstance(report_to, str) else list(report_to)


def grpo_scale_rewards(trainer: str, regularizer: str, scale_rewards: str | None) -> str | None:
    """GRPO's ``scale_rewards`` for a run (see :func:`run_trl`); None for ``"rloo"``.

    Raises
    ------
    ValueError
        ``scale_rewards`` not one of :data:`SCALE_REWARDS`, or given with ``"rloo"``.
    """
    if scale_rewards is not None:
        check_choice(scale_rewards, "scale_rewards", SCALE_REWARDS)
        if trainer != "grpo":
            raise PmrlhfUserError(
                f"scale_rewards only applies to trainer='grpo', got trainer={trainer!r}"
            )
        return scale_rewards
    if trainer != "grpo":
        return None
    return "group" if regularizer == "kl" else "none"  # TRL's default with its own KL


def trl_arguments(
    rl,
    *,
    output_dir,
    max_new_tokens: int,
    prompts: int,
    seed: int,
    gradient_checkpointing: bool = False,
    save_every: int = 0,
    report_to: str | list[str] = "none",
) -> dict:
    """The keyword arguments of TRL's ``RLOOConfig`` / ``GRPOConfig`` (ours or TRL's own)
    that carry the :class:`~pmrlhf.lm_experiments.train.rl_config.RLConfig` ``rl``: every
    prompt (or ``rl.prompts_per_step``) x ``rl.samples_per_prompt`` completions per step,
    at most ``max_new_tokens`` new tokens, temperature with no top-p / top-k, the learning
    rate, ``beta``, inner epochs and clip, gradient clipping; no autocast, no worker
    processes, a log line per step. Not the regularizer: only pmrlhf's configs take it."""
    import torch

    k = rl.samples_per_prompt
    return dict(
        output_dir=str(output_dir),
        beta=rl.beta,
        per_device_train_batch_size=(rl.prompts_per_step or prompts) * k,
        gradient_accumulation_steps=1,
        num_generations=k,
        max_completion_length=max_new_tokens,
        max_steps=rl.steps,
        learning_rate=rl.lr,
        num_iterations=rl.inner_epochs,
        epsilon=rl.clip if rl.clip is not None else 0.2,
        temperature=rl.temperature,
        top_p=1.0,
        top_k=0,
        max_grad_norm=rl.max_grad_norm,
        gradient_checkpointing=gradient_checkpointing,
        bf16=False,  # the model is loaded in its dtype; no autocast on top
        use_cpu=not torch.cuda.is_available(),
        report_to=check_report_to(report_to),
        save_strategy="steps" if save_every else "no",
        save_steps=save_every or 500,
        save_total_limit=1,
        logging_steps=1,
        seed=seed,
        dataloader_num_workers=0,
    )


def trl_config(
    config,
    trainer: str,
    output_dir,
    max_new_tokens: int,
    prompts: int,
    scale_rewards: str | None = None,
    *,
    save_every: int = 0,
    report_to: str | list[str] = "none",
):
    """The :class:`~pmrlhf.trl.PMRLOOConfig` / :class:`~pmrlhf.trl.PMGRPOConfig` of a
    ``RunConfig`` (see :func:`run_trl`; ``scale_rewards``, ``save_every`` and
    ``report_to`` as there): :func:`trl_arguments` with the run's method."""
    from .config import PMGRPOConfig, PMRLOOConfig

    rl = config.rl
    kind = PMRLOOConfig if trainer == "rloo" else PMGRPOConfig
    scale = grpo_scale_rewards(trainer, rl.regularizer, scale_rewards)
    extra = {} if scale is None else {"scale_rewards": scale}
    arguments = trl_arguments(
        rl,
        output_dir=output_dir,
        max_new_tokens=max_new_tokens,
        prompts=prompts,
        seed=config.seed,
        gradient_checkpointing=config.gradient_checkpointing,
        save_every=save_every,
        report_to=report_to,
    )
    return kind(regularizer=rl.regularizer, cpm_alpha=rl.alpha, **arguments, **extra)
