"""README's free-text block: the paper's experiment on free text (``pmrlhf lm paper --config
CONFIG --out results/paper_cpu``: preference pairs -> SFT -> reward model -> RL per method
and seed -> audit), written from its audit's ``summary.json``, ``pairs.csv`` and its
``config.yaml``.

The theory comes first (:mod:`.free_text_theory`): what each ``alpha`` makes plausible, and
each method's exact optimum on the held-out pairs given the actual reference and reward
model (docs/theory.md §4). Then the measurement (every policy, the reference first, with
each policy's distance to its own optimum), then the paired per-seed differences, each with
its verdict (docs/theory.md §8), then what bounds the reading.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._yaml import read_data_file
from ..lm_experiments.evaluate.summary import seed_summary
from ..lm_experiments.train.method import REFERENCE
from .document import markdown_table
from .free_text_reading import interval_bounds, reading_sentences, reference_first
from .free_text_theory import alpha_sentence, alpha_table, prediction_sentences, prediction_table
from .paired_texts import verdict

FOLDER = "paper_cpu"
START = (
    "<!-- free-text:start (written by `pmrlhf reproduce --publish` from "
    f"results/{FOLDER}; do not edit by hand) -->"
)
END = "<!-- free-text:end -->"
FIGURE = "free_text_implied_preferences.png"
CURVES = "free_text_training_curves.png"
POPULATION_PMD = "pairs_pmd_vs_population"
COLUMNS = {
    POPULATION_PMD: "pairwise PMD vs population (ours, lower is better)",
    "pairs_pmd_vs_reward": "pairwise PMD vs reward model",
    "pairs_gap_vs_population": "pairs gap vs population",
    "pairs_gap_vs_optimum": "pairs gap to own optimum",
    "mean_reward": "mean reward",
    "kl_to_reference_per_token": "KL to reference per token",
    "plausible_share": "plausible share (ours)",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
}
# The paired differences the block spells out, and whether lower is better in each.
SENTENCES = {
    POPULATION_PMD: ("pairwise PMD vs the population", True),
    "pairs_gap_vs_population": ("pairs gap vs the population", True),
    "mean_reward": ("mean reward", False),
}


def cell(stat: dict | None, sign: str = "") -> str:
    """``mean [low, high]`` to 3 significant digits; the mean alone without an interval."""
    if stat is None:
        return "–"
    bounds = interval_bounds(stat)
    text = f"{stat['mean']:{sign}.3g}"
    return text if bounds is None else f"{text} [{bounds[0]:{sign}.3g}, {bounds[1]:{sign}.3g}]"


def policy_table(summary: dict) -> pd.DataFrame:
    """Every policy (the reference first) with mean [95% t-interval] of :data:`COLUMNS`."""
    rows = []
    for name in reference_first(summary["policies"]):
        values = summary["policies"][name]
        rows.append({"policy": name} | {label: cell(values.get(k)) for k, label in COLUMNS.items()})
    return pd.DataFrame(rows)


def _direction(entry: dict, a: str, b: str, lower_is_better: bool) -> str:
    """The verdict of ``a - b`` by its interval's sign: "no result" when it holds 0 or is
    missing (:func:`~pmrlhf.report.paired_texts.verdict` for a distance)."""
    bounds = interval_bounds(entry)
    text = verdict({"ci95": bounds or (None, None)}, a, b)
    if lower_is_better or bounds is None or bounds[0] <= 0 <= bounds[1]:
        return text
    higher = a if bounds[0] > 0 else b
    side = "above" if bounds[0] > 0 else "below"
    return f"{higher} has the higher value (the interval lies {side} 0)"


def paired_sentence(entry: dict) -> str:
    """``a - b`` in a metric of :data:`SENTENCES`, paired per seed, with its verdict."""
    label, lower_is_better = SENTENCES[entry["metric"]]
    a, b = entry["a"], entry["b"]
    return (
        f"{a} minus {b} in {label}: {cell(entry, '+')} (paired over {len(entry['seeds'])} "
        f"seed(s)): {_direction(entry, a, b, lower_is_better)}."
    )


def _pair_rank(entry: dict) -> int:
    """KL against (c)PM first (the paper's comparison), then any other pair."""
    return 0 if entry["a"].startswith("KL") and "PM" in entry["b"] else 1


def paired_sentences(summary: dict) -> list[str]:
    """Every two methods in :data:`SENTENCES`' metrics, pair by pair, KL minus (c)PM first
    (each method minus the reference: :func:`reference_sentences`)."""
    entries = [
        e
        for e in summary.get("paired", [])
        if e["metric"] in SENTENCES and REFERENCE not in (e["a"], e["b"])
    ]
    pairs = list(dict.fromkeys((e["a"], e["b"]) for e in entries))  # in the summary's order
    entries.sort(
        key=lambda e: (
            _pair_rank(e),
            pairs.index((e["a"], e["b"])),
            list(SENTENCES).index(e["metric"]),
        )
    )
    return [paired_sentence(e) for e in entries]


def reference_sentences(summary: dict) -> list[str]:
    """Each method minus the reference (SFT) in pairwise PMD vs the population, paired per
    seed; first, where an interval lies above 0, that the reference itself is closer to the
    population than that method (a baseline that beats a method is said so)."""
    policies = summary["policies"]
    reference = policies.get(REFERENCE, {}).get(POPULATION_PMD)
    if reference is None:
        return []
    lines, beaten = [], []
    for name in reference_first(policies)[1:]:
        if POPULATION_PMD not in policies[name]:
            continue
        diff = np.subtract(policies[name][POPULATION_PMD]["seeds"], reference["seeds"])
        entry = seed_summary(diff.tolist())
        bounds = interval_bounds(entry)
        if bounds is not None and bounds[0] > 0:
            beaten.append(name)
        lines.append(
            f"{name} minus the reference (SFT) in pairwise PMD vs the population: "
            f"{cell(entry, '+')} (paired over {diff.size} seed(s)): "
            f"{_direction(entry, name, REFERENCE, True)}."
        )
    if beaten:
        lines.insert(
            0,
            f"The reference (SFT) itself is closer to the population than {', '.join(beaten)} "
            "(the paired interval lies above 0): RL moved these policies away from it.",
        )
    return lines


def setup(summary: dict, config: dict) -> str:
    """One paragraph: model, data, seeds, methods, each stage's steps, the reward model."""
    methods = [n for n in reference_first(summary["policies"]) if n != REFERENCE]
    sft, reward, rl, audit = (config.get(k, {}) for k in ("sft", "reward", "rl", "audit"))
    rm = summary["reward_model"]
    text = (
        f"Model `{summary['model']}`, data `{summary['data']}`, seeds {summary['seeds']}; "
        f"methods {', '.join(methods)} (b: `beta`, a: `alpha`). SFT: {sft.get('steps')} steps "
        f"of {sft.get('batch_size')} chosen responses; reward model (Bradley-Terry, TRL's "
        f"`RewardTrainer`): {reward.get('steps')} steps of {reward.get('batch_size')} pairs; "
        f"RL (`PMRLOOTrainer`) per method and seed: {rl.get('steps')} steps of "
        f"{rl.get('prompts_per_step')} prompts x {rl.get('samples_per_prompt')} samples, at "
        f"most {rl.get('max_completion_length')} tokens, learning rate {rl.get('lr')}. "
        f"The audit scores each policy's implied preferences on {rm['pairs']} held-out pairs "
        f"and {audit.get('samples')} samples on each "
        f"of {audit.get('prompts')} held-out prompts (plausible: reference probability above "
        f"alpha {summary['alpha']:g}). The reward model's held-out accuracy is "
        f"{rm['test_accuracy']:.3g}"
    )
    if summary.get("population_known") and rm.get("pmd_vs_population") is not None:
        text += (
            f"; its pairwise PMD against the population is {rm['pmd_vs_population']:.3g} "
            f"(pairs gap {rm['gap_vs_population']:.3g})"
        )
    return text + "."


def free_text_block(results: Path) -> str:
    """The Markdown between :data:`START` and :data:`END`, from ``results/paper_cpu``.

    Raises
    ------
    FileNotFoundError
        ``results`` lacks ``paper_cpu/audit/summary.json``.
    """
    folder = Path(results) / FOLDER
    path = folder / "audit" / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    summary = json.loads(path.read_text())
    config_path = folder / "config.yaml"
    config = read_data_file(config_path, name="config") if config_path.exists() else {}
    pairs_path = folder / "audit" / "pairs.csv"
    pairs = pd.read_csv(pairs_path) if pairs_path.exists() else None
    theory = []
    if "optima" in summary:  # audits written before the optima were added have none
        theory = [
            "**Choosing alpha** (the reference's token probabilities on the held-out "
            "responses; cPM's optimum keeps the log-odds of the tokens at or below alpha):",
            "",
            markdown_table(alpha_table(summary)),
            "",
            alpha_sentence(summary),
            "",
            "**The theory's prediction** (each method's exact optimum on the held-out pairs "
            "given this reference and reward model, `pi*(y) ∝ w(y) exp(r(y) / beta)`: it "
            "implies `sigma((r(a) - r(b)) / beta + log w(a) - log w(b))`, with `log w` the "
            "reference's log-probability for KL and that of its implausible tokens for cPM; "
            "computed, not sampled; docs/theory.md §4):",
            "",
            markdown_table(prediction_table(summary)),
            "",
            *[f"{line}\n" for line in prediction_sentences(summary)],
        ]
    lines = [
        START,
        "",
        setup(summary, config or {}),
        "",
        *theory,
        "**The measurement** (mean [95% t-interval] over seeds; the mean alone where there "
        "is no interval, e.g. one seed; PMD: lower is closer; gap to own optimum: the mean "
        "|p_policy - p_optimum| over the pairs, bounded in [0, 1], ours):",
        "",
        markdown_table(policy_table(summary)),
        "",
        "**Paired differences** (a - b per seed, mean [95% t-interval]):",
        "",
        *(
            [f"- {s}" for s in paired_sentences(summary) + reference_sentences(summary)]
            or ["- none: this run has fewer than two policies."]
        ),
        "",
        *[f"{line}\n" for line in reading_sentences(summary, config or {}, pairs)],
        f"![Implied preferences of each method's optimum and trained policy against the "
        f"population and the reward model](figures/{FIGURE})",
        "",
        f"![Reward and each method's own penalty per RL step](figures/{CURVES})",
        "",
        END,
    ]
    return "\n".join(lines)
