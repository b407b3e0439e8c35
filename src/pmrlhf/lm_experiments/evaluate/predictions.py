"""The theory's call before the measurement: each method's exact optimum given the trained
reference (docs/theory.md §7), scored with the metrics the trained policies will get
(docs/theory.md §5), written to ``predictions.json`` and printed before any RL step runs.

``predictions.json``::

    task, model
    references:                       # one per distinct SFT reference
      - seeds: [0, 1, ...]            # the seeds that use it (full-batch SFT: every seed)
        reference: [[pi_ref(c|x) renormalised on the candidates] per prompt]
        methods:
          NAME:
            regularizer, beta, alpha
            mean: {metric: value}     # over prompts; PREDICTED metrics and optimum_bound
            prompts: [{metric: value, distribution: [...], bound: b}, ...]
"""

from __future__ import annotations

import numpy as np

# What the optimum predicts: the preference metrics and how much of the mass it keeps on
# the candidates; ``optimum_bound`` is conditional PM's error bound (0 for KL and PM).
PREDICTED = ("tv_to_target", "pairwise_abs_gap", "pairwise_pmd", "coverage")


def optimum_scores(best, reward) -> dict:
    """The scores of an optimum ``best`` (shape (C + 1,): the candidates' mass, then
    everything else) against ``reward`` (C,): :data:`PREDICTED`, the preference metrics on
    the candidates renormalised as a trained policy's are (docs/theory.md §5)."""
    from ...simulate.metrics import pairwise_pmd_matrix, total_variation

    on = np.asarray(best[:-1], dtype=float)
    reward = np.asarray(reward, dtype=float)
    target = np.exp(reward - reward.max())
    pmd = pairwise_pmd_matrix(np.log(np.maximum(on, np.finfo(float).tiny)), reward)
    return {
        "tv_to_target": float(total_variation(target / target.sum(), on / on.sum())),
        "pairwise_abs_gap": pmd["abs_preference_gap"],
        "pairwise_pmd": pmd["kl_bernoulli"],
        "coverage": float(on.sum()),
    }


def optimum_prediction(task, optimum: dict) -> dict:
    """The scores (:func:`optimum_scores`) of one method's optimum ``{"optimum": [(C + 1,)
    per prompt], "bound": [...]}`` (:func:`~pmrlhf.lm_experiments.evaluate.optima.method_optima`)
    against the task's oracle reward: per prompt and their mean over prompts."""
    rewards = task.oracle_rewards()
    prompts = []
    for best, bound, reward in zip(optimum["optimum"], optimum["bound"], rewards, strict=True):
        on = np.asarray(best[:-1], dtype=float)
        prompts.append(
            optimum_scores(best, reward)
            | {"distribution": (on / on.sum()).tolist(), "bound": float(bound)}
        )
    mean = {key: float(np.mean([p[key] for p in prompts])) for key in PREDICTED}
    mean["optimum_bound"] = float(np.mean([p["bound"] for p in prompts]))
    return {"mean": mean, "prompts": prompts}


def reference_predictions(task, methods, optima: dict, evaluation: dict, seeds) -> dict:
    """One entry of ``predictions.json["references"]``: a reference's candidate
    distributions and every method's :func:`optimum_prediction` given it."""
    return {
        "seeds": list(seeds),
        "reference": [p["distribution"] for p in evaluation["prompts"]],
        "methods": {
            m.name: {"regularizer": m.regularizer, "beta": m.beta, "alpha": m.alpha}
            | optimum_prediction(task, optima[m.name])
            for m in methods
        },
    }


def prediction_table(entry: dict) -> str:
    """An entry of ``predictions.json["references"]`` as text, one row per method."""
    labels = ("TV target", "|pref gap|", "PMD (ours)", "coverage", "bound")
    lines = [
        f"prediction before RL (exact optima given the reference of seed(s) {entry['seeds']}, "
        "means over prompts):",
        f"{'method':<18}" + "".join(f"{label:>12}" for label in labels),
    ]
    for name, values in entry["methods"].items():
        cells = [values["mean"][key] for key in (*PREDICTED, "optimum_bound")]
        lines.append(f"{name:<18}" + "".join(f"{v:>12.3g}" for v in cells))
    return "\n".join(lines)
