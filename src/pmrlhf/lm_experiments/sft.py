"""Optional supervised fine-tuning on candidate (or chosen) responses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .models import flush_denormals, make_optimizer
from .sequences import encode_prompt, encode_response, left_pad, right_pad, token_logprobs


@dataclass
class SFTConfig:
    steps: int = 40
    batch_size: int = 8
    lr: float = 5e-5
    seed: int = 0


@flush_denormals
def sft_on_pairs(
    model, tokenizer, pairs, config: SFTConfig, *, progress: bool = True
) -> list[float]:
    """Maximize ``log pi(y|x)`` over ``pairs`` of (messages, response), sampled uniformly.

    For a synthetic task, passing every (prompt, candidate) pair teaches the answer format
    with roughly uniform mass on the candidates: a reference with high coverage and no
    preference of its own. Returns the loss per step.
    """
    if not pairs:
        raise ValueError("pairs must not be empty")
    encoded = [(encode_prompt(tokenizer, m), encode_response(tokenizer, r)) for m, r in pairs]
    rng = np.random.default_rng(config.seed)
    optimizer = make_optimizer(model, config.lr)
    model.train()
    losses = []
    for _ in tqdm(range(config.steps), desc="sft", disable=not progress):
        batch = [encoded[i] for i in rng.integers(len(encoded), size=config.batch_size)]
        p_ids, p_mask = left_pad([b[0] for b in batch], tokenizer.pad_token_id)  # (B, Tp)
        c_ids, c_mask = right_pad([b[1] for b in batch], tokenizer.pad_token_id)  # (B, Tc)
        logp = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)  # (B, Tc)
        loss = -logp.sum() / c_mask.sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # no stale gradients between steps or after
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def candidate_pairs(task) -> list[tuple]:
    """Every (prompt messages, candidate) pair of a synthetic task."""
    return [(p.messages, c) for p in task.prompts for c in p.candidates]
