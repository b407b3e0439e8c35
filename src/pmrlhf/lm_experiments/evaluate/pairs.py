"""A policy on preference pairs ``(x, a, b)`` (``a`` chosen, ``b`` rejected), by teacher
forcing: its log-probabilities, the reference log-weights of each regularizer's optimum,
a reward model's margins, and the pairwise metrics of the implied preferences
(docs/theory.md §5). ``lm audit`` and ``lm paper``'s audit both use these.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit

from ...errors import PmrlhfUserError
from ...simulate.metrics import pairwise_pmd
from ..models.loading import flush_denormals
from ..models.sequences import (
    encode_prompt,
    encode_response,
    left_pad,
    right_pad,
    shared_prompt_logprobs,
)
from ..train.reward_model import score_responses


def distinct_rows(data) -> tuple[list, list[tuple[int, str]], np.ndarray]:
    """The pairs' distinct conversations, their distinct ``(conversation index, response)``
    rows and, per pair, the rows of its chosen and rejected responses (N, 2). Pairs drawn
    among a few responses per prompt (the shipped data: 6 responses, 15 pairs per prompt)
    repeat each response many times; every row is scored once."""
    prompts, prompt_of, rows, row_of, index = [], {}, [], {}, []
    for pair in data:
        key = tuple(tuple(sorted(m.items())) for m in pair.messages)
        if key not in prompt_of:
            prompt_of[key] = len(prompts)
            prompts.append(pair.messages)
        for response in (pair.chosen, pair.rejected):
            row = (prompt_of[key], response)
            if row not in row_of:
                row_of[row] = len(rows)
                rows.append(row)
            index.append(row_of[row])
    if not rows:
        raise PmrlhfUserError("pairs must hold at least one pair, got none")
    return prompts, rows, np.asarray(index, dtype=int).reshape(-1, 2)


def _pair_token_logprobs(policy, tokenizer, data, batch_size: int):
    """``log pi(y_t | x, y_<t)`` of the pairs' responses by teacher forcing, each distinct
    response once (:func:`distinct_rows`), its prompt's pass shared by the responses of a
    batch: (N, 2, T) float64 (chosen, rejected), 0 at padding, and the (N, 2, T) mask of
    real tokens."""
    prompts, rows, index = distinct_rows(data)
    pad = tokenizer.pad_token_id
    encoded = [encode_prompt(tokenizer, messages) for messages in prompts]
    responses = [encode_response(tokenizer, response) for _, response in rows]
    lengths = torch.tensor([len(r) for r in responses])
    out = torch.zeros(len(rows), int(lengths.max()), dtype=torch.float64)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        used = sorted({p for p, _ in batch})
        p_ids, p_mask = left_pad([encoded[p] for p in used], pad)
        c_ids, c_mask = right_pad(responses[start : start + batch_size], pad)
        where = [used.index(p) for p, _ in batch]
        lp = shared_prompt_logprobs(policy, p_ids, p_mask, c_ids, c_mask, where)  # (B, Tc)
        out[start : start + len(batch), : lp.shape[1]] = lp.double().cpu()
    real = torch.arange(out.shape[1])[None] < lengths[:, None]  # (rows, T)
    return out[index].numpy(), real[index].numpy()


@flush_denormals
@torch.no_grad()
def pair_logprobs(policy, tokenizer, data, *, batch_size: int = 16) -> np.ndarray:
    """``log pi(chosen|x)`` and ``log pi(rejected|x)`` of each pair by teacher forcing:
    (N, 2), float64."""
    policy.eval()
    return _pair_token_logprobs(policy, tokenizer, data, batch_size)[0].sum(-1)


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

    Returns ``{"log_ref": (N, 2), "log_w": {key: (N, 2)}, "tokens": {alpha: {...}}}``
    (``log_ref``: ``log pi_ref`` of each response, as :func:`pair_logprobs` gives it); per
    alpha the share of
    the responses' tokens with ``pi_ref > alpha`` (``plausible_tokens``), the share of
    responses whose every token is (``plausible_responses``), and the mean
    ``|log W(a) - log W(b)|`` of cPM at that alpha over the mean ``|log pi_ref(a) - log
    pi_ref(b)|`` of KL (``reference_odds_kept``: 1 where cPM keeps KL's odds, 0 where it
    keeps none, as PM; it can exceed 1, since cPM can widen a pair's odds: the cliff of
    docs/theory.md §4).
    """
    from ...theory.regularizers import reference_log_weight

    reference.eval()
    ref, real = _pair_token_logprobs(reference, tokenizer, data, batch_size)  # (N, 2, T)
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
    return {"log_ref": ref.sum(-1), "log_w": log_w, "tokens": described}


@flush_denormals
@torch.no_grad()
def pair_reward_margins(scorer, rm_tokenizer, data, *, batch_size: int = 16) -> np.ndarray:
    """``r(x, chosen) - r(x, rejected)`` of each pair: (N,), float64; each distinct
    response scored once (:func:`distinct_rows`)."""
    prompts, rows, index = distinct_rows(data)
    by_prompt: dict[int, list[int]] = {}
    for i, (p, _) in enumerate(rows):
        by_prompt.setdefault(p, []).append(i)
    scores = np.zeros(len(rows))
    for p, mine in by_prompt.items():
        texts = [rows[i][1] for i in mine]
        scores[mine] = score_responses(
            scorer, rm_tokenizer, prompts[p], texts, batch_size=batch_size
        )
    return scores[index[:, 0]] - scores[index[:, 1]]


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
