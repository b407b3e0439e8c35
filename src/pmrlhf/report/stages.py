"""The stages of ``pmrlhf reproduce``, in order: theory, simulate, lm, report.

Each stage writes under ``out`` and returns a summary with an ``outputs`` list;
:mod:`.pipeline` runs them and records them in ``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._fingerprint import fingerprint
from .._io import output_files

if TYPE_CHECKING:
    from .reproduce_config import ReproduceConfig


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Path, ReproduceConfig], dict]  # returns a summary with an "outputs" list
    options: Callable[[ReproduceConfig], dict]


def stage_fingerprint(stage: Stage, config: ReproduceConfig) -> str:
    """What decides whether a stage is up to date: its name and its options."""
    return fingerprint([stage.name, stage.options(config)])


def _stage_theory(out: Path, config: ReproduceConfig) -> dict:
    from .._io import atomic_write_csv, atomic_write_text
    from ..theory import derive_pm_regularizer
    from ..theory.checks import pm_property_table

    derivation = derive_pm_regularizer()
    folder = out / "theory"
    outputs = [
        atomic_write_text(folder / "derivation.md", derivation.to_markdown()),
        atomic_write_text(folder / "derivation.tex", derivation.to_latex()),
        atomic_write_text(folder / "derivation.json", derivation.to_json()),
    ]
    table = pm_property_table(
        trials=20 if config.quick else 100, seed=config.seed, progress=config.progress
    )
    outputs.append(atomic_write_csv(folder / "pm_check.csv", table))
    ok = bool((table["passed"] == table["should_pass"]).all())
    if not ok:
        raise RuntimeError("the numerical PM-property check disagrees with the theory")
    return {
        "regularizer": str(derivation.regularizer),
        "pm_check_ok": ok,
        "outputs": [str(p) for p in outputs],
    }


def _stage_simulate(out: Path, config: ReproduceConfig) -> dict:
    from ..simulate import run_experiments

    summary = run_experiments(
        None,
        out_dir=out / "simulate",
        seed=config.seed,
        quick=config.quick,
        progress=config.progress,
        force=True,  # the stage runs every experiment: its folder is its own set, replaced
    )
    outputs = [str(p) for p in output_files(out / "simulate")]  # no temporary or lock files
    return {"summary": summary, "outputs": outputs}


def lm_model(config: ReproduceConfig) -> str:
    return config.lm_model or ("tiny-llama" if config.quick else "smollm2-135m")


def lm_seeds(config: ReproduceConfig) -> tuple[int, ...]:
    """Three seeds from ``config.seed`` on (two with ``quick``): means with intervals."""
    return tuple(range(config.seed, config.seed + (2 if config.quick else 3)))


def _stage_lm(out: Path, config: ReproduceConfig) -> dict:
    from ..lm_experiments import FIGURES, CompareConfig, quick_config, run_compare

    model, seeds = lm_model(config), lm_seeds(config)
    compare = (
        quick_config(model=model, seeds=seeds)
        if config.quick
        else CompareConfig(model=model, seeds=seeds)
    )
    # An interrupted LM stage goes on with its next unfinished (seed, method).
    summary = run_compare(compare, out / "lm", progress=config.progress, resume=not config.force)
    names = ("summary.json", "summary.csv", *FIGURES)
    return {
        "summary": {k: summary[k] for k in ("task", "model", "seeds", "compute_seconds")},
        "outputs": [str(out / "lm" / name) for name in names],
    }


def _stage_report(out: Path, config: ReproduceConfig) -> dict:
    from .figures import publish_figures
    from .writer import write_report

    summary = write_report(out, quick=config.quick)
    # Quick runs never publish (check_reproduce_config refuses it): README shows full runs.
    if config.quick:
        return summary
    if config.figures_dir is not None:
        summary["published_figures"] = publish_figures(out, config.figures_dir)
    if config.readme is not None:
        from .readme import update_readme

        try:
            update_readme(config.readme, out, command=f"pmrlhf reproduce --out {config.out}")
            summary["readme_updated"] = str(config.readme)
        except (FileNotFoundError, ValueError) as error:  # partial run, or no markers
            summary["readme_updated"] = f"no: {error}"
    return summary


STAGES: tuple[Stage, ...] = (
    Stage("theory", _stage_theory, lambda c: {"quick": c.quick, "seed": c.seed}),
    Stage("simulate", _stage_simulate, lambda c: {"quick": c.quick, "seed": c.seed}),
    Stage(
        "lm", _stage_lm, lambda c: {"quick": c.quick, "seeds": lm_seeds(c), "model": lm_model(c)}
    ),
    Stage(
        "report",
        _stage_report,
        lambda c: {"quick": c.quick, "stamp": dt.datetime.now().isoformat()},
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
