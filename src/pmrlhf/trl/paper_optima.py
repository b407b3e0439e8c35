"""The theory's prediction for ``lm paper``'s audit: the implied preference of each method's
exact optimum on the test pairs, given the actual reference and reward model
(docs/theory.md §4, "From tokens to sequences"), and what the plausibility threshold
``alpha`` makes plausible in the reference's own token probabilities.

A regularizer with reference log-weight ``log w`` has the optimum ``pi*(y) ∝ w(y) exp(r(y) /
beta)`` over responses, so on a pair ``(x, a, b)`` the normalizer cancels and the optimum
implies

    p*(a > b) = sigma((r(a) - r(b)) / beta + log w(a) - log w(b))

with ``log w = log pi_ref`` (KL), ``0`` (PM) and ``log W``, the reference log-probabilities of
the tokens with ``pi_ref <= alpha`` only (token-level conditional PM). No sampling, no
enumeration: one teacher-forced pass of the reference. KL's optimum keeps all of the
reference's log-odds ``log pi_ref(a) - log pi_ref(b)``; PM's at ``beta = 1`` is the reward
model's ``sigma(r(a) - r(b))`` exactly; conditional PM's keeps the part carried by
implausible tokens.
"""

from __future__ import annotations

import numpy as np

ALPHAS = (0.01, 0.03, 0.1, 0.3, 0.5)
"""The thresholds at which the audit describes the reference's token probabilities."""


def optimum_logodds(margins, log_w, *, beta: float) -> np.ndarray:
    """``(r(a) - r(b)) / beta + log w(a) - log w(b)`` per pair (module docs): ``margins``
    (N,), ``log_w`` (N, 2) of (a, b)."""
    margins, log_w = np.asarray(margins, dtype=float), np.asarray(log_w, dtype=float)
    if log_w.shape != (len(margins), 2):
        raise ValueError(f"log_w must have shape ({len(margins)}, 2), got {log_w.shape}")
    return margins / beta + log_w[:, 0] - log_w[:, 1]


def predict(methods, reference, tokenizer, pairs, targets: dict, *, alpha: float) -> dict:
    """Each method's optimum on ``pairs`` and the reference's token probabilities.

    ``methods``: the parsed :class:`~pmrlhf.lm_experiments.train.method.Method` s;
    ``targets``: ``{"reward": r(a) - r(b), "population": logit of the known preference or
    None}``; ``alpha``: the audit's threshold, described beside :data:`ALPHAS`.

    Returns ``{"optima": {name: {"logodds": (N,), "metrics": {...}}}, "reference_tokens":
    {alpha: {...}}, "reference_logodds": (N,)}``; ``metrics`` are those of a policy on the
    pairs (``pairs_pmd_vs_reward`` ...) with the optimum in the policy's place;
    ``reference_logodds``: the reference's own ``log pi_ref(a) - log pi_ref(b)``.
    """
    from ..lm_experiments.evaluate.pairs import pair_log_weights

    keys = {m.name: (m.regularizer, m.alpha) for m in methods}
    weights = pair_log_weights(
        reference, tokenizer, pairs, methods=keys, alphas=sorted({*ALPHAS, float(alpha)})
    )
    optima = {}
    for method in methods:
        logodds = optimum_logodds(
            targets["reward"], weights["log_w"][method.name], beta=method.beta
        )
        optima[method.name] = {"logodds": logodds, "metrics": pair_scores(logodds, targets)}
    log_ref = weights["log_ref"]
    return {
        "optima": optima,
        "reference_tokens": weights["tokens"],
        "reference_logodds": log_ref[:, 0] - log_ref[:, 1],
    }


def pair_scores(logodds, targets: dict) -> dict:
    """The pair metrics of implied log-odds ``log pi(a) - log pi(b)`` (N,) against the
    reward model and, where known, the population (the names of ``summary.json``)."""
    from ..lm_experiments.evaluate.pairs import pair_metrics

    logp = np.stack([logodds, np.zeros_like(logodds)], axis=1)
    vs_reward = pair_metrics(logp, targets["reward"])
    scores = {
        "pairs_pmd_vs_reward": vs_reward["pairwise_pmd"],
        "pairs_gap_vs_reward": vs_reward["abs_preference_gap"],
        "policy_prefers_chosen": vs_reward["policy_prefers_chosen"],
    }
    if targets["population"] is not None:
        vs_population = pair_metrics(logp, targets["population"])
        scores["pairs_pmd_vs_population"] = vs_population["pairwise_pmd"]
        scores["pairs_gap_vs_population"] = vs_population["abs_preference_gap"]
    return scores


def distance_to_optimum(logodds, optimum_logodds_) -> dict:
    """How far implied log-odds are from an optimum's: pairwise PMD (unbounded) and mean
    absolute gap of the implied preferences (bounded, in [0, 1])."""
    from ..lm_experiments.evaluate.pairs import pair_metrics

    logp = np.stack([logodds, np.zeros_like(logodds)], axis=1)
    metrics = pair_metrics(logp, optimum_logodds_)
    return {
        "pairs_pmd_vs_optimum": metrics["pairwise_pmd"],
        "pairs_gap_vs_optimum": metrics["abs_preference_gap"],
    }
