"""Evaluation against the preference distribution (THEORY.md §5)."""

from __future__ import annotations

import numpy as np

from ..simulate.metrics import kl, minority_mass, pairwise_pmd_matrix, total_variation
from .models import flush_denormals
from .sequences import candidate_logprobs


@flush_denormals
def evaluate_candidates(model, tokenizer, task, *, rewards=None) -> dict:
    """Exact candidate distribution of ``model`` and its distance to the targets.

    For each prompt, ``pi(c|x)`` comes from teacher forcing; ``coverage`` is its sum over
    the candidates; the other metrics use ``pi`` renormalized on the candidates. Targets:
    the reward model's ``softmax(r)`` (``rewards``: one vector per prompt; the oracle reward
    by default) and the population's first-choice distribution. Means over prompts.

    Returns
    -------
    dict with ``kl_to_target``, ``tv_to_target``, ``kl_to_population``,
    ``tv_to_population``, ``minority_mass``, ``target_minority_mass``, ``coverage``,
    ``pairwise_pmd``, ``abs_logodds_gap``, ``mean_reward`` and ``distributions``.
    """
    model.eval()
    rewards = task.oracle_rewards() if rewards is None else [np.asarray(r, float) for r in rewards]
    logps = [lp.double().numpy() for lp in candidate_logprobs(model, tokenizer, task.prompts)]
    rows = []
    for i, (prompt, log_pi, reward) in enumerate(zip(task.prompts, logps, rewards, strict=True)):
        mass = np.exp(log_pi)
        coverage = float(mass.sum())
        pi = mass / coverage
        target = np.exp(reward - reward.max())
        target /= target.sum()
        population = prompt.target
        pmd = pairwise_pmd_matrix(log_pi, reward)
        rows.append(
            {
                "kl_to_target": float(kl(target, pi)),
                "tv_to_target": float(total_variation(target, pi)),
                "kl_to_population": float(kl(population, pi)),
                "tv_to_population": float(total_variation(population, pi)),
                "minority_mass": float(minority_mass(pi, target)),
                "target_minority_mass": float(minority_mass(target, target)),
                "coverage": coverage,
                "pairwise_pmd": pmd["kl_bernoulli"],
                "abs_logodds_gap": pmd["abs_logodds_gap"],
                "mean_reward": float(mass @ reward + (1 - coverage) * task.off_candidate_reward(i)),
                "distribution": pi.tolist(),
            }
        )
    summary = {
        key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "distribution"
    }
    summary["distributions"] = [r["distribution"] for r in rows]
    return summary
