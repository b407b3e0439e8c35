"""A policy on preference pairs ``(x, a, b)`` (``a`` chosen, ``b`` rejected), by teacher
forcing: its log-probabilities, the reference log-weights of each regularizer's optimum,
a reward model's margins, and the pairwise metrics of the implied preferences
(docs/theory.md §5). ``lm audit`` and ``lm paper``'s audit both use these.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit

from ...simulate.metrics import pairwise_pmd
from ..models.loading import flush_denormals
from ..models.sequences import (
    encode_prompt,
    encode_response,
    left_pad,
    right_pad,
    shared_prompt_logprobs,
)
from ..train.reward_model import pair_margins


def _pair_token_logprobs(policy, tokenizer, data, batch_size: int):
    """``log pi(y_t | x, y_<t)`` of the pairs' responses by teacher forcing, a batch at a
    time: (B, 2, Tc) float64 per batch (chosen, rejected), 0 at padding, and the (B, 2, Tc)
    mask of real tokens."""
    for start in range(0, len(data), batch_size):
        batch = data[start : start + batch_size]
        pad = tokenizer.pad_token_id
        p_ids, p_mask = left_pad([encode_prompt(tokenizer, p.messages) for p in batch], pad)
        rows = [encode_response(tokenizer, r) for p in batch for r in (p.chosen, p.rejected)]
        c_ids, c_mask = right_pad(rows, pad)  # (2B, Tc): chosen, rejected of each prompt
        lp = shared_prompt_logprobs(policy, p_ids, p_mask, c_ids, c_mask)  # (2B, Tc)
        yield lp.double().cpu().view(len(batch), 2, -1), c_mask.bool().view(len(batch), 2, -1)


@flush_denormals
@torch.no_grad()
def pair_logprobs(policy, tokenizer, data, *, batch_size: int = 16) -> np.ndarray:
    """``log pi(chosen|x)`` and ``log pi(rejected|x)`` of each pair by teacher forcing:
    (N, 2), float64."""
    policy.eval()
    logp = [lp.sum(-1) for lp, _ in _pair_token_logprobs(policy, tokenizer, data, batch_size)]
    return torch.cat(logp).numpy()


@flush_denormals
@torch.no_grad()
def pair_log_weights(
    reference, tokenizer, data, *, methods, alphas=(), batch_size: int = 16
) -> dict:
    """The reference log-weights ``log w(y)`` that each regularizer puts on the pairs'
    responses, from one teacher-forced pass of ``reference`` (docs/theory.md §4, "From
    tokens to sequences"): the sum over tokens of
    :func:`~pmrlhf.theory.regularizers.reference_log_weight`, so ``log pi_ref(y)`` (KL), ``0``
    (PM) and ``log W(y)``, the reference log-probabilities of the tokens with
    ``pi_ref <= alpha`` only (token-level cPM). The optimum of the regularized objective is
    ``pi*(y) ∝ w(y) exp(r(y) / beta)``, so its implied preference on a pair is
    ``sigma((r(a) - r(b)) / beta + log w(a) - log w(b))``.

    ``methods``: ``{key: (regularizer, alpha)}``. ``alphas``: thresholds at which to describe
    the reference's token probabilities (what a choice of ``alpha`` makes plausible).

    Returns ``{"log_w": {key: (N, 2)}, "tokens": {alpha: {...}}}``: per alpha the share of
    the responses' tokens with ``pi_ref > alpha`` (``plausible_tokens``), the share of
    responses whose every token is (``plausible_responses``), and the mean
    ``|log W(a) - log W(b)|`` of cPM at that alpha over the mean ``|log pi_ref(a) - log
    pi_ref(b)|`` of KL (``reference_odds_kept``: 1 where cPM keeps KL's odds, 0 where it
    keeps none, as PM; it can exceed 1, since cPM can widen a pair's odds: the cliff of
    docs/theory.md §4).
    """
    from ...theory.regularizers import reference_log_weight

    reference.eval()
    batches = list(_pair_token_logprobs(reference, tokenizer, data, batch_size))
    width = max(lp.shape[-1] for lp, _ in batches)
    ref = torch.cat([torch.nn.functional.pad(lp, (0, width - lp.shape[-1])) for lp, _ in batches])
    real = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[-1])) for _, m in batches])
    ref, real = ref.numpy(), real.numpy()  # (N, 2, T)
    log_w = {
        key: reference_log_weight(ref, regularizer=reg, alpha=alpha).sum(-1)
        for key, (reg, alpha) in methods.items()
    }
    kl_gap = np.abs(np.subtract(*ref.sum(-1).T)).mean()
    described = {}
    for alpha in alphas:
        plausible = (ref > np.log(alpha)) & real
        w = reference_log_weight(ref, regularizer="cpm", alpha=alpha).sum(-1)
        described[float(alpha)] = {
            "plausible_tokens": float(plausible.sum() / real.sum()),
            "plausible_responses": float(np.mean(plausible.sum(-1) == real.sum(-1))),
            "reference_odds_kept": float(np.abs(np.subtract(*w.T)).mean() / kl_gap),
        }
    return {"log_w": log_w, "tokens": described}


@flush_denormals
@torch.no_grad()
def pair_reward_margins(scorer, rm_tokenizer, data, *, batch_size: int = 16) -> np.ndarray:
    """``r(x, chosen) - r(x, rejected)`` of each pair: (N,), float64."""
    scorer.eval()
    margins = [
        pair_margins(scorer, rm_tokenizer, data[i : i + batch_size]).double().cpu()
        for i in range(0, len(data), batch_size)
    ]
    return torch.cat(margins).numpy()


def pair_metrics(logp: np.ndarray, margin: np.ndarray) -> dict:
    """The pairwise metrics of a policy's ``logp`` (N, 2) against target log-odds ``margin``
    (N,) that ``chosen`` is preferred (a reward model's ``r(a) - r(b)``, or the logit of a
    known preference), and both sides' implied preferences."""
    # p_r depends on r(a) - r(b) alone: (margin, 0) stands for (r(a), r(b)).
    metrics = pairwise_pmd(logp[:, 0], logp[:, 1], margin, np.zeros_like(margin))
    return {
        "pairs": len(margin),
        "pairwise_pmd": metrics["kl_bernoulli"],
        "abs_logodds_gap": metrics["abs_logodds_gap"],
        "abs_preference_gap": metrics["abs_preference_gap"],
        "policy_prefers_chosen": float(np.mean(logp[:, 0] > logp[:, 1])),
        "reward_prefers_chosen": float(np.mean(margin > 0)),
        "implied": {
            "policy": expit(logp[:, 0] - logp[:, 1]).tolist(),
            "reward": expit(margin).tolist(),
        },
    }
