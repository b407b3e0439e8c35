"""Token-level plumbing shared by SFT, RL and evaluation (shapes in comments, nanoGPT-style).

Prompts are left-padded so that every completion starts at the same column; completions are
right-padded and their mask covers the tokens up to and including the first end token.
"""

from __future__ import annotations

import inspect

import torch


def encode_prompt(tokenizer, messages) -> list[int]:
    """Chat-template a conversation and return its token ids (generation prompt added)."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False).input_ids


def encode_response(tokenizer, text: str) -> list[int]:
    """A response's tokens followed by the end token (the end belongs to the response)."""
    return tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, Tp)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, Tp)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return ids, mask


def right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, Tc)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, Tc)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def completion_mask(completion: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of tokens up to and including the first ``eos_id``; and whether one was emitted."""
    is_eos = completion == eos_id  # (B, Tc)
    # Positions strictly after the first end token are padding.
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0  # (B, Tc)
    return (~after).long(), is_eos.any(-1)


def _accepts_logits_to_keep(model) -> bool:
    inner = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask_):
    """``log pi(y_t | x, y_<t)`` of every completion token, 0 where masked out.

    prompt_ids, prompt_mask: (B, Tp) left-padded; completion_ids, completion_mask_: (B, Tc).
    Returns (B, Tc). Only the ``Tc`` positions that predict completion tokens go through the
    output layer (``logits_to_keep``), and ``log pi = logit - logsumexp(logits)`` avoids a
    second (B, Tc, V) tensor: the vocabulary-sized activations are the largest in a step.
    """
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, Tp + Tc)
    attention = torch.cat([prompt_mask, completion_mask_], dim=1)  # (B, Tp + Tc)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, Tp + Tc): left padding shifts
    tc = completion_ids.shape[1]
    kwargs = {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions}
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = tc + 1
    logits = model(**kwargs).logits  # (B, Tc + 1, V), or (B, Tp + Tc, V) without the option
    logits = logits[:, -tc - 1 : -1].float()  # (B, Tc, V): the logits that predict completions
    picked = torch.gather(logits, 2, completion_ids[..., None]).squeeze(-1)  # (B, Tc)
    logp = picked - torch.logsumexp(logits, dim=-1)  # (B, Tc)
    return logp * completion_mask_  # (B, Tc)


@torch.no_grad()
def sample_completions(
    model,
    prompt_ids,
    prompt_mask,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float = 1.0,
    top_p: float | None = None,
    top_k: int | None = None,
):
    """Sample one completion per row from the policy itself.

    Temperature 1 with no top-p / top-k truncation by default: the theory (THEORY.md §4)
    assumes samples from pi itself; truncation is an explicit, recorded option.
    Returns completion ids (B, Tc) right-padded with ``pad_id`` after the first end token.
    """
    out = model.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        do_sample=True,
        temperature=temperature,
        top_p=1.0 if top_p is None else top_p,
        top_k=0 if top_k is None else top_k,
        max_new_tokens=max_new_tokens,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    completion = out[:, prompt_ids.shape[1] :]  # (B, Tc)
    mask, _ = completion_mask(completion, eos_id)
    return torch.where(mask.bool(), completion, torch.full_like(completion, pad_id))


@torch.no_grad()
def candidate_logprobs(model, tokenizer, prompts, *, batch_size: int = 32) -> list[torch.Tensor]:
    """Exact ``log pi(c | x)`` of every candidate by teacher forcing (THEORY.md §5).

    ``prompts`` are :class:`~pmrlhf.lm_experiments.tasks.TaskPrompt`; the end token is part
    of each candidate. Returns one tensor (C,) per prompt.
    """
    rows = [
        (i, encode_prompt(tokenizer, p.messages), encode_response(tokenizer, c))
        for i, p in enumerate(prompts)
        for c in p.candidates
    ]
    scores = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        p_ids, p_mask = left_pad([r[1] for r in chunk], tokenizer.pad_token_id)
        c_ids, c_mask = right_pad([r[2] for r in chunk], tokenizer.pad_token_id)
        scores.append(token_logprobs(model, p_ids, p_mask, c_ids, c_mask).sum(-1))  # (b,)
    flat = torch.cat(scores)
    sizes = [len(p.candidates) for p in prompts]
    return list(torch.split(flat, sizes))
