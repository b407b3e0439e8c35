"""Run simulation experiments and write ``<name>.csv``, ``<name>.png`` (a ``.pdf`` beside it)
and ``summary.json``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from .._io import (
    atomic_save_figure,
    atomic_write_csv,
    atomic_write_json,
)
from .._lock import run_folder
from .._validation import DEFAULT_SEED, check_out_dir, check_seed
from ..errors import PmrlhfUserError
from .experiments import EXPERIMENTS, HEADLINES


def check_names(names) -> list[str]:
    """``None`` means every experiment; unknown names raise ``ValueError`` listing valid ones."""
    if names is None or len(names) == 0:
        return list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise PmrlhfUserError(
            f"unknown experiment(s) {unknown}; choose from {', '.join(EXPERIMENTS)}"
        )
    return list(dict.fromkeys(names))


def run_experiments(
    names=None,
    *,
    out_dir,
    seed: int = DEFAULT_SEED,
    quick: bool = False,
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Run experiments in order; write one CSV and one PNG each plus ``summary.json``.

    One folder holds one consistent set of results: ``summary.json`` lists every experiment
    in the folder, those of earlier runs kept beside the new ones (a rerun replaces its own
    entry), and a folder whose results were made with another ``seed`` or ``quick`` is
    refused before any work unless ``force``, which removes the earlier results first.

    Parameters
    ----------
    names : list of str, optional
        Experiments to run (default: all of them, in registry order).
    out_dir : str or path
        Locked for the run (:func:`pmrlhf._lock.run_lock`); temporary files that an
        interrupted run left there are removed first.
    seed : int >= 0
        Same seed, same numbers.
    quick : bool
        Small grids (CI); the full grids otherwise.
    force : bool
        Discard the folder's earlier results (their files and summary entries) instead of
        refusing a folder made with another ``seed`` or ``quick``.

    Returns
    -------
    dict
        The summary: per experiment, its headline numbers, config and wall time.

    Raises
    ------
    ValueError
        An unknown name, a negative or non-int ``seed``, an empty ``out_dir`` or one that
        is a file (all before any work).
    FolderBusyError
        Another process is running in ``out_dir``.
    """
    names = check_names(names)
    seed = check_seed(seed)
    out_dir = check_out_dir(out_dir, "out_dir")
    with run_folder(out_dir):
        summary = _earlier_summary(out_dir, seed=seed, quick=quick, force=force)
        return _run_locked(names, out_dir, summary, quick=quick, progress=progress)


def _earlier_summary(out_dir: Path, *, seed: int, quick: bool, force: bool) -> dict:
    """The summary the new results join: the folder's own if it was made with the same
    ``seed`` and ``quick``; a fresh one (earlier files removed) with ``force``."""
    fresh = {"seed": seed, "quick": quick, "experiments": {}}
    path = out_dir / "summary.json"
    if not path.exists():
        return fresh
    try:
        earlier = json.loads(path.read_text())
        same = earlier["seed"] == seed and earlier["quick"] == quick
        listed = [n for n in earlier["experiments"] if n in EXPERIMENTS]
    except (OSError, ValueError, KeyError, TypeError):
        earlier, same, listed = None, False, []
    if same and not force:
        return {**fresh, "experiments": dict(earlier["experiments"])}
    if not force:
        made = (
            "an unreadable summary.json"
            if earlier is None
            else f"results of seed {earlier['seed']}, quick {earlier['quick']}"
        )
        raise PmrlhfUserError(
            f"out_dir {out_dir} holds {made}, not seed {seed}, quick {quick}: choose another "
            "folder, or pass --force (force=True) to discard them"
        )
    for name in listed:
        for ext in ("csv", "png", "pdf"):
            (out_dir / f"{name}.{ext}").unlink(missing_ok=True)
    path.unlink()
    return fresh


def _run_locked(names: list[str], out_dir: Path, summary: dict, *, quick: bool, progress: bool):
    seed = summary["seed"]
    for name in tqdm(names, desc="simulate", disable=not progress, unit="experiment"):
        function, full, small = EXPERIMENTS[name]
        config = replace(small if quick else full, seed=seed)
        started = time.perf_counter()
        frame, figure = function(config)
        headline = HEADLINES[name](frame)
        atomic_write_csv(out_dir / f"{name}.csv", frame)
        atomic_save_figure(out_dir / f"{name}.png", figure)
        plt.close(figure)
        summary["experiments"][name] = {
            **headline,
            "seconds": round(time.perf_counter() - started, 3),
            "config": asdict(config),
        }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
