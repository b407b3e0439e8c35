"""``pmrlhf reproduce``: every stage in order, skipping those whose outputs are up to date.

A stage is up to date when ``manifest.json`` records the same fingerprint for it (its
options plus the source code of the layers it depends on) and its outputs still exist.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .._fingerprint import fingerprint
from .._io import atomic_write_json
from .._validation import check_choice


@dataclass(frozen=True)
class ReproduceConfig:
    """Options of the main job."""

    out: Path = Path("results")
    quick: bool = False
    seed: int = 0
    force: bool = False
    lm_model: str | None = None  # default: smollm2-135m, or tiny-llama with quick
    stages: tuple[str, ...] | None = None  # None: all
    progress: bool = True
    figures_dir: Path | None = Path("figures")  # README's figures; refreshed by full runs only
    readme: Path | None = Path("README.md")  # its results block; refreshed by full runs only


@dataclass(frozen=True)
class Stage:
    name: str
    layers: tuple[str, ...]  # subpackages whose code the outputs depend on
    run: Callable[[Path, ReproduceConfig], dict]  # returns a summary with an "outputs" list
    options: Callable[[ReproduceConfig], dict]


def _fingerprint(stage: Stage, config: ReproduceConfig) -> str:
    return fingerprint([stage.name, stage.options(config)], layers=stage.layers)


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
    table = pm_property_table(trials=20 if config.quick else 100, seed=config.seed)
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
    )
    outputs = sorted(str(p) for p in (out / "simulate").glob("*.*"))
    return {"summary": summary, "outputs": outputs}


def _lm_model(config: ReproduceConfig) -> str:
    return config.lm_model or ("tiny-llama" if config.quick else "smollm2-135m")


def _stage_lm(out: Path, config: ReproduceConfig) -> dict:
    from ..lm_experiments import reproduce_compare

    return reproduce_compare(
        out / "lm",
        model=_lm_model(config),
        seed=config.seed,
        quick=config.quick,
        progress=config.progress,
        resume=not config.force,  # an interrupted LM stage goes on with its next method
    )


def _stage_report(out: Path, config: ReproduceConfig) -> dict:
    from .figures import publish_figures
    from .writer import write_report

    summary = write_report(out, quick=config.quick)
    # Quick runs never overwrite the figures and numbers README shows: those come from full runs.
    if config.quick:
        return summary
    if config.figures_dir is not None:
        summary["published_figures"] = publish_figures(out, config.figures_dir)
    if config.readme is not None and Path(config.readme).exists():
        from .readme import update_readme

        try:
            update_readme(config.readme, out, command=f"pmrlhf reproduce --out {config.out}")
            summary["readme_updated"] = str(config.readme)
        except (FileNotFoundError, ValueError) as error:  # partial run, or no markers
            summary["readme_updated"] = f"no: {error}"
    return summary


STAGES: tuple[Stage, ...] = (
    Stage("theory", ("theory",), _stage_theory, lambda c: {"quick": c.quick, "seed": c.seed}),
    Stage(
        "simulate",
        ("theory", "simulate"),
        _stage_simulate,
        lambda c: {"quick": c.quick, "seed": c.seed},
    ),
    Stage(
        "lm",
        ("theory", "simulate", "lm_experiments"),
        _stage_lm,
        lambda c: {"quick": c.quick, "seed": c.seed, "model": _lm_model(c)},
    ),
    Stage(
        "report",
        ("report",),
        _stage_report,
        lambda c: {"quick": c.quick, "stamp": dt.datetime.now().isoformat()},
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def reproduce(config: ReproduceConfig, *, log: Callable[[str], None] = print) -> dict:
    """Run the stages of ``config`` in order; return the manifest.

    Raises
    ------
    ValueError
        An unknown stage name.
    """
    wanted = config.stages or STAGE_NAMES
    for name in wanted:
        check_choice(name, "stages", STAGE_NAMES)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("stages", {})
    for stage in STAGES:
        if stage.name not in wanted:
            continue
        fingerprint = _fingerprint(stage, config)
        previous = manifest["stages"].get(stage.name, {})
        fresh = (
            not config.force
            and stage.name != "report"
            and previous.get("fingerprint") == fingerprint
            and all(Path(p).exists() for p in previous.get("outputs", []))
        )
        if fresh:
            log(f"[{stage.name}] up to date, skipped (--force reruns)")
            continue
        log(f"[{stage.name}] running ...")
        started = dt.datetime.now()
        summary = stage.run(out, config)
        seconds = (dt.datetime.now() - started).total_seconds()
        manifest["stages"][stage.name] = {
            "fingerprint": fingerprint,
            "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": round(seconds, 2),
            "options": stage.options(config),
            **summary,
        }
        # Written after every stage: an interrupted run resumes at the first stale stage.
        manifest["config"] = {k: str(v) for k, v in asdict(config).items()}
        atomic_write_json(manifest_path, manifest)
        log(f"[{stage.name}] done in {seconds:.1f} s")
    return manifest
