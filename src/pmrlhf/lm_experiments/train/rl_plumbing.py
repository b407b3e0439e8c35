"""The plumbing of an RL run, apart from its algorithm (:mod:`.rl`): the state carried
from step to step (:class:`RLState`), its setup (checks, optimizer and learning-rate
schedule, random streams, resume) and what follows each step (the log, checkpoints)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..._io import atomic_write_text
from ..._memory import check_fits, model_shape, rl_step_bytes
from ...errors import PmrlhfUserError
from ..models.loading import make_optimizer
from ..models.precision import compute_context, resolve_precision
from ..models.sequences import checkpointing_on, encode_prompt
from .checkpoint import load_checkpoint, save_checkpoint
from .rl_config import RLConfig
from .rloo_estimators import lr_factor

_clock = time.monotonic  # the time of checkpoint_minutes (a test can replace it)


@dataclass
class RLState:
    """What the loop carries from step to step, built once by :func:`setup_run`."""

    policy: object  # what trains: the accelerator's wrapper under accelerate launch
    unwrapped: object  # the model itself (sampling, evaluation, the adapters switch)
    ref: object
    adapters_off: bool  # the reference is the policy with its LoRA adapters off
    tokenizer: object
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    rng: np.random.Generator  # prompt choice
    sampler: torch.Generator  # token sampling
    accelerator: object
    device: torch.device
    compute: Callable  # the model's passes at the configured precision (evaluation in fp32)
    prompts: list[list[int]]
    max_new: int
    reuse_sampling_pass: bool
    run_dir: Path | None
    is_main: bool
    history: list[dict]
    start: int
    last_checkpoint: float
    # The prompts drawn last and the frozen reference's pass over them (reused while equal).
    ref_prefix: tuple = (None, None)

    def trainer(self) -> dict:
        """What a checkpoint saves and restores (:mod:`.checkpoint`)."""
        return dict(
            model=self.policy, optimizer=self.optimizer, schedule=self.schedule, rng=self.rng,
            sampler=self.sampler, accelerator=self.accelerator,
        )  # fmt: skip


def setup_run(policy, ref, tokenizer, task, reward_fn, config, seed, run_dir, resume, accelerator):
    """Check the arguments, build the optimizer and the random streams, resume."""
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
    prompts, max_new = preflight(
        policy, tokenizer, task, reward_fn, config, separate_ref=not adapters_off
    )
    optimizer = make_optimizer(policy, config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, config))
    if accelerator is not None:
        policy, optimizer = accelerator.prepare(policy, optimizer)
    unwrapped = policy if accelerator is None else accelerator.unwrap_model(policy)
    run = RLState(
        policy=policy, unwrapped=unwrapped, ref=ref, adapters_off=adapters_off,
        tokenizer=tokenizer, optimizer=optimizer, schedule=schedule, rng=rng, sampler=sampler,
        accelerator=accelerator, device=device,
        compute=functools.partial(
            compute_context, resolve_precision(config.precision, device), device
        ),
        prompts=prompts,
        max_new=max_new,
        reuse_sampling_pass=False,  # set below, once the policy is in training mode
        run_dir=None if run_dir is None else Path(run_dir),
        is_main=accelerator is None or accelerator.is_main_process,
        history=[], start=0, last_checkpoint=_clock(),
    )  # fmt: skip
    if resume:
        run.start, run.history = load_checkpoint(run.run_dir / "checkpoint", **run.trainer())
    if run.run_dir is not None and run.is_main:  # the log holds each step once, also resumed
        log = "".join(json.dumps(r) + "\n" for r in run.history)
        atomic_write_text(run.run_dir / "metrics.jsonl", log)
    ref.eval()
    policy.train()  # dropout is off in every model load_model returns: train == eval numerics
    # Without DDP (whose wrapper must run the forward that backpropagates) and with the
    # key/value cache on (no gradient checkpointing in training mode), the sampling pass
    # keeps its graph and serves as the first gradient pass: one policy forward fewer.
    run.reuse_sampling_pass = accelerator is None and not checkpointing_on(unwrapped)
    return run


def preflight(policy, tokenizer, task, reward_fn, config: RLConfig, *, separate_ref: bool):
    """The encoded prompts and the new-token cap of an RL run, its step checked against the
    model's positions and the machine's memory (:func:`check_step_size`). ``lm run`` calls
    it before writing anything; :func:`setup_run` again, for every caller of ``train_rl``."""
    max_new = config.max_new_tokens or getattr(reward_fn, "max_len", None)
    if max_new is None:
        raise PmrlhfUserError("rl.max_new_tokens is required with a reward that has no max_len")
    prompts = [encode_prompt(tokenizer, p.messages) for p in task.prompts]
    check_step_size(policy, prompts, config, max_new, separate_ref=separate_ref)
    return prompts, max_new


def check_step_size(policy, prompts, config: RLConfig, max_new: int, *, separate_ref) -> None:
    """Refuse, before any work, a step longer than the model's positions or larger than
    the machine's memory by estimate (:mod:`pmrlhf._memory`)."""
    inner = getattr(policy, "module", policy)
    longest = max(len(p) for p in prompts)
    positions = getattr(getattr(inner, "config", None), "max_position_embeddings", None)
    if positions and longest + max_new > positions:
        raise PmrlhfUserError(
            f"rl.max_new_tokens: {max_new} new tokens after a prompt of {longest} exceed the "
            f"model's {positions} positions"
        )
    per_step, k = config.prompts_per_step or len(prompts), config.samples_per_prompt
    estimate = rl_step_bytes(
        model_shape(inner), rows=per_step * k, prompts=per_step, prompt_tokens=longest,
        new_tokens=max_new, reference=separate_ref and config.regularizer != "pm",
    )  # fmt: skip
    check_fits(estimate, f"an RL step ({per_step} prompts x {k} samples, {max_new} new tokens)")


def check_finite(loss, norm, step: int, config: RLConfig) -> None:
    """Stop, before the update, a step whose loss or gradient is not finite: the weights
    (and every checkpoint, all written before this step) stay as they were."""
    if not (torch.isfinite(loss) and torch.isfinite(torch.as_tensor(norm))):
        raise PmrlhfUserError(
            f"training diverged at step {step}: the loss or its gradient is not finite "
            f"(rl.beta {config.beta:g}, rl.lr {config.lr:g}); lower them"
        )


def log_step(run: RLState, config: RLConfig, record: dict) -> None:
    """Keep the record, append it to ``metrics.jsonl``, checkpoint when due."""
    run.history.append(record)
    if run.run_dir is None:
        return
    if run.is_main:
        with open(run.run_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
    done = record["step"]
    if checkpoint_due(config, done, run.last_checkpoint, run.accelerator):
        save_checkpoint(
            run.run_dir / "checkpoint", done, run.history, tokenizer=run.tokenizer,
            **run.trainer(),
        )  # fmt: skip
        run.last_checkpoint = _clock()


def checkpoint_due(config: RLConfig, done: int, last: float, accelerator) -> bool:
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
