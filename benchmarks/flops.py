"""Model FLOPs of one RL step and this machine's fp32 matmul rate, for model FLOPs utilisation.

Convention (Kaplan et al. 2020, "6 N T"): a token that goes through the model forward costs
``2 N`` FLOPs and one trained on (forward and backward) ``6 N``, where ``N`` counts the
non-embedding parameters (every parameter except those of ``nn.Embedding`` modules and of
the output layer). The output layer is counted separately, only at the positions whose
logits are computed: ``2 d V`` per position forward, ``6 d V`` trained (``d`` its input
width, ``V`` the vocabulary). Attention scores (``~2 n_layer ctx d`` per token), norms and
activations are left out, and so is padding: counts are real (unpadded) tokens. A pass
counts its prompt and completion tokens, the last completion token included even where a
pass never feeds it (one token per sample: a small overcount, the same on both sides).

A step is a list of passes, each ``(name, tokens, logit_positions, trained)``;
:func:`rl_step_passes` lists them for pmrlhf's ``train_rl`` and TRL's ``RLOOTrainer``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence


def model_dims(model) -> dict:
    """``N`` (non-embedding parameters, output layer excluded), ``d`` and ``V`` of a model."""
    import torch

    embedding = {
        id(p)
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding)
        for p in m.parameters(recurse=False)
    }
    head = model.get_output_embeddings()
    excluded = embedding | {id(p) for p in head.parameters()}
    non_embedding = sum(p.numel() for p in model.parameters() if id(p) not in excluded)
    return {
        "non_embedding_params": int(non_embedding),
        "head_in": int(head.in_features),
        "vocab": int(head.out_features),
        "total_params": int(sum(p.numel() for p in model.parameters())),
    }


def pass_flops(dims: dict, tokens: float, logit_positions: float, *, trained: bool) -> float:
    """``c (N tokens + d V logit_positions)`` with ``c = 6`` trained, ``2`` forward only."""
    factor = 6 if trained else 2
    head = dims["head_in"] * dims["vocab"]
    return float(factor * (dims["non_embedding_params"] * tokens + head * logit_positions))


def rl_step_passes(
    side: str,
    *,
    prompt_lengths: Sequence[int],
    rows_prompt: Sequence[int],
    completion_lengths: Sequence[int],
    trl_head_all_positions: bool = True,
) -> list[dict]:
    """The model passes of one RL step, with their real token and logit-position counts.

    ``prompt_lengths``: tokens of each distinct prompt of the step; ``rows_prompt``: the
    index (into ``prompt_lengths``) of the prompt each sample answers; ``completion_lengths``:
    each sample's tokens up to and including its first end token.

    pmrlhf (``train_rl``, KL, one inner epoch): each prompt runs once per pass and its cache
    is shared by its samples; passes: sampling (forward), reference log-probs (forward),
    policy log-probs with the update (forward and backward; the old log-probs are this pass's,
    detached); logits at the completion positions only.

    TRL (``RLOOTrainer``, ``num_iterations=1``): every row carries its own prompt; passes:
    ``generate`` (forward, one logit row per new token), old log-probs (forward), reference
    log-probs (forward), training (forward and backward). Its fused output layer scores only
    the completion positions on CUDA/XPU with Triton, every position but the last of each
    row elsewhere (``trl_head_all_positions``, True on the CPU).
    """
    completions = float(sum(completion_lengths))

    def passes(names, tokens, logits):  # the last pass is the trained one
        return [
            {"pass": n, "tokens": tokens, "logits": c, "trained": i == len(names) - 1}
            for i, (n, c) in enumerate(zip(names, logits, strict=True))
        ]

    if side == "pmrlhf":
        tokens = float(sum(prompt_lengths)) + completions
        names = ("sampling", "reference log-probs", "policy log-probs + update")
        return passes(names, tokens, [completions] * 3)
    if side == "trl":
        tokens = float(sum(prompt_lengths[i] for i in rows_prompt)) + completions
        scored = tokens - len(completion_lengths) if trl_head_all_positions else completions
        names = ("generate", "old log-probs", "reference log-probs", "training")
        return passes(names, tokens, [completions, scored, scored, scored])
    raise ValueError(f"side must be 'pmrlhf' or 'trl', got {side!r}")


def step_flops(dims: dict, passes: list[dict]) -> float:
    """Total model FLOPs of a step's passes (:func:`pass_flops` summed)."""
    return sum(pass_flops(dims, p["tokens"], p["logits"], trained=p["trained"]) for p in passes)


def matmul_rate(n: int = 2048, *, repeats: int = 10) -> dict:
    """This machine's fp32 matmul rate: ``2 n^3`` FLOPs per ``torch.matmul`` of two ``n x n``
    float32 matrices, best of ``repeats`` timed calls after one warm-up, torch's default
    thread count. Returns GFLOP/s with the shape, repeats and threads."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator, dtype=torch.float32)
    b = torch.randn(n, n, generator=generator, dtype=torch.float32)
    torch.matmul(a, b)  # warm-up: allocator, BLAS threads
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return {
        "gflops": 2 * n**3 / best / 1e9,
        "shape": [n, n],
        "dtype": "float32",
        "repeats": repeats,
        "best_seconds": best,
        "threads": torch.get_num_threads(),
    }
