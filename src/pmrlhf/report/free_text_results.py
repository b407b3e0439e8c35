"""README's free-text block: the paper's experiment on free text (``pmrlhf lm paper --config
CONFIG --out results/paper_cpu``: preference pairs -> SFT -> reward model -> RL per method
and seed -> audit), written from its audit's ``summary.json`` and its ``config.yaml``.

Free text has no exact optimum: the theory's call here is qualitative only, so the block
states it as the project's expectation, then the measurement (every policy, the reference
first), then the paired per-seed differences, each with its verdict (docs/theory.md §6, §8).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .._yaml import read_data_file
from ..lm_experiments.evaluate.summary import seed_summary
from ..lm_experiments.train.method import REFERENCE
from .document import markdown_table
from .paired_texts import verdict

FOLDER = "paper_cpu"
START = (
    "<!-- free-text:start (written by `pmrlhf reproduce --publish` from "
    f"results/{FOLDER}; do not edit by hand) -->"
)
END = "<!-- free-text:end -->"
FIGURE = "free_text_implied_preferences.png"
POPULATION_PMD = "pairs_pmd_vs_population"
COLUMNS = {
    POPULATION_PMD: "pairwise PMD vs population (ours, lower is better)",
    "pairs_pmd_vs_reward": "pairwise PMD vs reward model",
    "pairs_gap_vs_population": "pairs gap vs population",
    "mean_reward": "mean reward",
    "kl_to_reference_per_token": "KL to reference per token",
    "plausible_share": "plausible share (ours)",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
}
# The paired differences the block spells out, and whether lower is better in each.
SENTENCES = {
    POPULATION_PMD: ("pairwise PMD vs the population", True),
    "mean_reward": ("mean reward", False),
}
EXPECTATION = (
    "Free text has no exact optimum to compare with (the candidates of the matched-beta test "
    "are enumerable, these answers are not), so the theory's prediction available here is "
    "qualitative, and it is the project's expectation, not a measurement: KL at a small "
    "`beta` should collapse toward the reward model's majority preference, PM and conditional "
    "PM should keep the population's spread (docs/theory.md §2, §4, §6)."
)


def _bounds(stat: dict) -> tuple[float, float] | None:
    """``(low, high)`` of a summary entry; None when missing (null or nan: one seed)."""
    lo, hi = stat.get("low"), stat.get("high")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return None
    return lo, hi


def cell(stat: dict | None, sign: str = "") -> str:
    """``mean [low, high]`` to 3 significant digits; the mean alone without an interval."""
    if stat is None:
        return "–"
    bounds = _bounds(stat)
    text = f"{stat['mean']:{sign}.3g}"
    return text if bounds is None else f"{text} [{bounds[0]:{sign}.3g}, {bounds[1]:{sign}.3g}]"


def _order(policies: dict) -> list[str]:
    return sorted(policies, key=lambda name: name != REFERENCE)  # stable: reference first


def policy_table(summary: dict) -> pd.DataFrame:
    """Every policy (the reference first) with mean [95% t-interval] of :data:`COLUMNS`."""
    rows = []
    for name in _order(summary["policies"]):
        values = summary["policies"][name]
        rows.append({"policy": name} | {label: cell(values.get(k)) for k, label in COLUMNS.items()})
    return pd.DataFrame(rows)


def _direction(entry: dict, a: str, b: str, lower_is_better: bool) -> str:
    """The verdict of ``a - b`` by its interval's sign: "no result" when it holds 0 or is
    missing (:func:`~pmrlhf.report.paired_texts.verdict` for a distance)."""
    bounds = _bounds(entry)
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
    """Every pair present in :data:`SENTENCES`' metrics, pair by pair, KL minus (c)PM first."""
    entries = [e for e in summary.get("paired", []) if e["metric"] in SENTENCES]
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
    for name in _order(policies)[1:]:
        if POPULATION_PMD not in policies[name]:
            continue
        diff = np.subtract(policies[name][POPULATION_PMD]["seeds"], reference["seeds"])
        entry = seed_summary(diff.tolist())
        bounds = _bounds(entry)
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
    methods = [n for n in _order(summary["policies"]) if n != REFERENCE]
    sft, reward, rl, audit = (config.get(k, {}) for k in ("sft", "reward", "rl", "audit"))
    rm = summary["reward_model"]
    text = (
        f"Model `{summary['model']}`, data `{summary['data']}`, seeds {summary['seeds']}; "
        f"methods {', '.join(methods)} (b: `beta`, a: `alpha`). SFT: {sft.get('steps')} steps "
        f"of {sft.get('batch_size')} chosen responses; reward model (Bradley-Terry, TRL's "
        f"`RewardTrainer`): {reward.get('steps')} steps of {reward.get('batch_size')} pairs; "
        f"RL (`PMRLOOTrainer`) per method and seed: {rl.get('steps')} steps of "
        f"{rl.get('prompts_per_step')} prompts x {rl.get('samples_per_prompt')} samples, at "
        f"most {rl.get('max_completion_length')} tokens. The audit scores each policy's implied "
        f"preferences on {rm['pairs']} held-out pairs and {audit.get('samples')} samples on each "
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


SATURATED = 0.05  # an implied preference below this or above 1 - this counts as saturated


def _saturated(p: pd.Series) -> pd.Series:
    return (p < SATURATED) | (p > 1 - SATURATED)


def reading_sentences(summary: dict, config: dict, pairs: pd.DataFrame | None) -> list[str]:
    """What bounds the reading of the table, from the numbers: how far RL moved each policy
    (KL to the reference per token after the run's steps) and, from ``pairs.csv``, the
    share of held-out pairs whose implied preference is saturated (within
    :data:`SATURATED` of 0 or 1), which sets the size of every policy's PMD."""
    lines = []
    moved = {
        name: values["kl_to_reference_per_token"]["mean"]
        for name, values in summary["policies"].items()
        if name != REFERENCE and "kl_to_reference_per_token" in values
    }
    if moved:
        rl = config.get("rl", {})
        lines.append(
            "How far RL moved each policy from the reference (SFT), in KL per token (seed "
            f"means, nats) after {rl.get('steps')} steps at learning rate {rl.get('lr')}: "
            + ", ".join(f"{name} {value:.3g}" for name, value in moved.items())
            + "; the differences above are those of policies near their reference."
        )
    if pairs is not None and len(pairs):
        share = _saturated(pairs["p_policy"]).groupby(pairs["policy"]).mean()
        lines.append(
            f"Share of held-out pairs whose implied preference lies within {SATURATED:g} of "
            "0 or 1 (the log-probabilities of two answers of tens of words differ by many "
            "nats), against "
            + f"{_saturated(pairs['p_population']).mean():.3g}"
            + " for the population: "
            + ", ".join(f"{name} {share[name]:.3g}" for name in _order(dict(share)))
            + "; this saturation, not the method, sets most of each policy's PMD."
        )
    return lines


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
    lines = [
        START,
        "",
        setup(summary, config or {}),
        "",
        EXPECTATION,
        "",
        "**The measurement** (mean [95% t-interval] over seeds; the mean alone where there "
        "is no interval, e.g. one seed; PMD: lower is closer):",
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
        f"![Implied preferences of each policy against the population and the reward model]"
        f"(figures/{FIGURE})",
        "",
        END,
    ]
    return "\n".join(lines)
