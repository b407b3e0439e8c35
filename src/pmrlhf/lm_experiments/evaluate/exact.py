"""Evaluation against the preference distribution (docs/theory.md §5)."""

from __future__ import annotations

import numpy as np

from ...simulate.metrics import kl, minority_mass, pairwise_pmd_matrix, total_variation
from ..models.loading import flush_denormals
from ..models.sequences import candidate_logprobs

# The metrics of one evaluation, averaged over prompts (docs/theory.md §5).
METRICS = (
    "pairwise_pmd",
    "pairwise_abs_gap",
    "tv_to_target",
    "kl_to_target",
    "minority_mass",
    "target_minority_mass",
    "coverage",
    "mean_reward",
    "tv_to_population",
    "kl_to_population",
    "abs_logodds_gap",
)


def candidate_metrics(log_pi, reward, population, off_reward: float) -> dict:
    """One prompt's metrics from the exact ``log pi(c|x)`` of its candidates.

    ``coverage`` is the mass on the candidates; the other metrics use ``pi`` renormalised on
    them. Target: ``softmax(reward)``; ``population``: the annotators' first choices.
    ``pairwise_pmd`` is this project's definition (unbounded), ``pairwise_abs_gap`` its
    bounded companion ``mean |sigma(r_a - r_b) - pi_a / (pi_a + pi_b)|``.
    """
    log_pi, reward = np.asarray(log_pi, float), np.asarray(reward, float)
    mass = np.exp(log_pi)
    coverage = float(mass.sum())
    pi = mass / coverage
    target = np.exp(reward - reward.max())
    target /= target.sum()
    pmd = pairwise_pmd_matrix(log_pi, reward)
    return {
        "pairwise_pmd": pmd["kl_bernoulli"],
        "pairwise_abs_gap": pmd["abs_preference_gap"],
        "tv_to_target": float(total_variation(target, pi)),
        "kl_to_target": float(kl(target, pi)),
        "minority_mass": float(minority_mass(pi, target)),
        "target_minority_mass": float(minority_mass(target, target)),
        "coverage": coverage,
        "mean_reward": float(mass @ reward + max(1 - coverage, 0.0) * off_reward),
        "tv_to_population": float(total_variation(population, pi)),
        "kl_to_population": float(kl(population, pi)),
        "abs_logodds_gap": pmd["abs_logodds_gap"],
        "distribution": pi.tolist(),
        "mass": mass.tolist(),  # not renormalised: pi(c|x), the rest is off the candidates
        "reward": reward.tolist(),
    }


@flush_denormals
def evaluate_candidates(model, tokenizer, task, *, rewards=None) -> dict:
    """Exact candidate distribution of ``model`` and its distance to the targets.

    For each prompt, ``pi(c|x)`` comes from teacher forcing (:func:`candidate_metrics`).
    Targets: the reward model's ``softmax(r)`` (``rewards``: one vector per prompt; the
    oracle reward by default) and the population's first-choice distribution.

    Returns
    -------
    dict with every key of :data:`METRICS` (means over prompts) and ``prompts``: the same
    metrics per prompt, with ``distribution`` (renormalised) and ``mass`` (not).
    """
    model.eval()
    logps = [lp.double().numpy() for lp in candidate_logprobs(model, tokenizer, task.prompts)]
    return summarize_candidates(task, logps, rewards=rewards)


def summarize_candidates(task, logps, *, rewards=None) -> dict:
    """:func:`evaluate_candidates`' result from the exact ``log pi(c|x)`` of every prompt's
    candidates (``logps``: one vector per prompt, in ``task.prompts``' order), however they
    were computed (in one process, or in shares gathered from several)."""
    rewards = task.oracle_rewards() if rewards is None else [np.asarray(r, float) for r in rewards]
    rows = [
        candidate_metrics(log_pi, reward, prompt.target, task.off_candidate_reward(i))
        for i, (prompt, log_pi, reward) in enumerate(zip(task.prompts, logps, rewards, strict=True))
    ]
    summary = {key: float(np.mean([r[key] for r in rows])) for key in METRICS}
    summary["prompts"] = rows
    return summary
