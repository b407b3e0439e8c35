"""The memory guard of ``pmrlhf lm paper``'s training stages: before a stage builds its
trainer, its step is checked against the model's positions and, by the lower-bound estimate
of :mod:`pmrlhf._memory`, against the machine's memory; a step that cannot fit is refused
in one line, and the stage's folder is not written (each stage saves only when it ends)."""

from __future__ import annotations

from .._memory import check_fits, check_length, model_shape, rl_step_bytes, sft_step_bytes


def meta_shape(folder) -> dict:
    """:func:`~pmrlhf._memory.model_shape` of the causal LM saved in ``folder``, built on
    the meta device from its config (no weights are read)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(folder)))
    return model_shape(model)


def check_sft_step(shape: dict, sft) -> None:
    """An SFT step: ``sft.batch_size`` rows of at most ``sft.max_length`` tokens."""
    check_length(shape, sft.max_length, "sft.max_length")
    estimate = sft_step_bytes(
        shape, rows=sft.batch_size, prompts=0, prompt_tokens=0, new_tokens=sft.max_length
    )
    check_fits(estimate, f"an SFT step ({sft.batch_size} rows of {sft.max_length} tokens)")


def check_rl_step(shape: dict, rl, prompt_tokens: int, *, reference: bool) -> None:
    """An RL step: ``rl.prompts_per_step`` prompts of at most ``prompt_tokens`` tokens, each
    with ``rl.samples_per_prompt`` completions of at most ``rl.max_completion_length``."""
    new = rl.max_completion_length
    check_length(shape, prompt_tokens + new, "rl.max_completion_length after the longest prompt")
    rows = rl.prompts_per_step * rl.samples_per_prompt
    estimate = rl_step_bytes(
        shape, rows=rows, prompts=rl.prompts_per_step, prompt_tokens=prompt_tokens,
        new_tokens=new, reference=reference,
    )  # fmt: skip
    check_fits(
        estimate,
        f"an RL step ({rl.prompts_per_step} prompts x {rl.samples_per_prompt} samples, "
        f"{new} new tokens)",
    )
