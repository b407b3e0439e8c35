"""RL fine-tuning with KL, PM or conditional-PM penalties: one readable loop (cleanrl-style).

Per step: sample ``k`` completions per prompt from the policy, score them, subtract
``beta * sum_t c_t`` with the per-token penalty of THEORY.md §4
(:func:`pmrlhf.theory.penalty`), take leave-one-out (RLOO) advantages, and update the
policy (optionally with a PPO-style clipped ratio over several inner epochs).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..theory import penalty
from ..theory.regularizers import check_regularizer
from .models import flush_denormals, make_optimizer
from .sequences import completion_mask, encode_prompt, left_pad, sample_completions, token_logprobs


@dataclass
class RLConfig:
    """Every knob of an RL run; serialises to JSON/YAML."""

    regularizer: str = "pm"  # kl | pm | cpm
    beta: float = 1.0
    alpha: float | None = None  # cpm only
    steps: int = 60
    prompts_per_step: int = 2
    samples_per_prompt: int = 4  # k of RLOO
    max_new_tokens: int = 8
    lr: float = 2e-5
    inner_epochs: int = 1
    clip: float | None = None  # PPO-style ratio clip; None: plain RLOO policy gradient
    temperature: float = 1.0
    top_p: float | None = None  # truncation changes the sampling distribution: off by default
    top_k: int | None = None
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0  # 0: only at the end
    extra: dict = field(default_factory=dict)

    def validate(self) -> RLConfig:
        check_regularizer(self.regularizer, ref_given=True, alpha=self.alpha)
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        for name in ("steps", "prompts_per_step", "max_new_tokens", "inner_epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not isinstance(self.samples_per_prompt, int) or self.samples_per_prompt < 2:
            raise ValueError(
                "samples_per_prompt must be >= 2 (the leave-one-out baseline needs two)"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        return self


DROPOUT_FIELDS = (
    "dropout",
    "attention_dropout",
    "hidden_dropout",
    "activation_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)


def has_dropout(model) -> bool:
    """Whether train mode makes the forward pass random (dropout modules or config rates)."""
    inner = getattr(model, "module", model)
    config = getattr(inner, "config", None)
    if any(float(getattr(config, name, 0.0) or 0.0) > 0 for name in DROPOUT_FIELDS):
        return True
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in inner.modules())


def _rng_state():
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }


def save_checkpoint(folder: Path, model, optimizer, step: int, history: list, generator) -> Path:
    """Model (``save_pretrained``), optimizer, RNG states and history, moved in atomically."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    model.save_pretrained(tmp)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": _rng_state(),
            "generator": generator.bit_generator.state,
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "history.json").write_text(json.dumps(history))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


@flush_denormals
def train_rl(
    policy,
    ref,
    tokenizer,
    task,
    reward_fn,
    config: RLConfig,
    *,
    run_dir=None,
    resume: bool = False,
    progress: bool = True,
    accelerator=None,
) -> list[dict]:
    """Run the RL loop; return per-step metrics (also appended to ``run_dir/metrics.jsonl``).

    ``reward_fn(prompt_index, completion_text, finished) -> float`` scores one sample.
    ``ref`` is a frozen copy of the starting policy. With ``run_dir`` and ``resume=True``
    the run continues from ``run_dir/checkpoint``.
    """
    config.validate()
    rank = 0 if accelerator is None else accelerator.process_index
    torch.manual_seed(config.seed + rank)
    # Each process draws its own prompts; a single process keeps the plain seed.
    rng = np.random.default_rng(config.seed if rank == 0 else [config.seed, rank])
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    optimizer = make_optimizer(policy, config.lr)
    if accelerator is not None:
        policy, optimizer = accelerator.prepare(policy, optimizer)
    history, start = [], 0
    run_dir = None if run_dir is None else Path(run_dir)
    if resume:
        checkpoint = run_dir / "checkpoint"
        if not (checkpoint / "trainer_state.pt").exists():
            raise FileNotFoundError(f"no checkpoint to resume from in {run_dir}")
        state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
        from safetensors.torch import load_file

        policy.load_state_dict(load_file(checkpoint / "model.safetensors"), strict=False)
        optimizer.load_state_dict(state["optimizer"])
        random.setstate(state["rng"]["python"])
        torch.set_rng_state(state["rng"]["torch"])
        rng.bit_generator.state = state["generator"]
        start, history = state["step"], json.loads((checkpoint / "history.json").read_text())
    prompts = [encode_prompt(tokenizer, p.messages) for p in task.prompts]
    ref.eval()
    k = config.samples_per_prompt
    single_pass = config.inner_epochs == 1 and config.clip is None and not has_dropout(policy)
    bar = tqdm(
        range(start, config.steps),
        desc=f"rl[{config.regularizer}]",
        disable=not progress,
        initial=start,
        total=config.steps,
    )
    for step in bar:
        # 1. Sample k completions for each of a few prompts, from pi itself.
        chosen = rng.choice(
            len(prompts),
            size=config.prompts_per_step,
            replace=config.prompts_per_step > len(prompts),
        )
        p_ids, p_mask = left_pad([prompts[i] for i in chosen for _ in range(k)], pad)  # (B, Tp)
        policy.eval()
        unwrapped = policy if accelerator is None else accelerator.unwrap_model(policy)
        completion = sample_completions(
            unwrapped,
            p_ids,
            p_mask,
            max_new_tokens=config.max_new_tokens,
            eos_id=eos,
            pad_id=pad,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
        )  # (B, Tc)
        c_mask, finished = completion_mask(completion, eos)  # (B, Tc), (B,)
        # 2. Score: task reward minus beta times the summed per-token penalty.
        texts = tokenizer.batch_decode(
            completion * c_mask + pad * (1 - c_mask), skip_special_tokens=True
        )
        prompt_of = np.repeat(chosen, k)
        reward = torch.tensor(
            [
                reward_fn(int(i), t, bool(f))
                for i, t, f in zip(prompt_of, texts, finished, strict=True)
            ]
        )  # (B,)
        with torch.no_grad():
            ref_logp = token_logprobs(ref, p_ids, p_mask, completion, c_mask)  # (B, Tc)
        # With one plain epoch and no dropout, the forward pass that carries the gradient
        # also gives the penalty's log pi: no second forward (train mode keeps gradient
        # checkpointing on; without dropout it computes the same pi as eval mode).
        if single_pass:
            policy.train()
            logp = token_logprobs(policy, p_ids, p_mask, completion, c_mask)  # (B, Tc)
            old_logp = logp.detach()
        else:
            with torch.no_grad():
                old_logp = token_logprobs(policy, p_ids, p_mask, completion, c_mask)  # (B, Tc)
        c = penalty(old_logp, ref_logp, regularizer=config.regularizer, alpha=config.alpha) * c_mask
        total = reward - config.beta * c.sum(-1)  # (B,)
        # 3. Leave-one-out baseline within each prompt's k samples.
        grouped = total.view(-1, k)  # (P, k)
        advantage = (grouped - (grouped.sum(-1, keepdim=True) - grouped) / (k - 1)).view(-1)  # (B,)
        # 4. Policy update (plain REINFORCE when clip is None and one inner epoch).
        policy.train()
        for _ in range(config.inner_epochs):
            if not single_pass:
                logp = token_logprobs(policy, p_ids, p_mask, completion, c_mask)  # (B, Tc)
            if config.clip is None:
                loss = -(advantage * logp.sum(-1)).mean()
            else:
                ratio = torch.exp(logp - old_logp)  # (B, Tc)
                clipped = torch.clamp(ratio, 1 - config.clip, 1 + config.clip)
                per_token = torch.minimum(ratio * advantage[:, None], clipped * advantage[:, None])
                loss = -(per_token * c_mask).sum() / c_mask.sum()
            if accelerator is None:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            else:
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            # Free the gradients now, not before the next backward: they would otherwise sit
            # in memory (one model's size) through the next step's sampling and forward pass.
            optimizer.zero_grad(set_to_none=True)
        record = {
            "step": step + 1,
            "reward": float(reward.mean()),
            "penalty": float(c.sum(-1).mean()),
            "kl_to_ref": float(((old_logp - ref_logp) * c_mask).sum(-1).mean()),
            "entropy": float(-old_logp.sum(-1).mean()),
            "finished": float(finished.float().mean()),
            "loss": float(loss.detach()),
        }
        history.append(record)
        bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{record['kl_to_ref']:.3f}")
        is_main = accelerator is None or accelerator.is_main_process
        if run_dir is not None and is_main:
            with open(run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            every = config.checkpoint_every
            if (every and (step + 1) % every == 0) or step + 1 == config.steps:
                save_checkpoint(
                    run_dir / "checkpoint", unwrapped, optimizer, step + 1, history, rng
                )
    return history


def config_to_dict(config: RLConfig) -> dict:
    return asdict(config)
