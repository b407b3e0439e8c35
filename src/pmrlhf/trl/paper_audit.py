"""The audit stage of ``pmrlhf lm paper``: the SFT reference and every trained policy on the
test pairs and on their own samples (docs/theory.md §5), summarised across seeds.

Per policy (the metric names of ``summary.json``):

* on the test pairs, by teacher forcing, the implied preference ``p_pi = sigma(log pi(a|x)
  - log pi(b|x))`` against the reward model's ``p_r = sigma(r(a) - r(b))``
  (``pairs_pmd_vs_reward``, ``pairs_gap_vs_reward``: :func:`pmrlhf.simulate.metrics.
  pairwise_pmd` as ``lm audit`` computes it) and, where the data know it, against the
  population's preference (``pairs_pmd_vs_population``, ``pairs_gap_vs_population``);
  ``policy_prefers_chosen``;
* on ``audit.samples`` responses sampled for each of ``audit.prompts`` test prompts
  (:func:`~pmrlhf.lm_experiments.evaluate.freeform.evaluate_freeform`): the pairwise PMD
  among them (``samples_pmd_vs_reward``), their ``mean_reward``, the KL to the reference
  per sampled token (``kl_to_reference_per_token``), the mass on plausible text
  (``plausible_share``: sampled tokens with ``pi_ref > alpha``), ``distinct_1``,
  ``distinct_2`` and ``entropy_per_token``.

Across seeds each method gets a mean and 95% t-interval per metric
(:func:`~pmrlhf.lm_experiments.evaluate.summary.t_interval`), and every two methods their
per-seed differences with mean and interval. Written atomically in the audit folder:
``summary.json``, ``summary.csv``, ``pairs.csv`` (every pair's implied preferences) and
``implied_preferences.png`` / ``.pdf`` (the histograms, the paper's figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import atomic_save_figure, atomic_write_csv, atomic_write_json

FIGURE = "implied_preferences.png"
METRICS = (
    "pairs_pmd_vs_reward",
    "pairs_gap_vs_reward",
    "pairs_pmd_vs_population",
    "pairs_gap_vs_population",
    "policy_prefers_chosen",
    "samples_pmd_vs_reward",
    "mean_reward",
    "kl_to_reference_per_token",
    "plausible_share",
    "distinct_1",
    "distinct_2",
    "entropy_per_token",
)
REFERENCE = "reference (SFT)"


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def audit_policy(policy, tokenizer, reference, scorer, rm_tokenizer, pairs, targets, config, seed):
    """The metrics of one policy (module docs) and its implied preferences on the pairs.
    ``targets``: ``{"reward": margins, "population": logits or None}`` of ``pairs``."""
    from ..lm_experiments.commands.audit import pair_logprobs, pair_metrics
    from ..lm_experiments.evaluate.freeform import evaluate_freeform
    from ..lm_experiments.train.reward_model import score_responses

    logp = pair_logprobs(policy, tokenizer, pairs)
    vs_reward = pair_metrics(logp, targets["reward"])
    metrics = {
        "pairs_pmd_vs_reward": vs_reward["pairwise_pmd"],
        "pairs_gap_vs_reward": vs_reward["abs_preference_gap"],
        "policy_prefers_chosen": vs_reward["policy_prefers_chosen"],
    }
    if targets["population"] is not None:
        vs_population = pair_metrics(logp, targets["population"])
        metrics["pairs_pmd_vs_population"] = vs_population["pairwise_pmd"]
        metrics["pairs_gap_vs_population"] = vs_population["abs_preference_gap"]
    conversations = []
    for pair in pairs:
        if list(pair.messages) not in conversations:
            conversations.append(list(pair.messages))
    conversations = conversations[: config.audit.prompts]

    def reward(i: int, text: str) -> float:
        return float(score_responses(scorer, rm_tokenizer, conversations[i], [text])[0])

    sampled = evaluate_freeform(
        policy, tokenizer, conversations, reward, samples=config.audit.samples,
        max_new_tokens=config.audit.max_new_tokens or config.rl.max_completion_length,
        seed=seed, reference=reference, alpha=config.audit_alpha(),
    )  # fmt: skip
    metrics["samples_pmd_vs_reward"] = sampled["pairwise_pmd"]
    for key in ("mean_reward", "kl_to_reference_per_token", "plausible_share"):
        metrics[key] = sampled[key]
    for key in ("distinct_1", "distinct_2", "entropy_per_token"):
        metrics[key] = sampled[key]
    return {"metrics": metrics, "implied": vs_reward["implied"]["policy"]}


def run_audit(config, data, folders: dict, out: Path) -> dict:
    """Audit the reference (``folders["sft"]``) and every policy (``folders["rl"][name][seed]``)
    against the reward model (``folders["reward"]``); write the audit folder ``out``."""
    import torch

    from ..lm_experiments.commands.audit import pair_reward_margins
    from ..lm_experiments.models.loading import load_model
    from ..lm_experiments.train.reward_model import load_reward_model

    pairs = data.test[: config.audit.pairs]
    population = (data.population.get("test") or [None])[: len(pairs)]
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the main process's GPU
    scorer, rm_tokenizer = load_reward_model(folders["reward"], dtype=config.dtype)
    scorer.to(device)
    margins = pair_reward_margins(scorer, rm_tokenizer, pairs)
    targets = {"reward": margins, "population": None}
    reward_model = {"test_accuracy": float(np.mean(margins > 0)), "pairs": len(pairs)}
    if None not in population:
        targets["population"] = _logit(population)
        from ..simulate.metrics import pairwise_pmd

        fit = pairwise_pmd(
            margins, np.zeros_like(margins), targets["population"], np.zeros_like(margins)
        )
        reward_model |= {
            "pmd_vs_population": fit["kl_bernoulli"],
            "gap_vs_population": fit["abs_preference_gap"],
        }
    load = dict(dtype=config.dtype, device=device)
    reference, tokenizer = load_model(str(folders["sft"]), **load)
    seed0 = config.seeds[0]
    torch.manual_seed(seed0)
    results = {
        REFERENCE: {
            seed0: audit_policy(
                reference, tokenizer, reference, scorer, rm_tokenizer, pairs, targets, config, seed0
            )
        }
    }
    for name, by_seed in folders["rl"].items():
        results[name] = {}
        for seed, folder in by_seed.items():
            policy, policy_tokenizer = load_model(str(folder), **load)
            results[name][seed] = audit_policy(
                policy,
                policy_tokenizer,
                reference,
                scorer,
                rm_tokenizer,
                pairs,
                targets,
                config,
                seed,
            )
            del policy
    summary = summarise(results, list(folders["rl"]))
    summary |= {
        "model": config.model,
        "data": config.data,
        "seeds": list(config.seeds),
        "alpha": config.audit_alpha(),
        "reward_model": reward_model,
        "population_known": targets["population"] is not None,
    }
    _write(out, summary, results, targets, pairs)
    return summary


def summarise(results: dict, methods: list[str]) -> dict:
    """Per policy and metric: the per-seed values, mean and 95% t-interval; and for every two
    methods the per-seed differences ``a - b`` with their mean and interval."""
    from ..lm_experiments.evaluate.summary import seed_summary as stats

    policies = {}
    for name, by_seed in results.items():
        seeds = sorted(by_seed)
        policies[name] = {
            metric: stats([by_seed[s]["metrics"][metric] for s in seeds])
            for metric in METRICS
            if all(metric in by_seed[s]["metrics"] for s in seeds)
        }
    paired = []
    for i, a in enumerate(methods):
        for b in methods[i + 1 :]:
            for metric in policies[a]:
                diff = np.subtract(policies[a][metric]["seeds"], policies[b][metric]["seeds"])
                paired.append({"a": a, "b": b, "metric": metric, **stats(diff.tolist())})
    return {"policies": policies, "paired": paired}


def _write(out: Path, summary: dict, results: dict, targets: dict, pairs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..lm_experiments.evaluate.freeform import implied_preference_figure

    p_reward = 1 / (1 + np.exp(-targets["reward"]))
    p_population = (
        None if targets["population"] is None else 1 / (1 + np.exp(-targets["population"]))
    )
    rows, views = [], {}
    for name, by_seed in results.items():
        implied = []
        for seed, result in sorted(by_seed.items()):
            implied += result["implied"]
            for i, p in enumerate(result["implied"]):
                row = {
                    "policy": name,
                    "seed": seed,
                    "pair": i,
                    "p_policy": p,
                    "p_reward": p_reward[i],
                }
                if p_population is not None:
                    row["p_population"] = p_population[i]
                rows.append(row)
        pmd = summary["policies"][name]["pairs_pmd_vs_reward"]["mean"]
        views[name] = {
            "implied": {"policy": implied, "reward": p_reward.tolist() * len(by_seed)},
            "pairwise_pmd": pmd,
        }
        if p_population is not None:
            views[name]["implied"]["population"] = p_population.tolist() * len(by_seed)
    table = [
        {
            "policy": name,
            "metric": metric,
            **{k: v for k, v in entry.items() if k != "seeds"},
            "n": len(entry["seeds"]),
        }
        for name, metrics in summary["policies"].items()
        for metric, entry in metrics.items()
    ]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "pairs.csv", pd.DataFrame(rows))
    atomic_write_csv(out / "summary.csv", pd.DataFrame(table))
    figure = implied_preference_figure(views)
    atomic_save_figure(out / FIGURE, figure)
    plt.close(figure)
    atomic_write_json(out / "summary.json", summary)
