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

The theory's prediction comes first (:mod:`.paper_optima`): each method's exact optimum
given the actual reference and reward model implies ``sigma((r(a) - r(b)) / beta + log w(a)
- log w(b))`` on a pair (docs/theory.md §4), scored like a policy (``summary["optima"]``,
with the reference's distance to it), and each trained policy's distance to its own optimum
(``pairs_pmd_vs_optimum``, ``pairs_gap_vs_optimum``); ``reference_tokens`` describes what
each threshold ``alpha`` makes plausible in the reference's token probabilities on the
pairs. ``training`` holds each run's reward and own penalty per RL step.

The reference is audited at every seed (its pair metrics are the same each time, its samples
are drawn with the seed its policies are sampled with). Across seeds each policy gets a mean
and 95% t-interval per metric (:func:`~pmrlhf.lm_experiments.evaluate.summary.t_interval`);
every two methods, and every method against the reference, their per-seed differences with
mean and interval. Written atomically in the audit folder: ``summary.json``,
``summary.csv``, ``pairs.csv`` (every pair's implied preferences, the optimum's beside the
policy's), ``implied_preferences.png`` / ``.pdf`` (the histograms, the paper's figure: the
optima in the first row, the trained policies below, the reference last) and
``training_curves.png`` / ``.pdf``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from .._io import atomic_save_figure, atomic_write_csv, atomic_write_json
from .paper_curves import training_curves, training_figure
from .paper_optima import distance_to_optimum, pair_scores, predict

FIGURE = "implied_preferences.png"
CURVES = "training_curves.png"
METRICS = (
    "pairs_pmd_vs_reward",
    "pairs_gap_vs_reward",
    "pairs_pmd_vs_population",
    "pairs_gap_vs_population",
    "policy_prefers_chosen",
    "pairs_pmd_vs_optimum",
    "pairs_gap_vs_optimum",
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
    return logit(np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6))


def audit_policy(
    policy, tokenizer, reference, scorer, rm_tokenizer, pairs, targets, config, seed,
    optimum=None, logodds=None,
):  # fmt: skip
    """The metrics of one policy (module docs) and its implied log-odds on the pairs.
    ``targets``: ``{"reward": margins, "population": logits or None}`` of ``pairs``;
    ``optimum``: the implied log-odds of the policy's own optimum, or None (the reference);
    ``logodds``: the policy's ``log pi(a) - log pi(b)`` on the pairs where already known
    (the reference's, from the prediction's pass), else computed here."""
    from ..lm_experiments.evaluate.freeform import evaluate_freeform
    from ..lm_experiments.evaluate.pairs import pair_logprobs
    from ..lm_experiments.train.reward_model import score_responses

    if logodds is None:
        logp = pair_logprobs(policy, tokenizer, pairs)
        logodds = logp[:, 0] - logp[:, 1]
    metrics = pair_scores(logodds, targets)
    if optimum is not None:
        metrics |= distance_to_optimum(logodds, optimum)
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
    return {"metrics": metrics, "logodds": logodds}


def run_audit(config, data, folders: dict, out: Path) -> dict:
    """Audit the reference (``folders["sft"]``) and every policy (``folders["rl"][name][seed]``)
    against the reward model (``folders["reward"]``); write the audit folder ``out``."""
    import torch

    from ..lm_experiments.evaluate.pairs import pair_reward_margins
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
        fit = pair_scores(margins, targets)  # the reward model scored as a policy
        reward_model |= {
            "pmd_vs_population": fit["pairs_pmd_vs_population"],
            "gap_vs_population": fit["pairs_gap_vs_population"],
        }
    load = dict(dtype=config.dtype, device=device)
    reference, tokenizer = load_model(str(folders["sft"]), **load)
    methods = {m.name: m for m in config.parsed_methods()}
    prediction = predict(
        list(methods.values()), reference, tokenizer, pairs, targets, alpha=config.audit_alpha()
    )
    optima = prediction["optima"]
    # The reference at every seed: its pair metrics are the same each time (teacher
    # forcing), its sampled ones use the seed the policies of that seed are sampled with,
    # so every method - reference difference is paired per seed.
    results = {REFERENCE: {}}
    for seed in config.seeds:
        torch.manual_seed(seed)
        results[REFERENCE][seed] = audit_policy(
            reference, tokenizer, reference, scorer, rm_tokenizer, pairs, targets, config, seed,
            logodds=prediction["reference_logodds"],
        )  # fmt: skip
    for name, by_seed in folders["rl"].items():
        results[name] = {}
        for seed, folder in by_seed.items():
            policy, policy_tokenizer = load_model(str(folder), **load)
            torch.manual_seed(seed)
            results[name][seed] = audit_policy(
                policy, policy_tokenizer, reference, scorer, rm_tokenizer, pairs, targets,
                config, seed, optimum=optima[name]["logodds"],
            )  # fmt: skip
            del policy
    summary = summarise(results, list(folders["rl"]))
    reference_logodds = prediction["reference_logodds"]
    summary["optima"] = {
        name: optimum["metrics"] | _prefixed(
            "reference_", distance_to_optimum(reference_logodds, optimum["logodds"])
        )
        for name, optimum in optima.items()
    }  # fmt: skip
    summary |= {
        "model": config.model,
        "data": config.data,
        "seeds": list(config.seeds),
        "alpha": config.audit_alpha(),
        "reference_tokens": prediction["reference_tokens"],
        "reward_model": reward_model,
        "population_known": targets["population"] is not None,
        "training": training_curves(folders["rl"]),
    }
    _write(out, summary, results, targets, optima)
    return summary


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {prefix + key: value for key, value in metrics.items()}


def summarise(results: dict, methods: list[str]) -> dict:
    """Per policy and metric: the per-seed values, mean and 95% t-interval; and for every two
    methods, and for every method against the reference, the per-seed differences ``a - b``
    (paired by seed) with their mean and interval."""
    from ..lm_experiments.evaluate.summary import seed_summary as stats

    policies = {}
    for name, by_seed in results.items():
        seeds = sorted(by_seed)
        policies[name] = {
            metric: stats([by_seed[s]["metrics"][metric] for s in seeds])
            for metric in METRICS
            if all(metric in by_seed[s]["metrics"] for s in seeds)
        }
    comparisons = [(a, b) for i, a in enumerate(methods) for b in methods[i + 1 :]]
    comparisons += [(a, REFERENCE) for a in methods if REFERENCE in results]
    paired = []
    for a, b in comparisons:
        for metric in policies[a]:
            if metric not in policies[b]:
                continue
            diff = np.subtract(policies[a][metric]["seeds"], policies[b][metric]["seeds"])
            paired.append({"a": a, "b": b, "metric": metric, **stats(diff.tolist())})
    return {"policies": policies, "paired": paired}


def _write(out: Path, summary: dict, results: dict, targets: dict, optima: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..lm_experiments.evaluate.freeform import implied_preference_figure

    p_reward = expit(targets["reward"])
    p_population = None if targets["population"] is None else expit(targets["population"])
    rows, predicted, measured = [], {}, {}
    for name, by_seed in results.items():
        implied = []
        for seed, result in sorted(by_seed.items()):
            p_policy = expit(result["logodds"])
            implied += p_policy.tolist()
            for i, p in enumerate(p_policy):
                row = {"policy": name, "seed": seed, "pair": i, "p_policy": p}
                row["p_optimum"] = expit(optima[name]["logodds"][i]) if name in optima else None
                row["p_reward"] = p_reward[i]
                if p_population is not None:
                    row["p_population"] = p_population[i]
                rows.append(row)
        n = len(by_seed)
        label = f"{name}\ntrained, {n} seed{'s' if n > 1 else ''} pooled"
        if name == REFERENCE:  # teacher forcing: the same implied preferences at every seed
            implied, n, label = p_policy.tolist(), 1, REFERENCE
        measured[label] = _view(implied, p_reward, p_population, n, summary["policies"][name])
        if name in optima:
            predicted[f"{name}\noptimum (theory)"] = _view(
                expit(optima[name]["logodds"]).tolist(), p_reward, p_population, 1,
                summary["optima"][name],
            )  # fmt: skip
    # Rows: the optima (theory), the trained policies below them, the reference last.
    views = predicted | {k: v for k, v in measured.items() if k != REFERENCE}
    views[REFERENCE] = measured[REFERENCE]
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
    figure = implied_preference_figure(views, columns=max(len(predicted), 1))
    atomic_save_figure(out / FIGURE, figure)
    plt.close(figure)
    figure = training_figure(summary["training"])
    atomic_save_figure(out / CURVES, figure)
    plt.close(figure)
    atomic_write_json(out / "summary.json", summary)


def _view(implied, p_reward, p_population, copies: int, metrics: dict) -> dict:
    """One histogram panel: the implied preferences beside the reward's (and population's),
    repeated ``copies`` times to match pooled seeds."""
    pmd = metrics["pairs_pmd_vs_reward"]
    view = {
        "implied": {"policy": implied, "reward": p_reward.tolist() * copies},
        "pairwise_pmd": pmd["mean"] if isinstance(pmd, dict) else pmd,
    }
    if p_population is not None:
        view["implied"]["population"] = p_population.tolist() * copies
    return view
