"""How much memory a training step needs, estimated from its settings before it runs.

A small file can ask for a step no machine holds: a task whose candidate is 1,500 words
makes every RL sample 2,000 tokens long, and the sampling pass keeps the logits over the
vocabulary of every one of them for the gradient (samples x tokens x vocabulary floats).
Such a run used to grow until the kernel killed it. :func:`check_rl_step` estimates the
step's memory from the model's shape and the run's sizes and refuses, in one line with
the estimate and the limit, a step whose estimate exceeds the machine's memory.

The estimate counts only the largest terms and is a lower bound of what the step uses
(a run it admits may still be tight; a run it refuses cannot fit):

* weights, gradients and AdamW's two moments: ``4 P`` floats, plus ``P`` for a separate
  reference model;
* the logits the step keeps: about four ``B x T x V`` float tensors (the policy's logits,
  their softmax in the expected penalty, their gradient, and the reference's logits);
* activations kept for the backward pass: ``B x T x d x L`` floats times a factor of 8
  (attention and MLP inputs and outputs per layer), for completions and prompts;
* the key/value caches of policy and reference: ``2 x 2 x L x kv x B x T`` floats.

SFT (:func:`sft_step_bytes`) keeps the same terms but the caches, with three logits
tensors (logits, log-softmax, gradient) and no reference; the exact evaluation
(:func:`evaluation_bytes`) keeps the weights and two logits tensors, without gradients.
A step longer than the model's positions is refused too (:func:`check_length`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import PmrlhfUserError

GIB = 1 << 30
_FLOAT = 4  # bytes: the step's arithmetic is float32 (bf16 autocast keeps fp32 logits)


def memory_limit_bytes() -> int | None:
    """The memory this process may use: the cgroup's limit where one is set, else the
    machine's physical memory; ``None`` where neither can be read."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            return int(text)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def model_shape(model) -> dict:
    """``params``, ``hidden``, ``layers``, ``vocab``, ``kv`` (key/value width per layer) and
    ``positions`` (``None`` where the config names no limit) of a causal LM, from its config
    and parameters."""
    config = getattr(model, "config", None)
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or 0)
    heads = getattr(config, "num_attention_heads", None) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if hidden else 0)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "hidden": hidden,
        "layers": int(getattr(config, "num_hidden_layers", 0) or 0),
        "vocab": int(getattr(config, "vocab_size", 0) or 0),
        "kv": int(kv_heads * head_dim),
        "positions": getattr(config, "max_position_embeddings", None) or None,
    }


def rl_step_bytes(
    shape: dict, *, rows: int, prompts: int, prompt_tokens: int, new_tokens: int, reference: bool
) -> int:
    """The estimate of the module docs for one RL step: ``rows`` samples of at most
    ``new_tokens`` tokens each, after ``prompts`` prompts of at most ``prompt_tokens``."""
    p, d, n_layers, v, kv = (shape[k] for k in ("params", "hidden", "layers", "vocab", "kv"))
    weights = p * (4 + (1 if reference else 0))
    logits = 4 * rows * new_tokens * v
    tokens = rows * new_tokens + prompts * prompt_tokens
    activations = 8 * tokens * d * n_layers
    caches = 2 * 2 * n_layers * kv * rows * (prompt_tokens + new_tokens)
    return _FLOAT * (weights + logits + activations + caches)


def sft_step_bytes(
    shape: dict, *, rows: int, prompts: int, prompt_tokens: int, new_tokens: int
) -> int:
    """The estimate of the module docs for one SFT step: ``rows`` responses of at most
    ``new_tokens`` tokens after ``prompts`` prompts of at most ``prompt_tokens``."""
    p, d, n_layers, v = (shape[k] for k in ("params", "hidden", "layers", "vocab"))
    tokens = rows * new_tokens + prompts * prompt_tokens
    return _FLOAT * (4 * p + 3 * rows * new_tokens * v + 8 * tokens * d * n_layers)


def evaluation_bytes(
    shape: dict, *, rows: int, prompts: int, prompt_tokens: int, new_tokens: int
) -> int:
    """The estimate of the module docs for the exact evaluation: ``rows`` candidates of at
    most ``new_tokens`` tokens, teacher-forced after ``prompts`` prompts."""
    p, n_layers, v, kv = (shape[k] for k in ("params", "layers", "vocab", "kv"))
    caches = 2 * n_layers * kv * (prompts * prompt_tokens + rows * new_tokens)
    return _FLOAT * (p + 2 * rows * new_tokens * v + caches)


def check_length(shape: dict, tokens: int, what: str) -> None:
    """Refuse (one line) ``tokens`` positions beyond the model's ``positions``."""
    if shape.get("positions") and tokens > shape["positions"]:
        raise PmrlhfUserError(
            f"{what}: {tokens} tokens exceed the model's {shape['positions']} positions"
        )


def check_fits(estimate: int, what: str, *, limit: int | None = None) -> None:
    """Refuse (one line, with the estimate and the limit) ``estimate`` bytes above the
    memory limit (:func:`memory_limit_bytes` unless ``limit`` is given)."""
    limit = memory_limit_bytes() if limit is None else limit
    if limit is not None and estimate > limit:
        raise PmrlhfUserError(
            f"{what} needs at least {estimate / GIB:.1f} GiB of memory by estimate, more than "
            f"this machine's {limit / GIB:.1f} GiB; use fewer or shorter samples"
        )
