"""``pmrlhf reproduce``: every stage in order, skipping those whose outputs are up to date.

A stage is up to date when ``manifest.json`` records the same fingerprint of its options
for it (:mod:`pmrlhf._fingerprint`) and its outputs still exist; ``force`` reruns it.
Before each stage it runs, the log shows its position among them, the time since the start
and, where the manifest holds every remaining stage's time under the same options, about how
long is left (:func:`stage_position`).

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
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from .._io import atomic_write_json, remove_stale_temp_files
from .._lock import run_folder
from .._validation import check_choice, check_out_dir, check_positive_int, check_seed
from ..errors import PmrlhfTypeError, PmrlhfUserError
from .manifest import load_manifest
from .reproduce_config import ReproduceConfig
from .stages import STAGE_NAMES, STAGES, lm_model, stage_fingerprint


def check_reproduce_config(config: ReproduceConfig) -> ReproduceConfig:
    """Check every option of ``config``; return it with ``out`` a path and ``stages`` a tuple.

    Writes and loads nothing: the model name is checked as a string by
    :func:`pmrlhf.lm_experiments.models.loading.resolve_name` (imported only when the LM stage runs
    or ``lm_model`` is given).

    Raises
    ------
    PmrlhfTypeError
        ``config`` is not a ``ReproduceConfig``; a flag that is not a bool; a non-int seed.
    PmrlhfUserError
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
        from ..lm_experiments.models.loading import resolve_name

        resolve_name(lm_model(config))
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


def reproduce(config: ReproduceConfig, *, log: Callable[[str], None] = print) -> dict:
    """Run the stages of ``config`` in order; return the manifest.

    Every option is checked before anything is written (:func:`check_reproduce_config`).
    ``config.out`` is locked for the run and temporary files that an interrupted run left
    in it (and in its ``theory`` folder) are removed first.

    Raises
    ------
    PmrlhfUserError, PmrlhfTypeError
        As :func:`check_reproduce_config`; a damaged manifest without ``force``
        (:func:`~pmrlhf.report.manifest.load_manifest`).
    FolderBusyError
        Another process is running in ``config.out``.
    """
    config = check_reproduce_config(config)
    with run_folder(config.out, cleanup=[lambda out: remove_stale_temp_files(out / "theory")]):
        return _reproduce_locked(config, log)


def stage_position(
    index: int, total: int, name: str, elapsed_s: float, left_s: float | None = None
) -> str:
    """The line ``reproduce`` logs before each stage it runs, e.g.
    ``stage 2/4: simulate · elapsed 3.1 min · about 5.0 min left (last run's timings)``.

    ``index`` counts from 1 among the ``total`` stages this run runs; ``left_s``, the
    estimated seconds of this stage and the later ones, is left out where ``None``.

    Raises
    ------
    PmrlhfUserError, PmrlhfTypeError
        ``index`` outside ``1..total``, a negative or non-finite time, a blank name.
    """
    total = check_positive_int(total, "total")
    index = check_positive_int(index, "index")
    if index > total:
        raise PmrlhfUserError(f"index must be at most total ({total}), got {index}")
    if not isinstance(name, str) or not name.strip():
        raise PmrlhfTypeError(f"name must be a non-empty str, got {name!r}")
    line = f"stage {index}/{total}: {name} · elapsed {_minutes(elapsed_s, 'elapsed_s')}"
    if left_s is not None:
        line += f" · about {_minutes(left_s, 'left_s')} left (last run's timings)"
    return line


def _minutes(seconds, name: str) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise PmrlhfTypeError(f"{name} must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise PmrlhfUserError(f"{name} must be finite and >= 0, got {seconds!r}")
    return f"{seconds / 60:.1f} min"


def _last_seconds(stage, config: ReproduceConfig, previous: dict) -> float | None:
    """How long ``stage`` took when the manifest last recorded it with the same options
    (the report's time stamp aside), else ``None``."""
    recorded, seconds = previous.get("options"), previous.get("seconds")
    if not isinstance(recorded, dict) or not isinstance(seconds, int | float):
        return None
    now = json.loads(json.dumps(stage.options(config), default=str))  # tuples as lists
    same = {k: v for k, v in now.items() if k != "stamp"} == {
        k: v for k, v in recorded.items() if k != "stamp"
    }
    return float(seconds) if same else None


def _reproduce_locked(config: ReproduceConfig, log: Callable[[str], None]) -> dict:
    wanted = config.stages or STAGE_NAMES
    out = config.out
    manifest_path = out / "manifest.json"
    manifest = load_manifest(manifest_path, force=config.force, log=log)
    started_run = time.monotonic()
    plan = []  # (stage, fingerprint, up to date): decided before anything runs
    for stage in STAGES:
        if stage.name not in wanted:
            continue
        fingerprint = stage_fingerprint(stage, config)
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
        plan.append((stage, fingerprint, fresh))
    to_run = [stage for stage, _, fresh in plan if not fresh]
    estimates = [_last_seconds(s, config, manifest["stages"].get(s.name, {})) for s in to_run]
    for stage, fingerprint, fresh in plan:
        if fresh:
            log(f"[{stage.name}] up to date, skipped (--force reruns)")
            continue
        index = to_run.index(stage)
        rest = estimates[index:]
        left = None if None in rest else sum(rest)
        log(
            stage_position(index + 1, len(to_run), stage.name, time.monotonic() - started_run, left)
        )
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
