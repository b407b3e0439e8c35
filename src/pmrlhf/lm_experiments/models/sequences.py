"""Token-level plumbing shared by SFT, RL and evaluation (tensor shapes in comments).

Prompts are left-padded so that every completion starts at the same column; completions are
right-padded and their mask covers the tokens up to and including the first end token.
"""

from __future__ import annotations

import copy
import functools
import inspect

import torch

from ..._memory import check_fits, check_length, evaluation_bytes, model_shape


def with_system_message(messages) -> list[dict]:
    """``messages`` as a list, with an empty system message in front if it has none: some
    templates (SmolLM2's) otherwise insert a default system prompt of their own, tokens the
    task never asked for."""
    messages = list(messages)
    if messages and messages[0].get("role") != "system":
        messages = [{"role": "system", "content": ""}, *messages]
    return messages


def encode_prompt(tokenizer, messages) -> list[int]:
    """Chat-template a conversation and return its token ids (generation prompt added).

    A conversation without a system message gets an empty one (:func:`with_system_message`).
    """
    messages = with_system_message(messages)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
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


def full_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask_):
    """The float logits that predict each completion token, from one forward pass over each
    whole row (prompt and completion), no key/value cache.

    prompt_ids, prompt_mask: (B, Tp) left-padded, one prompt per completion;
    completion_ids, completion_mask_: (B, Tc). Returns (B, Tc, V). Only the ``Tc``
    positions that predict completion tokens go through the output layer
    (``logits_to_keep``): the vocabulary-sized activations are the largest in a step.
    """
    device = model_device(model)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1).to(device)  # (B, Tp + Tc)
    attention = torch.cat([prompt_mask, completion_mask_], dim=1).to(device)  # (B, Tp + Tc)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)  # (B, Tp + Tc): left padding shifts
    tc = completion_ids.shape[1]
    kwargs = {"input_ids": input_ids, "attention_mask": attention, "position_ids": positions}
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = tc + 1
    logits = model(**kwargs).logits  # (B, Tc + 1, V), or (B, Tp + Tc, V) without the option
    return logits[:, -tc - 1 : -1].float()  # (B, Tc, V): the logits that predict completions


def token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask_):
    """``log pi(y_t | x, y_<t)`` of every completion token, 0 where masked out, one forward
    pass per row (:func:`full_logits`). Returns (B, Tc)."""
    logits = full_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask_)
    return pick(logits, completion_ids, completion_mask_)


@torch.no_grad()
def candidate_logprobs(model, tokenizer, prompts) -> list[torch.Tensor]:
    """Exact ``log pi(c | x)`` of every candidate by teacher forcing (docs/theory.md §5).

    ``prompts`` are :class:`~pmrlhf.lm_experiments.data.tasks.TaskPrompt`; the end token is part
    of each candidate. One forward pass over all prompts, their caches shared by their
    candidates. Returns one tensor (C,) per prompt.
    """
    p_ids, p_mask = left_pad(
        [encode_prompt(tokenizer, p.messages) for p in prompts], tokenizer.pad_token_id
    )  # (P, Tp)
    rows = [encode_response(tokenizer, c) for p in prompts for c in p.candidates]
    c_ids, c_mask = right_pad(rows, tokenizer.pad_token_id)  # (B, Tc)
    _check_evaluation_size(model, p_ids.shape, c_ids.shape)
    index = torch.tensor([i for i, p in enumerate(prompts) for _ in p.candidates])  # (B,)
    flat = shared_prompt_logprobs(model, p_ids, p_mask, c_ids, c_mask, index).sum(-1).cpu()
    return list(torch.split(flat, [len(p.candidates) for p in prompts]))


def _check_evaluation_size(model, prompt_shape, candidate_shape) -> None:
    """Refuse a teacher-forced pass longer than the model's positions or larger than the
    machine's memory by estimate (:mod:`pmrlhf._memory`)."""
    (prompts, prompt_tokens), (rows, new_tokens) = prompt_shape, candidate_shape
    shape = model_shape(getattr(model, "module", model))
    what = f"the exact evaluation ({rows} candidates of up to {new_tokens} tokens)"
    check_length(shape, prompt_tokens + new_tokens, what)
    sizes = {"prompt_tokens": prompt_tokens, "new_tokens": new_tokens}
    check_fits(evaluation_bytes(shape, rows=rows, prompts=prompts, **sizes), what)


@functools.cache
def _cache_argument(forward) -> str:
    """transformers >= 5.2 names the key/value cache ``cache``; earlier ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _forward(model, **kwargs):
    """``model(**kwargs)`` with the cache under the installed transformers' name; returns
    ``(logits, cache)``."""
    inner = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    if hasattr(inner, "get_base_model"):  # PEFT passes the keywords on to the base model
        inner = inner.get_base_model()
    name = _cache_argument(type(inner).forward)
    if "cache" in kwargs:
        kwargs[name] = kwargs.pop("cache")
    out = model(**kwargs)
    return out.logits, out["cache"] if "cache" in out else out.get("past_key_values")


def checkpointing_on(model) -> bool:
    """Whether ``model``'s layers drop the key/value cache now: gradient checkpointing in
    training mode with gradients on (transformers then sets ``use_cache=False``)."""
    inner = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    return (
        inner.training
        and torch.is_grad_enabled()
        and any(getattr(m, "gradient_checkpointing", False) is True for m in inner.modules())
    )


def model_device(model) -> torch.device:
    """The device of ``model``'s parameters (inputs built on the CPU are moved there)."""
    return next(model.parameters()).device


def _prefill(model, prompt_ids, prompt_mask):
    """One forward pass over the prompts: the logits of the first completion token and the
    key/value cache. prompt_ids, prompt_mask: (P, Tp) left-padded. Returns (P, V), cache."""
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)  # (P, Tp): left padding shifts
    logits, cache = _forward(
        model,
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    return logits[:, -1].float(), cache  # (P, V)


def _continue(model, cache, prompt_mask, tokens, offset):
    """Feed ``tokens`` (B, T) after the prompts (``cache`` already indexed to B rows) and
    ``offset`` earlier completion tokens. prompt_mask: (B, Tp). Returns logits (B, T, V)."""
    b, t = tokens.shape
    lengths = prompt_mask.sum(-1, keepdim=True)  # (B, 1)
    positions = lengths + offset + torch.arange(t, device=tokens.device)[None]  # (B, T)
    ones = torch.ones(b, offset + t, dtype=prompt_mask.dtype, device=tokens.device)
    attention = torch.cat([prompt_mask, ones], dim=1)  # (B, Tp + offset + T)
    logits, _ = _forward(
        model,
        input_ids=tokens,
        attention_mask=attention,
        position_ids=positions,
        cache=cache,
        use_cache=True,
    )
    return logits.float()  # (B, T, V)


def shared_prompt_logits(
    model,
    prompt_ids,
    prompt_mask,
    completion_ids,
    completion_mask_,
    prompt_index=None,
    *,
    prefix=None,
):
    """The float logits that predict each completion token, each prompt run once.

    prompt_ids, prompt_mask: (P, Tp) left-padded; completion_ids, completion_mask_: (B, Tc);
    ``prompt_index`` (B,): the prompt each completion answers (default: ``B / P`` completions
    per prompt, grouped). The prompts' forward pass and key/value cache are shared by their
    completions, gradients included (the cache is indexed, not recomputed). Returns
    (B, Tc, V); rows past a completion's end predict padding and are for the caller to mask.

    A model that recomputes activations in its backward pass (gradient checkpointing)
    keeps no cache while gradients are on: its rows then run whole (:func:`full_logits`),
    the same numbers at the cost of repeating each prompt.

    ``prefix``: :func:`prompt_prefix` of these prompts, computed earlier by this same
    (frozen) model; the prompts then do not run again (the cache is copied, not changed).
    """
    device = model_device(model)
    if prompt_index is None:
        k = completion_ids.shape[0] // prompt_ids.shape[0]
        prompt_index = torch.arange(prompt_ids.shape[0]).repeat_interleave(k)
    prompt_index = torch.as_tensor(prompt_index, dtype=torch.long, device=device)  # (B,)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    completion_ids = completion_ids.to(device)
    if checkpointing_on(model):
        return full_logits(
            model, prompt_ids[prompt_index], prompt_mask[prompt_index], completion_ids,
            completion_mask_,
        )  # fmt: skip
    if prefix is None:
        first, cache = _prefill(model, prompt_ids, prompt_mask)  # (P, V)
    else:
        first, cache = prefix[0], copy.deepcopy(prefix[1])  # indexing below replaces tensors
    cache.batch_select_indices(prompt_index)
    logits = first[prompt_index][:, None]  # (B, 1, V)
    if completion_ids.shape[1] > 1:
        rest = _continue(
            model, cache, prompt_mask[prompt_index], completion_ids[:, :-1], 0
        )  # (B, Tc - 1, V)
        logits = torch.cat([logits, rest], dim=1)  # (B, Tc, V)
    return logits


@torch.no_grad()
def prompt_prefix(model, prompt_ids, prompt_mask):
    """A frozen model's pass over left-padded prompts (P, Tp): the logits of the first
    completion token (P, V) and the key/value cache, for :func:`shared_prompt_logits`'s
    ``prefix`` (the RL loop's reference runs its prompts once per run, not once per step)."""
    device = model_device(model)
    return _prefill(model, prompt_ids.to(device), prompt_mask.to(device))


def pick(logits, completion_ids, completion_mask_):
    """``log pi`` of the completion tokens from their logits (B, Tc, V): (B, Tc), 0 where
    masked out. ``logit - logsumexp`` avoids a second (B, Tc, V) tensor."""
    ids = completion_ids.to(logits.device)
    picked = torch.gather(logits, 2, ids[..., None]).squeeze(-1)  # (B, Tc)
    return (picked - torch.logsumexp(logits, dim=-1)) * completion_mask_.to(logits.device)


def shared_prompt_logprobs(
    model, prompt_ids, prompt_mask, completion_ids, completion_mask_, prompt_index=None
):
    """``log pi(y_t | x, y_<t)`` of completions that share prompts, each prompt run once
    (see :func:`shared_prompt_logits`). Returns (B, Tc), 0 where masked out. Equal to
    :func:`token_logprobs` on the repeated prompts."""
    logits = shared_prompt_logits(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask_, prompt_index
    )
    return pick(logits, completion_ids, completion_mask_)


def draw(logits, generator: torch.Generator):
    """One token per row from ``softmax(logits)`` (B, V) -> (B,), by inverting the
    cumulative distribution at one uniform number per row (in float64: exact up to
    rounding; on the CPU about 40 times faster than ``torch.multinomial`` over a 49k
    vocabulary, which it replaces). Tokens of probability 0 are never drawn."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)  # (B, V)
    u = torch.rand(
        (cdf.shape[0], 1), generator=generator, dtype=cdf.dtype, device=cdf.device
    )  # (B, 1)
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)  # (B, 1)
    return token.clamp_(max=cdf.shape[1] - 1).squeeze(-1)


@torch.no_grad()
def sample_shared(
    model,
    prompt_ids,
    prompt_mask,
    *,
    samples: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    generator: torch.Generator,
    temperature: float = 1.0,
):
    """``samples`` completions of each prompt from the policy itself (no top-p / top-k:
    the theory assumes samples from pi, docs/theory.md §4). The prompt runs once; its
    cache is shared. Sampling draws from ``generator`` only: the same seed, the same text.

    Returns completion ids (P * samples, Tc) on the model's device, grouped by prompt,
    right-padded with ``pad_id`` after the first end token; ``Tc <= max_new_tokens``.
    ``generator`` must live on the model's device.
    """
    completion, _ = _sample(
        model, prompt_ids, prompt_mask, samples=samples, max_new_tokens=max_new_tokens,
        eos_id=eos_id, pad_id=pad_id, generator=generator, temperature=temperature,
    )  # fmt: skip
    return completion


def sample_conversations(
    model, tokenizer, conversations, *, samples: int, max_new_tokens: int, generator
):
    """Encode and left-pad each chat conversation (a list of messages), then
    :func:`sample_shared` ``samples`` completions of each from the policy. Returns
    ``(prompt_ids, prompt_mask, completion, completion_mask, ended)``: (P, Tp), (P, Tp),
    (P * samples, Tc) grouped by prompt, (P * samples, Tc) up to and including the first end
    token (:func:`completion_mask`), and (P * samples,) whether it was emitted."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    p_ids, p_mask = left_pad([encode_prompt(tokenizer, m) for m in conversations], pad)
    completion = sample_shared(
        model, p_ids, p_mask, samples=samples, max_new_tokens=max_new_tokens, eos_id=eos,
        pad_id=pad, generator=generator,
    )  # fmt: skip
    return (p_ids, p_mask, completion, *completion_mask(completion, eos))


def sample_with_logits(model, prompt_ids, prompt_mask, **options):
    """:func:`sample_shared` with autograd on, also returning the logits (B, Tc, V) that
    predicted each completion token, at temperature 1 and with their graph: the same
    numbers as :func:`shared_prompt_logits` of the completions (up to float rounding: one
    token at a time instead of all at once), so the RL step's gradient pass need not run
    the policy again. Not for a model under gradient checkpointing (it keeps no cache)."""
    with torch.enable_grad():
        if checkpointing_on(model):
            raise ValueError("model: sample_with_logits needs the key/value cache; it is off")
        completion, logits = _sample(model, prompt_ids, prompt_mask, keep_logits=True, **options)
    return completion, torch.stack(logits, dim=1)


def _sample(
    model,
    prompt_ids,
    prompt_mask,
    *,
    samples: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    keep_logits: bool = False,
):
    """The sampling loop of :func:`sample_shared`; with ``keep_logits`` also the list of
    each step's logits (B, V) (otherwise empty)."""
    device = model_device(model)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    index = torch.arange(prompt_ids.shape[0], device=device).repeat_interleave(samples)  # (B,)
    logits, cache = _prefill(model, prompt_ids, prompt_mask)  # (P, V)
    cache.batch_select_indices(index)
    logits, mask = logits[index], prompt_mask[index]  # (B, V), (B, Tp)
    tokens, kept = [], []
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=device)  # (B,)
    for t in range(max_new_tokens):
        if keep_logits:
            kept.append(logits)
        token = draw(logits.detach() / temperature, generator)  # (B,)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        tokens.append(token)
        done |= token == eos_id
        if done.all() or t + 1 == max_new_tokens:
            break
        logits = _continue(model, cache, mask, token[:, None], t)[:, -1]  # (B, V)
    return torch.stack(tokens, dim=1), kept  # (B, Tc), Tc x (B, V)
