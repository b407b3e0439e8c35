"""Assemble REPORT.md and a self-contained REPORT.html from the stage outputs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from .._io import atomic_write_text
from .document import MathStep, Section, render_html, render_markdown
from .lm_texts import lm_paragraphs
from .texts import DERIVATION_TEXT, EXPERIMENT_TEXT

MAX_TABLE_ROWS = 12


def _table(frame: pd.DataFrame) -> pd.DataFrame:
    """Tables in the report stay short: the full data is in the CSV beside it."""
    if len(frame) <= MAX_TABLE_ROWS:
        return frame
    step = -(-len(frame) // MAX_TABLE_ROWS)
    return frame.iloc[::step]


def _derivation_steps(path: Path) -> list[MathStep]:
    """The steps of ``derivation.json`` (as written by the theory stage)."""
    steps = json.loads(path.read_text(encoding="utf-8"))["steps"]
    return [MathStep(step["title"], step["latex"], step.get("mathml")) for step in steps]


def _theory_sections(out: Path) -> list[Section]:
    folder = out / "theory"
    if not (folder / "derivation.json").exists():
        return []
    section = Section(
        "The PM regularizer, derived by sympy",
        paragraphs=list(DERIVATION_TEXT),
        math=_derivation_steps(folder / "derivation.json"),
    )
    if (folder / "pm_check.csv").exists():
        section.tables.append(
            (
                "Numerical PM-property check: worst total-variation distance to softmax(r)",
                pd.read_csv(folder / "pm_check.csv"),
            )
        )
    return [section]


def _simulate_sections(out: Path) -> list[Section]:
    folder = out / "simulate"
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    from ..simulate.experiments import EXPERIMENTS, REPORT_TABLES

    sections = []
    order = {name: k for k, name in enumerate(EXPERIMENTS)}
    for csv in sorted(folder.glob("*.csv"), key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        name = csv.stem
        title, sentences = EXPERIMENT_TEXT.get(name, (name.replace("_", " ").capitalize(), ()))
        section = Section(f"Simulation: {title}", paragraphs=list(sentences))
        headline = summary.get(name)
        if isinstance(headline, dict) and headline:
            flat = {k: v for k, v in headline.items() if isinstance(v, int | float | str | bool)}
            if flat:
                section.tables.append(("Headline numbers", pd.DataFrame([flat])))
        frame = pd.read_csv(csv)
        if name in REPORT_TABLES:
            section.tables.append((f"Summary (from {csv.name})", REPORT_TABLES[name](frame)))
        else:
            section.tables.append((f"Data (excerpt of {csv.name})", _table(frame)))
        png = csv.with_suffix(".png")
        if png.exists():
            section.figures.append((title, png))
        sections.append(section)
    return sections


def _lm_sections(out: Path) -> list[Section]:
    folder = out / "lm"
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        return []
    summary = json.loads(summary_path.read_text())
    section = Section(
        "Language model: KL vs PM vs conditional PM", paragraphs=lm_paragraphs(summary)
    )
    from .lm_tables import lm_table

    if summary.get("methods"):
        section.tables.append(
            ("Mean [95% t-interval] over seeds (summary.json)", lm_table(summary))
        )
    for png in sorted(folder.glob("*.png")):
        section.figures.append((png.stem.replace("_", " "), png))
    return [section]


def _matched_beta_sections(out: Path) -> list[Section]:
    """The matched-beta test (``results/lm_biased_reference``), when it was run."""
    from . import matched_beta
    from .lm_tables import lm_table

    folder = out / matched_beta.FOLDER
    if not (folder / "summary.json").exists():
        return []
    summary = json.loads((folder / "summary.json").read_text())
    section = Section(
        "Language model: KL vs conditional PM at matched beta, reference against the annotators",
        paragraphs=lm_paragraphs(summary),
    )
    section.tables += [
        (
            "Prediction: each method's exact optimum given the reference",
            matched_beta.prediction_table(summary),
        ),
        ("Measurement: mean [95% t-interval] over seeds", lm_table(summary)),
        ("Paired differences a - b (per seed)", matched_beta.paired_table(summary)),
        ("Per prompt", matched_beta.prompt_table(summary)),
    ]
    for png in sorted(folder.glob("*.png")):
        section.figures.append((png.stem.replace("_", " "), png))
    return [section]


def _provenance(out: Path) -> pd.DataFrame | None:
    """Stage, when it finished and how long it ran, from ``manifest.json``."""
    path = out / "manifest.json"
    try:
        stages = json.loads(path.read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rows = [
        {
            "stage": name,
            "finished at": entry.get("finished_at", "–"),
            "seconds": entry.get("seconds", float("nan")),
        }
        for name, entry in stages.items()
        if isinstance(entry, dict) and name != "report"
    ]
    return pd.DataFrame(rows) if rows else None


def write_report(out: Path, *, quick: bool) -> dict:
    """Write ``out/REPORT.md`` and ``out/REPORT.html``; return their paths."""
    out = Path(out)
    sections = _theory_sections(out) + _simulate_sections(out)
    sections += _matched_beta_sections(out) + _lm_sections(out)
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    command = "pmrlhf reproduce" + (" --quick" if quick else "")
    intro = Section(
        "About this report",
        paragraphs=[
            f"Generated by `{command}` on {stamp}. Every number and figure below was "
            "computed by the code in this repository; a stage whose options and code had not "
            "changed since an earlier run was not run again, so the table gives when each "
            "stage's results were made (from manifest.json)."
        ],
    )
    provenance = _provenance(out)
    if provenance is not None:
        intro.tables.append(("Stages", provenance))
    title = "pmrlhf: preference collapse and preference matching"
    md = atomic_write_text(out / "REPORT.md", render_markdown(title, [intro, *sections], base=out))
    page = atomic_write_text(out / "REPORT.html", render_html(title, [intro, *sections]))
    return {"outputs": [str(md), str(page)], "sections": len(sections)}
