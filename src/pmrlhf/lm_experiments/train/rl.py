"""RL fine-tuning with KL, PM or conditional-PM penalties: one readable loop (cleanrl-style).

Per step: sample ``k`` completions of each prompt from the policy, score them, subtract
``beta * sum_t c_t`` with the per-token penalty of docs/theory.md §4
(:func:`pmrlhf.theory.penalty`), take leave-one-out (RLOO) advantages, and update the
policy (optionally with a PPO-style clipped ratio over several inner epochs). Each prompt
runs through the model once per step; its key/value cache is shared by its ``k`` samples,
in sampling and in the gradient pass alike (except under gradient checkpointing, which
keeps no cache: :func:`~pmrlhf.lm_experiments.models.sequences.shared_prompt_logits`). The
sampling pass keeps its graph and is the first gradient pass
(:func:`~pmrlhf.lm_experiments.models.sequences.sample_with_logits`), except under DDP or
gradient checkpointing, where the policy runs again on the sampled completions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..._io import atomic_write_text
from ...errors import PmrlhfUserError
from ...theory import penalty
from ...theory.regularizers import check_regularizer
from ..models.loading import flush_denormals, make_optimizer
from ..models.precision import check_precision, compute_context, resolve_precision
from ..models.sequences import (
    checkpointing_on,
    completion_mask,
    encode_prompt,
    left_pad,
    pick,
    prompt_prefix,
    sample_shared,
    sample_with_logits,
)
from ..models.sequences import shared_prompt_logits as logits_of
from .checkpoint import load_checkpoint, save_checkpoint
from .rloo_estimators import expected_penalty, leave_one_out, lr_factor, penalized_returns

_clock = time.monotonic  # the time of checkpoint_minutes (a test can replace it)


PENALTY_GRADIENTS = ("expected", "sampled")


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

    def validate(self) -> RLConfig:
        check_regularizer(self.regularizer, ref_given=True, alpha=self.alpha)
        for name in ("beta", "lr", "max_grad_norm", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PmrlhfUserError(f"rl.{name} must be a number, got {value!r}")
            if not 0 < value < float("inf"):
                raise PmrlhfUserError(f"rl.{name} must be finite and > 0, got {value!r}")
        if not 0 <= self.lr_final <= 1:
            raise PmrlhfUserError(f"rl.lr_final must lie in [0, 1], got {self.lr_final!r}")
        for name in ("steps", "inner_epochs", "prompts_per_step", "max_new_tokens"):
            value = getattr(self, name)
            if value is None and name in ("prompts_per_step", "max_new_tokens"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PmrlhfUserError(f"rl.{name} must be a positive int, got {value!r}")
        for name in ("eval_every", "checkpoint_every", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PmrlhfUserError(f"rl.{name} must be an int >= 0, got {value!r}")
        minutes = self.checkpoint_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, int | float):
            raise PmrlhfUserError(f"rl.checkpoint_minutes must be a number, got {minutes!r}")
        if not 0 <= minutes < float("inf"):
            raise PmrlhfUserError(
                f"rl.checkpoint_minutes must be finite and >= 0 (0: off), got {minutes!r}"
            )
        k = self.samples_per_prompt
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise PmrlhfUserError(
                f"rl.samples_per_prompt must be an int >= 2 (the leave-one-out baseline "
                f"needs two), got {k!r}"
            )
        if self.penalty_gradient not in PENALTY_GRADIENTS:
            raise PmrlhfUserError(
                f"rl.penalty_gradient must be one of {PENALTY_GRADIENTS}, "
                f"got {self.penalty_gradient!r}"
            )
        check_precision(self.precision, "rl.precision")
        if self.clip is not None and not 0 < self.clip < 1:
            raise PmrlhfUserError(f"rl.clip must lie in (0, 1) or be null, got {self.clip!r}")
        return self


@flush_denormals
def train_rl(
    policy,
    ref,
    tokenizer,
    task,
    reward_fn,
    config: RLConfig,
    *,
    seed: int,
    run_dir=None,
    resume: bool = False,
    progress: bool = True,
    label: str | None = None,
    accelerator=None,
    on_eval: Callable[[int, object], dict] | None = None,
) -> list[dict]:
    """Run the RL loop; return per-step metrics (also written to ``run_dir/metrics.jsonl``).

    ``reward_fn(prompt_index (B,), completion (B, Tc), completion_mask (B, Tc)) -> (B,)``
    scores completions (e.g. :class:`~pmrlhf.lm_experiments.data.oracle.OracleReward`). ``ref``
    is a frozen copy of the starting policy (unused by plain PM), or, for a PEFT (LoRA)
    policy, ``policy`` itself: the reference is then the policy with its adapters off, as
    in TRL (no copy). ``seed`` drives prompt choice and sampling. ``on_eval(step, policy)
    -> dict`` is called every ``config.eval_every`` steps; its values join that step's
    record. With ``run_dir`` the run checkpoints there (:mod:`.checkpoint`); with
    ``resume=True`` it continues from ``run_dir/checkpoint``. Under ``accelerate launch``
    pass the ``accelerator``: every process then runs this function. ``label`` names the
    progress bar (e.g. ``lm compare``'s ``seed 1 · KL b=1 (4/12)``).
    """
    config.validate()
    if resume and run_dir is None:
        raise PmrlhfUserError("resume=True needs the run_dir that holds the checkpoint")
    adapters_off = ref is policy
    if adapters_off and not hasattr(policy, "disable_adapter"):
        raise PmrlhfUserError("ref may be the policy itself only for a PEFT (LoRA) model")
    rank = 0 if accelerator is None else accelerator.process_index
    # Each process draws its own prompts and samples; a single process keeps the plain seed.
    rng = np.random.default_rng(seed if rank == 0 else [seed, rank])
    device = next(policy.parameters()).device  # the sampler draws where the logits live
    sampler = torch.Generator(device=device).manual_seed(seed + 1_000_003 * rank)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    reward_len = getattr(reward_fn, "max_len", None)
    max_new = config.max_new_tokens or reward_len
    if max_new is None:
        raise PmrlhfUserError("rl.max_new_tokens is required with a reward that has no max_len")
    optimizer = make_optimizer(policy, config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, config))
    if accelerator is not None:
        policy, optimizer = accelerator.prepare(policy, optimizer)
    unwrapped = policy if accelerator is None else accelerator.unwrap_model(policy)
    # What a checkpoint saves and restores (.checkpoint).
    trainer = dict(
        model=policy, optimizer=optimizer, schedule=schedule, rng=rng, sampler=sampler,
        accelerator=accelerator,
    )  # fmt: skip
    history, start = [], 0
    last_checkpoint = _clock()
    run_dir = None if run_dir is None else Path(run_dir)
    if resume:
        start, history = load_checkpoint(run_dir / "checkpoint", **trainer)
    is_main = accelerator is None or accelerator.is_main_process
    if run_dir is not None and is_main:  # the log holds each step once, also after a resume
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    prompts = [encode_prompt(tokenizer, p.messages) for p in task.prompts]
    per_step = config.prompts_per_step or len(prompts)
    k = config.samples_per_prompt
    ref.eval()
    policy.train()  # dropout is off in every model load_model returns: train == eval numerics
    # Without DDP (whose wrapper must run the forward that backpropagates) and with the
    # key/value cache on (no gradient checkpointing in training mode), the sampling pass
    # keeps its graph and serves as the first gradient pass: one policy forward fewer.
    reuse_sampling_pass = accelerator is None and not checkpointing_on(unwrapped)
    ref_prefix = [None, None]  # the prompts drawn last and the reference's pass over them
    # The model's passes at the configured precision; the evaluation (on_eval) in fp32.
    compute = functools.partial(
        compute_context, resolve_precision(config.precision, device), device
    )
    bar = tqdm(
        range(start, config.steps),
        desc=label or f"rl[{config.regularizer}]",
        disable=not progress,
        initial=start,
        total=config.steps,
    )
    for step in bar:
        # 1. Sample k completions of each chosen prompt, from pi itself.
        chosen = (
            np.arange(len(prompts))
            if per_step == len(prompts)
            else rng.choice(len(prompts), size=per_step, replace=per_step > len(prompts))
        )
        p_ids, p_mask = left_pad([prompts[i] for i in chosen], pad)  # (P, Tp)
        sampling = dict(
            samples=k, max_new_tokens=max_new, eos_id=eos, pad_id=pad, generator=sampler,
            temperature=config.temperature,
        )  # fmt: skip
        with compute():
            if reuse_sampling_pass:  # the sampling pass is the first gradient pass too
                completion, sampled_logits = sample_with_logits(policy, p_ids, p_mask, **sampling)
            else:
                completion = sample_shared(unwrapped, p_ids, p_mask, **sampling)
        # completion: (B, Tc), B = P k, grouped by prompt
        c_mask, finished = completion_mask(completion, eos)  # (B, Tc), (B,)
        reward = reward_fn(np.repeat(chosen, k), completion, c_mask).float().to(device)  # (B,)
        ref_logits = ref_logp = None
        if config.regularizer != "pm":  # plain PM's penalty needs no reference
            off = unwrapped.disable_adapter() if adapters_off else contextlib.nullcontext()
            frozen = unwrapped if adapters_off else ref
            with torch.no_grad(), off, compute():
                # The frozen reference's pass over the prompts is the same every step that
                # draws the same prompts: run once, its cache copied for each step.
                if ref_prefix[0] != tuple(chosen):
                    ref_prefix[:] = [tuple(chosen), prompt_prefix(frozen, p_ids, p_mask)]
                ref_logits = logits_of(
                    frozen, p_ids, p_mask, completion, c_mask, prefix=ref_prefix[1]
                )  # (B, Tc, V)
                ref_logp = pick(ref_logits, completion, c_mask)  # (B, Tc)
        expected = config.penalty_gradient == "expected"
        for epoch in range(config.inner_epochs):
            if reuse_sampling_pass and epoch == 0:
                logits = sampled_logits  # (B, Tc, V), with the sampling pass's graph
            else:
                with compute():
                    logits = logits_of(policy, p_ids, p_mask, completion, c_mask)  # (B, Tc, V)
            logp = pick(logits, completion, c_mask)  # (B, Tc)
            if expected:  # (B, Tc), differentiable: its gradient is exact, not sampled
                c_exp = c_mask * expected_penalty(
                    logits, ref_logits, regularizer=config.regularizer, alpha=config.alpha
                )
            if epoch == 0:
                # 2. Score: reward minus beta times the penalty, with log pi of the policy
                # that sampled (this first pass: no dropout, same weights).
                old_logp = logp.detach()
                c = penalty(old_logp, ref_logp, regularizer=config.regularizer, alpha=config.alpha)
                if expected:  # token t's return: the expected penalties after it
                    returns = penalized_returns(reward, c_exp.detach(), c_mask, beta=config.beta)
                else:  # every token's return: reward minus the whole sampled penalty
                    returns = (reward - config.beta * (c * c_mask).sum(-1))[:, None]
                # 3. Leave-one-out baseline within each prompt's k samples (of the
                # first token's return: a baseline from other samples keeps it unbiased).
                first = returns[:, 0]  # (B,)
                advantage = (returns - (first - leave_one_out(first, k))[:, None]) * c_mask
            # 4. Policy update: REINFORCE with the RLOO advantage, or PPO's clipped ratio;
            # per sample (REINFORCE) or per token (PPO), as TRL normalises each.
            scale = c_mask.shape[0] if config.clip is None else c_mask.sum()
            if config.clip is None:
                surrogate = advantage * logp  # (B, Tc)
            else:
                ratio = torch.exp(logp - old_logp)  # (B, Tc)
                clipped = torch.clamp(ratio, 1 - config.clip, 1 + config.clip)
                surrogate = torch.minimum(ratio * advantage, clipped * advantage)
            loss = -(surrogate * c_mask).sum() / scale
            if expected:
                loss = loss + config.beta * c_exp.sum() / scale
            if accelerator is None:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            else:
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            # Free the gradients now: they would otherwise sit in memory (a model's size)
            # through the next step's sampling and forward passes.
            optimizer.zero_grad(set_to_none=True)
        schedule.step()
        record = {
            "step": step + 1,
            "reward": float(reward.mean()),
            "penalty": float((c * c_mask).sum(-1).mean()),
            "entropy": float(-old_logp.sum(-1).mean()),
            "finished": float(finished.float().mean()),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "loss": float(loss.detach()),
        }
        if expected:
            record["expected_penalty"] = float(c_exp.detach().sum(-1).mean())
        if ref_logp is not None:
            record["kl_to_ref"] = float((old_logp - ref_logp).sum(-1).mean())
        if on_eval and config.eval_every and (step + 1) % config.eval_every == 0:
            record |= on_eval(step + 1, unwrapped)
        history.append(record)
        bar.set_postfix(reward=f"{record['reward']:.3f}", penalty=f"{record['penalty']:.3f}")
        if run_dir is not None and is_main:
            with open(run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
        if run_dir is not None and _checkpoint_due(config, step + 1, last_checkpoint, accelerator):
            save_checkpoint(
                run_dir / "checkpoint", step + 1, history, tokenizer=tokenizer, **trainer
            )
            last_checkpoint = _clock()
    return history


def _checkpoint_due(config: RLConfig, done: int, last: float, accelerator) -> bool:
    """Every ``checkpoint_every`` steps, after ``checkpoint_minutes`` of work, and at the end.
    Under ``accelerate launch`` the main process's clock decides for all (saving is
    collective there)."""
    every, minutes = config.checkpoint_every, config.checkpoint_minutes
    due = (
        (every and done % every == 0)
        or (minutes and _clock() - last >= 60 * minutes)
        or done == config.steps
    )
    if accelerator is not None:
        from accelerate.utils import broadcast_object_list

        due = broadcast_object_list([due])[0]
    return bool(due)
