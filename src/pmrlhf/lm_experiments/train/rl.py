"""RL fine-tuning with KL, PM or conditional-PM penalties: one loop that reads top to bottom.

Per step (:func:`train_rl`): sample ``k`` completions of each prompt from the policy
(:func:`_rollout`), score them: the reward minus ``beta`` times the per-token penalty of
docs/theory.md §4 (:func:`_score`, :func:`pmrlhf.theory.penalty`), subtract the
leave-one-out (RLOO) baseline (:func:`_rloo_advantage`), and update the policy, optionally
with a PPO-style clipped ratio over several inner epochs (:func:`_update`). The plumbing
(models, optimizer, resume, the log and checkpoints) is :mod:`.rl_plumbing`.

Each prompt runs through the model once per step; its key/value cache is shared by its
``k`` samples, in sampling and in the gradient pass alike (except under gradient
checkpointing, which keeps no cache:
:func:`~pmrlhf.lm_experiments.models.sequences.shared_prompt_logits`). The sampling pass
keeps its graph and is the first gradient pass
(:func:`~pmrlhf.lm_experiments.models.sequences.sample_with_logits`), except under DDP or
gradient checkpointing, where the policy runs again on the sampled completions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ...errors import PmrlhfUserError
from ...theory import penalty
from ..models.loading import flush_denormals
from ..models.sequences import (
    completion_mask,
    left_pad,
    pick,
    prompt_prefix,
    sample_shared,
    sample_with_logits,
)
from ..models.sequences import shared_prompt_logits as logits_of
from .rl_config import RLConfig
from .rl_plumbing import RLState, check_finite, log_step, setup_run
from .rloo_estimators import expected_penalty, leave_one_out, penalized_returns


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
    scores completions (e.g. :class:`~pmrlhf.lm_experiments.data.oracle.OracleReward`).
    ``ref`` is a frozen copy of the starting policy (unused by plain PM), or, for a PEFT
    (LoRA) policy, ``policy`` itself: the reference is then the policy with its adapters
    off, as in TRL (no copy). ``seed`` drives prompt choice and sampling. ``on_eval(step,
    policy) -> dict`` is called every ``config.eval_every`` steps; its values join that
    step's record. With ``run_dir`` the run checkpoints there (:mod:`.checkpoint`); with
    ``resume=True`` it continues from ``run_dir/checkpoint``. Under ``accelerate launch``
    pass the ``accelerator``: every process then runs this function. ``label`` names the
    progress bar (e.g. ``lm compare``'s ``seed 1 · KL b=1 (4/12)``).
    """
    run = setup_run(
        policy, ref, tokenizer, task, reward_fn, config, seed, run_dir, resume, accelerator
    )
    bar = tqdm(
        range(run.start, config.steps),
        desc=label or f"rl[{config.regularizer}]",
        disable=not progress,
        initial=run.start,
        total=config.steps,
    )
    k = config.samples_per_prompt
    for step in bar:
        batch = _rollout(run, config)  # 1. sample k completions of each prompt from pi
        score = _score(run, config, batch, reward_fn)  # 2. reward - beta * penalty
        advantage = _rloo_advantage(score.returns, batch.mask, k)  # 3. leave-one-out baseline
        loss, expected = _update(run, config, batch, score, advantage, step + 1)  # 4. update
        run.schedule.step()
        record = _record(step + 1, run, batch, score, loss, expected)
        if on_eval and config.eval_every and (step + 1) % config.eval_every == 0:
            record |= on_eval(step + 1, run.unwrapped)
        bar.set_postfix(reward=f"{record['reward']:.3f}", penalty=f"{record['penalty']:.3f}")
        log_step(run, config, record)
    return run.history


@dataclass
class _Batch:
    """One step's rollout: P prompts, B = P k completions grouped by prompt."""

    chosen: np.ndarray  # (P,) prompt indices
    prompt_ids: torch.Tensor  # (P, Tp), left-padded
    prompt_mask: torch.Tensor  # (P, Tp)
    completion: torch.Tensor  # (B, Tc)
    mask: torch.Tensor  # (B, Tc): up to and including the first end token
    finished: torch.Tensor  # (B,): ended with the end token
    logits: torch.Tensor | None  # (B, Tc, V) of the sampling pass, with its graph, or None


@dataclass
class _Score:
    reward: torch.Tensor  # (B,)
    ref_logits: torch.Tensor | None  # (B, Tc, V); None for plain PM
    ref_logp: torch.Tensor | None  # (B, Tc)
    logp: torch.Tensor  # (B, Tc): log pi of the policy that sampled, with its graph
    old_logp: torch.Tensor  # (B, Tc): the same, detached
    penalty: torch.Tensor  # (B, Tc): the sampled tokens' penalty c_t
    expected: torch.Tensor | None  # (B, Tc): C(h_t), with its graph (penalty_gradient expected)
    returns: torch.Tensor  # (B, Tc), or (B, 1) where every token's return is the same


def _rollout(run: RLState, config: RLConfig) -> _Batch:
    """Draw the step's prompts and sample ``k`` completions of each from the policy."""
    n, per_step = len(run.prompts), config.prompts_per_step or len(run.prompts)
    chosen = (
        np.arange(n) if per_step == n else run.rng.choice(n, size=per_step, replace=per_step > n)
    )
    pad, eos = run.tokenizer.pad_token_id, run.tokenizer.eos_token_id
    p_ids, p_mask = left_pad([run.prompts[i] for i in chosen], pad)  # (P, Tp)
    sampling = dict(
        samples=config.samples_per_prompt, max_new_tokens=run.max_new, eos_id=eos,
        pad_id=pad, generator=run.sampler, temperature=config.temperature,
    )  # fmt: skip
    logits = None
    with run.compute():
        if run.reuse_sampling_pass:  # the sampling pass is the first gradient pass too
            completion, logits = sample_with_logits(run.policy, p_ids, p_mask, **sampling)
        else:
            completion = sample_shared(run.unwrapped, p_ids, p_mask, **sampling)
    c_mask, finished = completion_mask(completion, eos)  # (B, Tc), (B,)
    return _Batch(chosen, p_ids, p_mask, completion, c_mask, finished, logits)


def _score(run: RLState, config: RLConfig, batch: _Batch, reward_fn) -> _Score:
    """Reward minus ``beta`` times the penalty, with log pi of the policy that sampled (its
    first pass: no dropout, same weights). With ``penalty_gradient="expected"`` token t's
    return holds the expected penalties after it; with ``"sampled"`` every token's return is
    the reward minus the whole sampled penalty."""
    k = config.samples_per_prompt
    reward = reward_fn(np.repeat(batch.chosen, k), batch.completion, batch.mask)
    reward = reward.float().to(run.device)  # (B,)
    if not torch.isfinite(reward).all():
        raise PmrlhfUserError(
            "the reward is not finite in float32 (the task's utilities or "
            "off_candidate_margin are too large): bound them"
        )
    ref_logits = ref_logp = None
    if config.regularizer != "pm":  # plain PM's penalty needs no reference
        ref_logits, ref_logp = _reference_pass(run, batch)
    logp, expected = _policy_pass(run, config, batch, ref_logits, logits=batch.logits)
    old_logp = logp.detach()
    c = penalty(old_logp, ref_logp, regularizer=config.regularizer, alpha=config.alpha)
    if expected is not None:
        returns = penalized_returns(reward, expected.detach(), batch.mask, beta=config.beta)
    else:
        returns = (reward - config.beta * (c * batch.mask).sum(-1))[:, None]
    return _Score(reward, ref_logits, ref_logp, logp, old_logp, c, expected, returns)


def _rloo_advantage(returns, mask, k: int):
    """Each token's return minus the leave-one-out baseline within its prompt's ``k``
    samples: the first token's return of the others (a baseline from other samples keeps
    the estimate unbiased). (B, Tc), 0 where masked out."""
    first = returns[:, 0]  # (B,)
    return (returns - (first - leave_one_out(first, k))[:, None]) * mask


def _update(run: RLState, config: RLConfig, batch: _Batch, score: _Score, advantage, step):
    """``inner_epochs`` gradient steps on the batch: the first on the scoring pass, the
    others on a new pass; a loss or gradient that is not finite stops training before the
    update. Returns the last loss and expected penalty (or None)."""
    logp, expected = score.logp, score.expected
    for epoch in range(config.inner_epochs):
        if epoch:
            logp, expected = _policy_pass(run, config, batch, score.ref_logits)
        loss = _loss(config, logp, score.old_logp, advantage, expected, batch.mask)
        if run.accelerator is None:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(run.policy.parameters(), config.max_grad_norm)
        else:
            run.accelerator.backward(loss)
            norm = run.accelerator.clip_grad_norm_(run.policy.parameters(), config.max_grad_norm)
        check_finite(loss, norm, step, config)
        run.optimizer.step()
        # Free the gradients now: they would otherwise sit in memory (a model's size)
        # through the next step's sampling and forward passes.
        run.optimizer.zero_grad(set_to_none=True)
    return loss, expected


def _loss(config: RLConfig, logp, old_logp, advantage, expected, mask):
    """REINFORCE with the RLOO advantage, or PPO's clipped ratio; per sample (REINFORCE) or
    per token (PPO), as TRL normalises each; plus ``beta`` times the expected penalty,
    whose gradient is exact (``penalty_gradient="expected"``)."""
    scale = mask.shape[0] if config.clip is None else mask.sum()
    if config.clip is None:
        surrogate = advantage * logp  # (B, Tc)
    else:
        ratio = torch.exp(logp - old_logp)  # (B, Tc)
        clipped = torch.clamp(ratio, 1 - config.clip, 1 + config.clip)
        surrogate = torch.minimum(ratio * advantage, clipped * advantage)
    loss = -(surrogate * mask).sum() / scale
    if expected is not None:
        loss = loss + config.beta * expected.sum() / scale
    return loss


def _policy_pass(run: RLState, config: RLConfig, batch: _Batch, ref_logits, logits=None):
    """log pi of the sampled tokens (B, Tc) and, for ``penalty_gradient="expected"``, the
    penalty's expectation over the vocabulary at each sampled history (B, Tc), else None;
    both with their graph. ``logits``: the sampling pass's, when it serves."""
    if logits is None:
        with run.compute():
            logits = logits_of(
                run.policy, batch.prompt_ids, batch.prompt_mask, batch.completion, batch.mask
            )  # (B, Tc, V)
    logp = pick(logits, batch.completion, batch.mask)  # (B, Tc)
    if config.penalty_gradient != "expected":
        return logp, None
    return logp, batch.mask * expected_penalty(
        logits, ref_logits, regularizer=config.regularizer, alpha=config.alpha
    )


def _reference_pass(run: RLState, batch: _Batch):
    """The frozen reference's logits (B, Tc, V) and log probabilities (B, Tc) of the
    sampled completions. Its pass over the prompts is the same every step that draws the
    same prompts: run once, its cache copied for each step."""
    off = run.unwrapped.disable_adapter() if run.adapters_off else contextlib.nullcontext()
    frozen = run.unwrapped if run.adapters_off else run.ref
    with torch.no_grad(), off, run.compute():
        if run.ref_prefix[0] != tuple(batch.chosen):
            prefix = prompt_prefix(frozen, batch.prompt_ids, batch.prompt_mask)
            run.ref_prefix = (tuple(batch.chosen), prefix)
        ref_logits = logits_of(
            frozen, batch.prompt_ids, batch.prompt_mask, batch.completion, batch.mask,
            prefix=run.ref_prefix[1],
        )  # fmt: skip
        return ref_logits, pick(ref_logits, batch.completion, batch.mask)


def _record(step: int, run: RLState, batch: _Batch, score: _Score, loss, expected) -> dict:
    """The step's line of ``metrics.jsonl``."""
    mask = batch.mask
    record = {
        "step": step,
        "reward": float(score.reward.mean()),
        "penalty": float((score.penalty * mask).sum(-1).mean()),
        "entropy": float(-score.old_logp.sum(-1).mean()),
        "finished": float(batch.finished.float().mean()),
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        "loss": float(loss.detach()),
    }
    if expected is not None:
        record["expected_penalty"] = float(expected.detach().sum(-1).mean())
    if score.ref_logp is not None:
        record["kl_to_ref"] = float((score.old_logp - score.ref_logp).sum(-1).mean())
    return record
