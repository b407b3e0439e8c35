"""Evaluation on free-form prompts, where the response set cannot be enumerated (docs/theory.md §5).

For each prompt, sample responses from the policy, score them with a reward function, and
compare the policy's implied pairwise preference ``sigma(log pi(a) - log pi(b))`` with the
reward's ``sigma(r(a) - r(b))`` over sampled pairs: no normalizing constant is needed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..._figure_style import SINGLE, WIDTH, print_style
from ..._validation import DEFAULT_SEED, check_count
from ...errors import PmrlhfUserError
from ...simulate.metrics import pairwise_pmd
from ..models.loading import flush_denormals
from ..models.sequences import model_device, sample_conversations, shared_prompt_logprobs


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of whitespace tokens (diversity; 0 for no n-grams)."""
    grams = [
        tuple(words[i : i + n])
        for words in (t.split() for t in texts)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


@flush_denormals
@torch.no_grad()
def evaluate_freeform(
    model,
    tokenizer,
    prompts,
    reward_fn,
    *,
    samples: int = 4,
    max_new_tokens: int = 32,
    seed: int = DEFAULT_SEED,
    reference=None,
    alpha: float = 0.1,
) -> dict:
    """Sample ``samples`` responses per prompt and measure preference matching on pairs.

    Parameters
    ----------
    prompts : list of message lists
    reward_fn : callable ``(prompt_index, text) -> float``
        E.g. a trained reward model's score.
    reference : model, optional
        With it, also ``kl_to_reference_per_token`` (the mean over sampled tokens of
        ``log pi - log pi_ref``, a sampled estimate of the KL per token) and
        ``plausible_share`` (the share of sampled tokens with ``pi_ref > alpha``: conditional
        PM's plausible text).

    Returns
    -------
    dict with ``pairwise_pmd``, ``abs_logodds_gap``, ``mean_reward``, ``distinct_1``,
    ``distinct_2``, ``entropy_per_token`` and ``implied`` (the pairs' ``p_pi`` and ``p_r``,
    for histograms).

    Raises
    ------
    PmrlhfUserError
        No prompts, or fewer than 2 samples per prompt.
    """
    if not prompts:
        raise PmrlhfUserError("prompts must not be empty")
    if samples < 2:
        raise PmrlhfUserError(f"samples must be >= 2 to form pairs, got {samples}")
    model.eval()
    p_ids, p_mask, completion, c_mask, _ = sample_conversations(
        model, tokenizer, prompts, samples=samples, max_new_tokens=max_new_tokens,
        generator=torch.Generator(device=model_device(model)).manual_seed(seed),
    )  # fmt: skip  # (P, Tp) and (P*S, Tc)
    logp = shared_prompt_logprobs(model, p_ids, p_mask, completion, c_mask)  # (P*S, Tc)
    seq_logp = logp.sum(-1).double().cpu().numpy().reshape(len(prompts), samples)  # (P, S)
    extra = {}
    if reference is not None:
        reference.eval()
        ref_logp = shared_prompt_logprobs(reference, p_ids, p_mask, completion, c_mask)
        n = c_mask.sum().clamp(min=1).double()
        extra = {
            "kl_to_reference_per_token": float(((logp - ref_logp).double() * c_mask).sum() / n),
            "plausible_share": float(((ref_logp.exp() > alpha).double() * c_mask).sum() / n),
        }
    tokens = c_mask.sum(-1).double().cpu().numpy().reshape(len(prompts), samples)
    texts = tokenizer.batch_decode(
        completion * c_mask + tokenizer.pad_token_id * (1 - c_mask), skip_special_tokens=True
    )
    rewards = np.array(
        [reward_fn(i // samples, t.strip()) for i, t in enumerate(texts)], dtype=float
    ).reshape(len(prompts), samples)
    i, j = np.triu_indices(samples, k=1)
    pmd = pairwise_pmd(seq_logp[:, i], seq_logp[:, j], rewards[:, i], rewards[:, j])
    implied_pi = 1 / (1 + np.exp(-(seq_logp[:, i] - seq_logp[:, j])))
    implied_r = 1 / (1 + np.exp(-(rewards[:, i] - rewards[:, j])))
    return {
        "pairwise_pmd": pmd["kl_bernoulli"],
        "abs_logodds_gap": pmd["abs_logodds_gap"],
        "mean_reward": float(rewards.mean()),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "entropy_per_token": float(-seq_logp.sum() / max(tokens.sum(), 1.0)),
        **extra,
        "implied": {"policy": implied_pi.ravel().tolist(), "reward": implied_r.ravel().tolist()},
    }


@print_style
def implied_preference_figure(results: dict, *, columns: int | None = None):
    """Histograms of implied pairwise preferences, one panel per policy, next to the reward's.

    ``results`` maps a policy name to the output of :func:`evaluate_freeform`; an
    ``implied["population"]`` (the known preference of each pair, where the data give it)
    is drawn too, as a step outline. ``columns``: panels per row (default: three at most,
    two when there are four).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Three panels to a row at most (two when there are four), each about a column wide.
    if columns is None:
        columns = 2 if len(results) == 4 else min(len(results), 3)
    columns = check_count(columns, "columns", 1)
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(WIDTH if columns > 1 else SINGLE, 2.4 * rows + 1.0),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat[len(results) :]:
        ax.remove()
    bins = np.linspace(0, 1, 21)
    for ax, (name, result) in zip(axes.flat, results.items(), strict=False):
        ax.hist(
            result["implied"]["reward"],
            bins=bins,
            alpha=0.6,
            color="#9467bd",
            label="reward model: sigma(r(a) - r(b))",
        )
        ax.hist(
            result["implied"]["policy"],
            bins=bins,
            alpha=0.6,
            color="#1f77b4",
            label="policy: sigma(log pi(a) - log pi(b))",
        )
        if result["implied"].get("population") is not None:
            ax.hist(
                result["implied"]["population"],
                bins=bins,
                histtype="step",
                color="black",
                label="population: known P(a preferred)",
            )
        ax.set(
            title=f"{name}\nPMD vs reward model = {result['pairwise_pmd']:.3f}",
            xlabel="implied P(a preferred to b)",
            ylabel="pairs",
        )
    # Below the panels, where it covers no bar.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), frameon=False)
    fig.suptitle("Implied pairwise preferences: the policy's against the reward's")
    return fig
