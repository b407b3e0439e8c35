"""Optional supervised fine-tuning on candidate (or chosen) responses."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..._memory import check_fits, check_length, model_shape, sft_step_bytes
from ...errors import PmrlhfUserError
from ..models.loading import flush_denormals, make_optimizer
from ..models.precision import compute_context, resolve_precision
from ..models.sequences import (
    encode_prompt,
    encode_response,
    left_pad,
    model_device,
    right_pad,
    shared_prompt_logprobs,
)
from .sft_config import SFTConfig


@flush_denormals
def sft_on_pairs(
    model,
    tokenizer,
    pairs,
    config: SFTConfig,
    *,
    seed: int,
    weights=None,
    progress: bool = True,
) -> list[float]:
    """Maximize ``sum_i q_i log pi(y_i|x_i)`` over ``pairs`` of (messages, response).

    ``weights`` ``q`` (uniform by default) say how often each pair would be shown. With few
    distinct pairs (a synthetic task) every step takes the full batch, each prompt run once
    (:func:`~pmrlhf.lm_experiments.models.sequences.shared_prompt_logprobs`): the exact gradient,
    whose optimum puts ``pi(y_i|x) = q_i / sum_{j: x_j = x} q_j``. With more pairs than
    ``config.batch_size`` a batch is drawn with probabilities ``q`` by a generator seeded
    with ``seed``. :func:`candidate_pairs` gives a task's pairs and its ``sft_weights``.
    Returns the loss per step.
    """
    if not pairs:
        raise PmrlhfUserError("pairs must not be empty")
    config.validate()
    q = np.full(len(pairs), 1 / len(pairs)) if weights is None else np.asarray(weights, float)
    if q.shape != (len(pairs),) or not np.all(np.isfinite(q)) or np.any(q < 0) or q.sum() <= 0:
        raise PmrlhfUserError("weights must hold one non-negative finite value per pair")
    q = q / q.sum()
    prompts, index, responses = [], [], []
    for messages, response in pairs:
        key = tuple(encode_prompt(tokenizer, messages))
        if key not in prompts:
            prompts.append(key)
        index.append(prompts.index(key))
        responses.append(encode_response(tokenizer, response))
    index = np.asarray(index)
    _check_size(model, prompts, responses, min(len(pairs), config.batch_size))
    rng = np.random.default_rng(seed)
    optimizer = make_optimizer(model, config.lr)
    device = model_device(model)
    precision = resolve_precision(config.precision, device)  # the forward passes' arithmetic
    model.train()
    losses = []
    for _ in tqdm(range(config.steps), desc="sft", disable=not progress):
        if len(pairs) <= config.batch_size:
            rows, scale = np.arange(len(pairs)), torch.tensor(q)
        else:
            rows = rng.choice(len(pairs), size=config.batch_size, p=q)
            scale = torch.full((len(rows),), 1 / len(rows), dtype=torch.float64)
        used = sorted(set(index[rows].tolist()))  # the prompts this batch needs, run once each
        p_ids, p_mask = left_pad([list(prompts[i]) for i in used], tokenizer.pad_token_id)
        c_ids, c_mask = right_pad([responses[i] for i in rows], tokenizer.pad_token_id)
        where = torch.tensor([used.index(i) for i in index[rows]])  # (B,)
        with compute_context(precision, device):
            logp = shared_prompt_logprobs(model, p_ids, p_mask, c_ids, c_mask, where)  # (B, Tc)
        loss = -(scale.to(logp) * logp.sum(-1)).sum()  # expected -log pi(y|x) under q
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # no stale gradients between steps or after
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _check_size(model, prompts, responses, rows: int) -> None:
    """Refuse, before the first step, a batch longer than the model's positions or larger
    than the machine's memory by estimate (:mod:`pmrlhf._memory`)."""
    shape = model_shape(getattr(model, "module", model))
    prompt_tokens, new_tokens = max(map(len, prompts)), max(map(len, responses))
    what = f"an SFT step ({rows} responses of up to {new_tokens} tokens)"
    check_length(shape, prompt_tokens + new_tokens, what)
    sizes = {"prompt_tokens": prompt_tokens, "new_tokens": new_tokens}
    check_fits(sft_step_bytes(shape, rows=rows, prompts=min(rows, len(prompts)), **sizes), what)


def candidate_pairs(task) -> tuple[list[tuple], np.ndarray]:
    """Every (prompt messages, candidate) pair of a synthetic task and how often SFT should
    draw it: prompts equally, candidates by the prompt's ``sft_weights`` (default uniform)."""
    pairs, weights = [], []
    for p in task.prompts:
        share = p.sft_weights or [1 / len(p.candidates)] * len(p.candidates)
        pairs += [(p.messages, c) for c in p.candidates]
        weights += [w / len(task.prompts) for w in share]
    return pairs, np.asarray(weights)
