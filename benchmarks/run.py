"""Run the selected parts and store each one's raw results atomically."""

from __future__ import annotations

import datetime as dt
import importlib
import time
from pathlib import Path

import pandas as pd

from pmrlhf._io import atomic_write_csv, atomic_write_json

from ._common import SIZES, Size, machine_description

MODULES = {
    "closed_forms": "closed_forms",
    "reward_fitting": "reward_fitting",
    "rl_step": "rl_step",
    "simulate": "simulate_suite",
    "trl_penalty": "trl_penalty",
}


def _flatten(rows: list[dict]) -> pd.DataFrame:
    """Rows with nested summaries ({'median', 'min', 'max'}) as flat CSV columns."""
    return pd.json_normalize(rows, sep="_")


def run_parts(
    parts, *, size: str, seed: int, results_dir, command: str, log=print, options=None
) -> dict:
    """Run each part in order; write ``<part>.json`` (and ``<part>.csv`` when it has rows).

    Every file carries its own metadata (date, size, seed, command, machine), so a report
    assembled from parts run at different times says so. ``options`` maps a part to extra
    keyword arguments of its ``run`` (e.g. ``{"rl_step": {"settings": ["long"]}}``).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    results_dir = Path(results_dir)
    machine = machine_description()
    written = {}
    for part in parts:
        module = importlib.import_module(f"benchmarks.{MODULES[part]}")
        log(f"[{part}] size={size} seed={seed}")
        started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        started = time.perf_counter()
        extra = (options or {}).get(part, {})
        result = module.run(Size(size), seed=seed, log=log, **extra)
        meta = {
            "part": part,
            "size": size,
            "seed": seed,
            "command": command,
            "started_utc": started_at,
            "seconds": round(time.perf_counter() - started, 2),
            "machine": machine,
        }
        payload = {"meta": meta, **result}
        atomic_write_json(results_dir / f"{part}.json", payload)
        if result.get("rows"):
            atomic_write_csv(results_dir / f"{part}.csv", _flatten(result["rows"]))
        log(f"[{part}] done in {meta['seconds']:.1f} s")
        written[part] = payload
    return written
