"""README's results block, written from a full run's outputs (never by hand).

``README.md`` holds the block between :data:`START` and :data:`END`; a full
``pmrlhf reproduce`` replaces it with :func:`results_block` of its results folder, so every
number README shows comes from the last full run, with the command and date that made it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from .._io import atomic_write_text
from .document import markdown_table
from .texts import lm_paragraphs

START = "<!-- results:start (written by `pmrlhf reproduce`; do not edit by hand) -->"
END = "<!-- results:end -->"

LM_COLUMNS = {
    "method": "method",
    "minority_mass": "minority mass",
    "target_minority_mass": "target",
    "coverage": "mass on candidates",
    "kl_to_target": "KL to target",
    "tv_to_target": "TV to target",
    "pairwise_pmd": "pairwise PMD",
    "pmd_improvement_over_kl_pct": "PMD vs KL-RLHF, % lower",
    "mean_reward": "mean reward",
}


def _lm_part(folder: Path) -> list[str]:
    summary = json.loads((folder / "summary.json").read_text())
    table = pd.read_csv(folder / "summary.csv")[list(LM_COLUMNS)].rename(columns=LM_COLUMNS)
    table = table.astype(object).where(table.notna(), "–")  # no KL baseline for the reference
    config = summary["config"]
    methods = ", ".join(
        f"{m['name']} (beta {m['beta']:g}" + (f", alpha {m['alpha']:g})" if m["alpha"] else ")")
        for m in config["methods"]
    )
    setup = (
        f"Model `{summary['model']}`, task `{summary['task']}`, seed {summary['seed']}: SFT on "
        f"the candidates ({config['sft']['steps']} steps), then {config['rl']['steps']} RLOO "
        f"steps per method ({config['rl']['prompts_per_step']} prompts x "
        f"{config['rl']['samples_per_prompt']} samples, lr {config['rl']['lr']:g}, oracle "
        f"reward) for {methods}; candidate probabilities exact by teacher forcing; "
        f"{summary['seconds'] / 60:.1f} minutes. Means over the task's prompts:"
    )
    return [
        "![KL vs PM vs conditional PM on a real language model](figures/lm_compare.png)",
        "",
        setup,
        "",
        markdown_table(table),
        "",
        *[p + "\n" for p in lm_paragraphs(summary)[1:]],
    ]


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
    """The Markdown between the markers: LM results, then the simulated beta x alpha table.

    Raises
    ------
    FileNotFoundError
        ``results`` lacks ``lm/summary.json`` or ``simulate/beta_alpha_grid.csv``.
    """
    results = Path(results)
    date = date or dt.date.today().isoformat()
    lines = [START, "", f"*Produced by `{command}` on {date}.*", ""]
    lines += _lm_part(results / "lm")
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
        raise ValueError(f"readme {readme} has no results block ({START!r} ... {END!r})")
    block = results_block(results, command=command)
    return atomic_write_text(readme, text[:start] + block + text[end + len(END) :])
