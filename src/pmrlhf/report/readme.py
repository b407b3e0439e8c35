"""README's results block, written from a full run's outputs (never by hand).

``README.md`` holds the block between :data:`START` and :data:`END`; ``pmrlhf reproduce
--publish`` (full runs only) replaces it with :func:`results_block` of its results folder, so
every number README shows comes from the last published full run, with the command and date
that made it.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path

import pandas as pd

from .._io import atomic_write_text
from ..errors import PmrlhfUserError
from .document import markdown_table
from .lm_texts import lm_paragraphs

START = "<!-- results:start (written by `pmrlhf reproduce`; do not edit by hand) -->"
END = "<!-- results:end -->"

LM_COLUMNS = {
    "pairwise_pmd": "pairwise PMD (ours)",
    "pairwise_abs_gap": "abs pref gap",
    "tv_to_target": "TV to target",
    "minority_mass": "minority mass",
    "coverage": "mass on candidates",
    "mean_reward": "mean reward",
    "tv_to_optimum": "TV to its optimum",
}
OPTIMUM_COLUMNS = {
    "optimum_pairwise_pmd": "optimum's PMD",
    "optimum_coverage": "optimum's coverage",
    "optimum_tv_to_target": "optimum's TV to target",
}


def lm_table(summary: dict) -> pd.DataFrame:
    """One row per method: mean and 95% t-interval of each metric, the optimum beside."""
    rows = []
    for name, values in summary["methods"].items():
        row = {"method": name, "beta": _cell(values["beta"]), "alpha": _cell(values["alpha"])}
        for key, label in LM_COLUMNS.items():
            row[label] = _with_interval(values, key)
        for key, label in OPTIMUM_COLUMNS.items():
            row[label] = _cell(values["mean"].get(key))
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(value, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)


def _with_interval(values: dict, key: str) -> str:
    if key not in values["mean"]:
        return "–"
    mean = values["mean"][key]
    lo, hi = values["ci95"][key]
    if mean is None:
        return "n/a"
    if lo is None or hi is None or lo != lo:
        return f"{mean:.3g}"
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}]"


def _run_times(summary: dict) -> str:
    """The spread of one method's run for one seed (SFT excluded): a run far above the
    median was slowed by other work on the machine, which the total alone hides."""
    runs = [
        s
        for name, values in summary.get("run_seconds", {}).items()
        if summary["methods"].get(name, {}).get("regularizer")
        for s in values
    ]
    if not runs:
        return ""
    return (
        f"; one RL run (a method for a seed) took a median {statistics.median(runs):.0f} s "
        f"(min-max {min(runs):.0f}-{max(runs):.0f} s)"
    )


def _lm_setup(summary: dict) -> str:
    config = summary["config"]
    rl, sft = config["rl"], config["sft"]
    return (
        f"Model `{summary['model']}`, task `{summary['task']}`, seeds {summary['seeds']}: per "
        f"seed, SFT on the candidates ({sft['steps']} full-batch steps), then "
        f"{rl['steps']} RLOO steps per method (every prompt x {rl['samples_per_prompt']} "
        f"samples per step, completions of at most {summary['max_new_tokens']} tokens, lr "
        f"{rl['lr']:g} decaying to {rl['lr_final']:g} of it, oracle reward on token ids"
        f"{_estimator(rl)}). "
        f"{summary['compute_seconds'] / 60:.1f} minutes of compute on "
        f"{summary['torch_threads']} torch thread(s){_run_times(summary)}. "
        "Mean [95% t-interval] over seeds; "
        "'optimum' columns: each method's exact optimum given the trained reference:"
    )


def _lm_part(folder: Path) -> list[str]:
    summary = json.loads((folder / "summary.json").read_text())
    return [
        "![KL vs PM vs conditional PM on a real language model](figures/lm_compare.png)",
        "",
        _lm_setup(summary),
        "",
        markdown_table(lm_table(summary)),
        "",
        *[p + "\n" for p in lm_paragraphs(summary)[1:]],
        "![Distance to each method's optimum over RL steps](figures/lm_convergence.png)",
        "",
    ]


def _other_tasks_part(results: Path) -> list[str]:
    """Every further comparison in ``results/lm_<name>/`` (``pmrlhf lm compare --out``
    there), each with its own table and generated prose; nothing when there is none."""
    folders = sorted(p.parent for p in results.glob("lm_*/summary.json"))
    if not folders:
        return []
    lines = [
        f"Further tasks, each from `pmrlhf lm compare --task TASK --out {results.name}/lm_NAME`:",
        "",
    ]
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        lines += [
            f"**`{folder.name}`.** " + _lm_setup(summary),
            "",
            markdown_table(lm_table(summary)),
            "",
            *[p + "\n" for p in lm_paragraphs(summary)[1:]],
        ]
    return lines


def _estimator(rl: dict) -> str:
    if rl.get("penalty_gradient") == "expected":
        return ", the penalty's exact expectation over the vocabulary at each sampled history"
    if rl.get("penalty_gradient") == "sampled":
        return ", the sampled tokens' penalty in the return"
    return ""


def _grid_part(folder: Path) -> list[str]:
    frame = pd.read_csv(folder / "beta_alpha_grid.csv")
    rows = []
    for beta, part in frame.groupby("beta"):
        row = {"beta": f"{beta:g}"}
        for _, cell in part.iterrows():
            label = cell.method if pd.isna(cell.alpha) else f"{cell.method} alpha {cell.alpha:g}"
            value = f"{cell.pairwise_pmd:.3g}"
            if cell.method != "KL-RLHF":
                value += f" ({cell.pmd_improvement_over_kl_pct:.0f}%)"
            row[label] = value
        rows.append(row)
    settings = json.loads((folder / "summary.json").read_text())["experiments"]["beta_alpha_grid"]
    return [
        "Pairwise PMD of the closed-form token-level optima on every meaningful pair of "
        f"{settings['config']['prompts']} toy-language prompts (`beta_alpha_grid`), in "
        "parentheses the reduction relative to KL-RLHF at the same `beta` (negative: worse):",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]


def results_block(results: Path, *, command: str, date: str | None = None) -> str:
    """The Markdown between the markers: LM results (the default task, then any further
    comparison stored in ``results/lm_<name>/``), then the simulated beta x alpha table.

    Raises
    ------
    FileNotFoundError
        ``results`` lacks ``lm/summary.json`` or ``simulate/beta_alpha_grid.csv``.
    """
    results = Path(results)
    date = date or dt.date.today().isoformat()
    lines = [START, "", f"*Produced by `{command}` on {date}.*", ""]
    lines += _lm_part(results / "lm")
    lines += _other_tasks_part(results)
    lines += _grid_part(results / "simulate")
    lines.append(END)
    return "\n".join(lines)


def update_readme(readme: Path, results: Path, *, command: str) -> Path:
    """Replace README's results block with :func:`results_block` (atomically).

    Raises
    ------
    ValueError
        README lacks the markers, or has them out of order.
    """
    readme = Path(readme)
    text = readme.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise PmrlhfUserError(f"readme {readme} has no results block ({START!r} ... {END!r})")
    block = results_block(results, command=command)
    return atomic_write_text(readme, text[:start] + block + text[end + len(END) :])
