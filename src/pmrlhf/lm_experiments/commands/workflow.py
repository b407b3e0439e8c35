"""The steps every language-model experiment takes: load -> SFT (the reference) -> RL ->
exact evaluation (docs/theory.md §4, §5, §7). ``pmrlhf lm run`` (:mod:`.single_run`) and
``pmrlhf lm compare`` (:mod:`.compare`) both go through these two functions; ``pmrlhf lm
trl`` (:mod:`pmrlhf.trl.command`) makes its reference with :func:`sft_reference` too.
"""

from __future__ import annotations

import torch

from ..evaluate.exact import evaluate_candidates
from ..models.loading import add_lora, load_model
from ..train.rl import train_rl
from ..train.sft import candidate_pairs, sft_on_pairs


def sft_reference(
    model: str, task, sft, *, seed: int, device=None, progress: bool = True, **load_options
):
    """Load ``model`` (:func:`~pmrlhf.lm_experiments.models.loading.load_model` with
    ``load_options``) and fine-tune it on the task's candidates: the reference of RL.

    ``seed`` seeds torch, the tiny models' initialisation and the SFT batches: the same seed
    gives the same reference, so a resumed run redoes SFT rather than storing it. With LoRA
    (``load_options["lora"]``), SFT trains adapters; they are merged and fresh ones added
    (:func:`~pmrlhf.lm_experiments.models.loading.add_lora`), so the adapters-off model is the
    reference. Returns ``(model, tokenizer, sft_losses)``, the model in eval mode.
    """
    torch.manual_seed(seed)
    model, tokenizer = load_model(model, seed=seed, **load_options)
    if device is not None:
        model.to(device)
    pairs, weights = candidate_pairs(task)
    losses = sft_on_pairs(
        model, tokenizer, pairs, sft, seed=seed, weights=weights, progress=progress
    )
    if load_options.get("lora"):
        model = add_lora(model, load_options["lora"])
    return model.eval(), tokenizer, losses


def train_and_evaluate(
    policy, reference, tokenizer, task, reward_fn, rl, *, seed: int, rewards=None, **options
) -> dict:
    """:func:`~pmrlhf.lm_experiments.train.rl.train_rl` from ``reference`` (``options``: its
    keywords), then the exact evaluation of the trained ``policy`` against ``rewards``
    (default: the task's oracle rewards), :func:`evaluate_candidates`."""
    train_rl(policy, reference, tokenizer, task, reward_fn, rl, seed=seed, **options)
    return evaluate_candidates(policy, tokenizer, task, rewards=rewards)
