"""README's matched-beta block: the paper's claim tested on a language model, from a
comparison of KL and conditional PM at the same ``beta`` on a task whose SFT reference
disagrees with the annotators (``pmrlhf lm compare --task biased_reference --methods kl:1
cpm:1:0.1 cpm:1:0.2 --out results/lm_biased_reference``). The theory's prediction (each
method's exact optimum given the trained reference, docs/theory.md §7) comes first, then
the measurement, then the paired differences, overall and per prompt (docs/theory.md §8)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..lm_experiments.train.method import REFERENCE
from .document import markdown_table
from .lm_tables import lm_setup, lm_table
from .lm_texts import lm_paragraphs
from .paired_texts import LABELS, verdict

FOLDER = "lm_biased_reference"
# Held-out checks of the same design (e.g. ``examples/tasks/matched_beta_two_prompts.yaml``
# run with ``--out results/lm_matched_beta_two_prompts``): shown after the main test.
HELD_OUT = "lm_matched_beta_*"
START = (
    "<!-- matched-beta:start (written by `pmrlhf reproduce --publish` from "
    f"results/{FOLDER}; do not edit by hand) -->"
)
END = "<!-- matched-beta:end -->"
PREDICTED = {
    "tv_to_target": "TV to target",
    "pairwise_abs_gap": "abs pref gap",
    "pairwise_pmd": "pairwise PMD (ours)",
    "coverage": "mass on candidates",
    "bound": "cPM optimum's error bound",
}


def _ci(mean: float, interval) -> str:
    lo, hi = interval
    if lo is None or hi is None or lo != lo:
        return f"{mean:+.3g}"
    return f"{mean:+.3g} [{lo:+.3g}, {hi:+.3g}]"


def prediction_table(summary: dict) -> pd.DataFrame:
    """Per RL method, its exact optimum's scores given the reference (seed means): what
    ``predictions.json`` held before the first RL step."""
    rows = []
    for name, values in summary["methods"].items():
        if values["regularizer"] is None:
            continue
        mean = values["mean"]
        row = {"method": name}
        for key, label in PREDICTED.items():
            row[label] = f"{mean['optimum_' + key]:.3g}"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(summary: dict) -> pd.DataFrame:
    """Every matched-beta pair and metric: predicted, measured (paired over seeds), the
    verdict, and the interval over prompts."""
    rows = []
    for entry in summary.get("paired", []):
        if not entry.get("matched_beta"):
            continue
        across = entry.get("across_prompts", {})
        rows.append(
            {
                "a - b": f"{entry['a']} - {entry['b']}",
                "metric": LABELS[entry["metric"]],
                "predicted": f"{entry['predicted']:+.3g}",
                "measured, paired over seeds": _ci(entry["mean"], entry["ci95"]),
                "verdict": verdict(entry, entry["a"], entry["b"]),
                "over prompts (seed means)": _ci(across["mean"], across["ci95"]) if across else "–",
            }
        )
    return pd.DataFrame(rows)


def prompt_table(summary: dict) -> pd.DataFrame:
    """Per prompt: the target, the reference, and each method's TV to the target as
    predicted by its optimum and as measured (seed means), then the matched-beta paired
    differences in TV to the target with their intervals over seeds."""
    methods = {n: v for n, v in summary["methods"].items() if v["regularizer"] is not None}
    reference = summary["methods"][REFERENCE]["prompts"]
    pairs = [
        p for p in summary.get("paired", []) if p["metric"] == "tv_to_target" and p["matched_beta"]
    ]
    rows = []
    for j, prompt in enumerate(summary["prompts"]):
        row = {
            "prompt": f"{j + 1}: " + " / ".join(prompt["candidates"]),
            "target": " / ".join(f"{t:.2f}" for t in prompt["target"]),
            "reference": " / ".join(f"{t:.2f}" for t in reference[j]["distribution"]),
        }
        for name, values in methods.items():
            cells = values["per_seed_prompts"][j]
            predicted = sum(c["optimum_tv_to_target"] for c in cells) / len(cells)
            row[f"{name}: TV predicted / measured"] = (
                f"{predicted:.3f} / {values['prompts'][j]['tv_to_target']:.3f}"
            )
        for pair in pairs:
            cell = pair["prompts"][j]
            row[f"{pair['a']} - {pair['b']}"] = _ci(cell["mean"], cell["ci95"])
        rows.append(row)
    return pd.DataFrame(rows)


def _setup(summary: dict, predictions: dict | None) -> str:
    shared = ""
    if predictions and len(predictions.get("references", [])) == 1:
        shared = " Every seed used the same SFT reference (full-batch SFT, trained once)."
    return lm_setup(summary).rstrip(":") + "." + shared


def matched_beta_part(folder: Path) -> list[str]:
    """The block's Markdown lines (without the markers)."""
    summary = json.loads((folder / "summary.json").read_text())
    path = folder / "predictions.json"
    predictions = json.loads(path.read_text()) if path.exists() else None
    paragraphs = lm_paragraphs(summary)
    return [
        _setup(summary, predictions),
        "",
        "**The theory's call, before training** (each method's exact optimum given the "
        "trained reference, written to `predictions.json` before the first RL step):",
        "",
        markdown_table(prediction_table(summary)),
        "",
        "**The measurement** (mean [95% t-interval] over seeds):",
        "",
        markdown_table(lm_table(summary)),
        "",
        "**Paired differences** (a - b per seed, mean [95% t-interval]; every metric is a "
        "distance to the preferences, so a positive difference means b is closer):",
        "",
        markdown_table(paired_table(summary)),
        "",
        "**Per prompt** (seed means; the last columns are paired differences in TV to the "
        "target with their 95% t-interval over seeds):",
        "",
        markdown_table(prompt_table(summary)),
        "",
        *[p + "\n" for p in paragraphs[1:]],
        "![Paired differences per prompt beside the optima's prediction]"
        "(figures/matched_beta_paired.png)",
        "",
        "![Candidate distributions of the matched-beta test](figures/matched_beta_compare.png)",
        "",
    ]


def matched_beta_block(results: Path) -> str:
    """The Markdown between :data:`START` and :data:`END`.

    Raises
    ------
    FileNotFoundError
        ``results`` lacks ``lm_biased_reference/summary.json``.
    """
    folder = Path(results) / FOLDER
    if not (folder / "summary.json").exists():
        raise FileNotFoundError(f"{folder / 'summary.json'} does not exist")
    lines = [START, "", *matched_beta_part(folder)]
    for other in held_out_folders(results):
        summary = json.loads((other / "summary.json").read_text())
        lines += [
            f"**Held-out check: `{summary['task']}`** (`{other.name}`). {lm_setup(summary)}",
            "",
            markdown_table(prediction_table(summary)),
            "",
            markdown_table(paired_table(summary)),
            "",
            markdown_table(prompt_table(summary)),
            "",
            *[p + "\n" for p in lm_paragraphs(summary)[1:]],
        ]
    return "\n".join([*lines, END])


def held_out_folders(results: Path) -> list[Path]:
    """The held-out comparisons of :data:`HELD_OUT` under ``results``, by name."""
    return sorted(p.parent for p in Path(results).glob(f"{HELD_OUT}/summary.json"))
