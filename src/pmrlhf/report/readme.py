"""README's results block, written from a full run's outputs (never by hand).

``README.md`` holds the block between :data:`START` and :data:`END`; ``pmrlhf reproduce
--publish`` (full runs only) replaces it with :func:`results_block` of its results folder, so
every number README shows comes from the last published full run, with the command and date
that made it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from .._io import atomic_write_text
from ..errors import PmrlhfUserError
from . import free_text_results, matched_beta
from .document import markdown_table
from .lm_tables import lm_setup, lm_table
from .lm_texts import lm_paragraphs

START = "<!-- results:start (written by `pmrlhf reproduce`; do not edit by hand) -->"
END = "<!-- results:end -->"


def _lm_part(folder: Path) -> list[str]:
    summary = json.loads((folder / "summary.json").read_text())
    return [
        "![KL vs PM vs conditional PM on a real language model](figures/lm_compare.png)",
        "",
        lm_setup(summary),
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
    folders = sorted(
        p.parent
        for p in results.glob("lm_*/summary.json")
        if p.parent.name != matched_beta.FOLDER
        and p.parent not in matched_beta.held_out_folders(results)
    )
    if not folders:
        return []
    lines = [
        f"Further tasks, each from `pmrlhf lm compare --task TASK --out {results.name}/lm_NAME`:",
        "",
    ]
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        lines += [
            f"**`{folder.name}`.** " + lm_setup(summary),
            "",
            markdown_table(lm_table(summary)),
            "",
            *[p + "\n" for p in lm_paragraphs(summary)[1:]],
        ]
    return lines


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
        "parentheses the reduction relative to KL-RLHF at the same `beta` (negative: worse; "
        "conditional PM's weight jumps from pi_ref to 1 at alpha, so a threshold above the "
        "reference's probability of plausible tokens damps them by that whole probability, "
        "more than KL does: docs/theory.md §4, 'The threshold is a cliff'):",
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
    """Rewrite README's generated blocks from ``results`` (atomically): the results block
    (:func:`results_block`), the matched-beta block
    (:func:`~pmrlhf.report.matched_beta.matched_beta_block`) and the free-text block
    (:func:`~pmrlhf.report.free_text_results.free_text_block`), each where its results exist;
    a block whose results are missing is left as it was.

    Raises
    ------
    ValueError
        README has neither block (markers missing or out of order).
    FileNotFoundError
        ``results`` holds the results of neither block.
    """
    readme = Path(readme)
    text = readme.read_text()
    blocks = (
        (START, END, lambda: results_block(results, command=command)),
        (matched_beta.START, matched_beta.END, lambda: matched_beta.matched_beta_block(results)),
        (
            free_text_results.START,
            free_text_results.END,
            lambda: free_text_results.free_text_block(results),
        ),
    )
    written, missing, present = 0, [], 0
    for start_marker, end_marker, make in blocks:
        start, end = text.find(start_marker), text.find(end_marker)
        if start < 0 or end < start:
            continue  # this README does not show that block
        present += 1
        try:
            block = make()
        except FileNotFoundError as error:
            missing.append(str(error))
            continue
        text = text[:start] + block + text[end + len(end_marker) :]
        written += 1
    if not present:
        raise PmrlhfUserError(f"readme {readme} has no results block ({START!r} ... {END!r})")
    if not written:
        raise FileNotFoundError("; ".join(missing))
    return atomic_write_text(readme, text)
