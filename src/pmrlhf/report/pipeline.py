"""``pmrlhf reproduce``: every stage in order, skipping those whose outputs are up to date.

A stage is up to date when ``manifest.json`` records the same fingerprint of its options
for it (:mod:`pmrlhf._fingerprint`) and its outputs still exist; ``force`` reruns it.

Every option is checked before anything is written; the output folder is locked for the run
(:func:`pmrlhf._lock.run_lock`); a damaged ``manifest.json`` stops the run with a message
naming it, unless ``force`` is set, which replaces it.

Everything is written under ``out``. Refreshing the repository's own ``figures/`` and
README's results block is a separate, explicit step (``figures_dir`` and ``readme``;
``pmrlhf reproduce --publish``, ``make publish``): a newcomer's checkout stays clean.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .._fingerprint import fingerprint
from .._io import atomic_write_json, output_files, remove_stale_temp_files
from .._lock import run_lock
from .._validation import check_choice, check_out_dir, check_seed
from ..errors import PmrlhfTypeError, PmrlhfUserError


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
    # Publishing (full runs only): copy README's figures here and rewrite the results block of
    # this README. None: leave them alone (the default; `pmrlhf reproduce --publish` sets both).
    figures_dir: Path | None = None
    readme: Path | None = None


PUBLISH = {"figures_dir": Path("figures"), "readme": Path("README.md")}
"""What ``pmrlhf reproduce --publish`` sets: the repository's figures and README, relative
to the current folder (the repository root)."""


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Path, ReproduceConfig], dict]  # returns a summary with an "outputs" list
    options: Callable[[ReproduceConfig], dict]


def _fingerprint(stage: Stage, config: ReproduceConfig) -> str:
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
    )
    outputs = [str(p) for p in output_files(out / "simulate")]  # no temporary or lock files
    return {"summary": summary, "outputs": outputs}


def _lm_model(config: ReproduceConfig) -> str:
    return config.lm_model or ("tiny-llama" if config.quick else "smollm2-135m")


def _lm_seeds(config: ReproduceConfig) -> tuple[int, ...]:
    """Three seeds from ``config.seed`` on (two with ``quick``): means with intervals."""
    return tuple(range(config.seed, config.seed + (2 if config.quick else 3)))


def _stage_lm(out: Path, config: ReproduceConfig) -> dict:
    from ..lm_experiments import FIGURES, CompareConfig, quick_config, run_compare

    model, seeds = _lm_model(config), _lm_seeds(config)
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
        "lm", _stage_lm, lambda c: {"quick": c.quick, "seeds": _lm_seeds(c), "model": _lm_model(c)}
    ),
    Stage(
        "report",
        _stage_report,
        lambda c: {"quick": c.quick, "stamp": dt.datetime.now().isoformat()},
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def check_reproduce_config(config: ReproduceConfig) -> ReproduceConfig:
    """Check every option of ``config``; return it with ``out`` a path and ``stages`` a tuple.

    Writes and loads nothing: the model name is checked as a string by
    :func:`pmrlhf.lm_experiments.models.resolve_name` (imported only when the LM stage runs
    or ``lm_model`` is given).

    Raises
    ------
    PmrlhfTypeError
        ``config`` is not a ``ReproduceConfig``; a flag that is not a bool; a non-int seed.
    ValueError
        An empty ``out`` or one that is a file; a negative seed; an unknown or no stage; an
        unknown model; publishing (``figures_dir`` or ``readme``) with ``quick``; a
        ``readme`` that is not a file.
    """
    if not isinstance(config, ReproduceConfig):
        raise PmrlhfTypeError(f"config must be a ReproduceConfig, got {type(config).__name__}")
    for flag in ("quick", "force", "progress"):
        if not isinstance(getattr(config, flag), bool):
            raise PmrlhfTypeError(f"{flag} must be True or False, got {getattr(config, flag)!r}")
    stages = config.stages
    if stages is not None:
        if isinstance(stages, str):
            stages = (stages,)
        stages = tuple(check_choice(name, "stages", STAGE_NAMES) for name in stages)
        if not stages:
            raise PmrlhfUserError(f"stages must name at least one of {', '.join(STAGE_NAMES)}")
    if config.lm_model is not None or "lm" in (stages or STAGE_NAMES):
        from ..lm_experiments.models import resolve_name

        resolve_name(_lm_model(config))
    if config.quick and (config.figures_dir is not None or config.readme is not None):
        raise PmrlhfUserError(
            "publishing (--publish: figures_dir, readme) needs a full run, not quick: "
            "README shows the numbers of full runs only"
        )
    if config.figures_dir is not None:
        check_out_dir(config.figures_dir, "figures_dir")
    if config.readme is not None:
        if not isinstance(config.readme, str | os.PathLike):
            raise PmrlhfTypeError(f"readme must be a path or None, got {config.readme!r}")
        if not Path(config.readme).is_file():
            raise PmrlhfUserError(
                f"readme {os.fspath(config.readme)!r} is not a file: publishing rewrites the "
                "results block of the repository's README (run --publish in its root)"
            )
    return replace(
        config, out=check_out_dir(config.out, "out"), seed=check_seed(config.seed), stages=stages
    )


def load_manifest(path, *, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Read ``manifest.json``; an absent one is empty (``{"stages": {}}``).

    A damaged one (not JSON, truncated, not a mapping with a ``stages`` mapping of
    mappings) is replaced by an empty one when ``force`` is set.

    Raises
    ------
    PmrlhfUserError
        A damaged manifest without ``force``; the message names the file and ``--force``.
    """
    path = Path(path)
    if not path.exists():
        return {"stages": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        problem = _manifest_problem(manifest)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = str(error).splitlines()[0]
    if problem is None:
        return manifest
    if force:
        log(f"{path} is damaged ({problem}); --force: starting a new manifest")
        return {"stages": {}}
    raise PmrlhfUserError(
        f"{path} is damaged ({problem}); rerun with --force to replace it and rerun every stage"
    )


def _manifest_problem(manifest) -> str | None:
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    stages = manifest.setdefault("stages", {})
    if not isinstance(stages, dict):
        return f"'stages' is a JSON {type(stages).__name__}, not an object"
    for name, entry in stages.items():
        if not isinstance(entry, dict):
            return f"stage {name!r} is a JSON {type(entry).__name__}, not an object"
        if not isinstance(entry.get("outputs", []), list):
            return f"the outputs of stage {name!r} are not a list"
    return None


def reproduce(config: ReproduceConfig, *, log: Callable[[str], None] = print) -> dict:
    """Run the stages of ``config`` in order; return the manifest.

    Every option is checked before anything is written (:func:`check_reproduce_config`).
    ``config.out`` is locked for the run and temporary files that an interrupted run left
    in it (and in its ``theory`` folder) are removed first.

    Raises
    ------
    ValueError, TypeError
        As :func:`check_reproduce_config`; a damaged manifest without ``force``
        (:func:`load_manifest`).
    FolderBusyError
        Another process is running in ``config.out``.
    """
    config = check_reproduce_config(config)
    with run_lock(config.out):
        for folder in (config.out, config.out / "theory"):
            remove_stale_temp_files(folder)
        return _reproduce_locked(config, log)


def _reproduce_locked(config: ReproduceConfig, log: Callable[[str], None]) -> dict:
    wanted = config.stages or STAGE_NAMES
    out = config.out
    manifest_path = out / "manifest.json"
    manifest = load_manifest(manifest_path, force=config.force, log=log)
    for stage in STAGES:
        if stage.name not in wanted:
            continue
        fingerprint = _fingerprint(stage, config)
        previous = manifest["stages"].get(stage.name, {})
        # One level of skipping per piece of work: the report always runs (it is cheap and
        # dated) and so does the LM stage, whose run_compare skips every (seed, method) it
        # has stored under the same options.
        fresh = (
            not config.force
            and stage.name not in ("lm", "report")
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
