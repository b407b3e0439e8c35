"""Shared helpers: wall-clock timing, summaries, growth exponents, machine description.

Timing follows ``timeit``'s advice for a shared, noisy machine: warm up first, repeat, and
report the median with the min–max range; ratios come from runs interleaved in one process
(A B A B ...), so a burst of load from another process hits both sides alike.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Size:
    """How much work each benchmark does: ``smoke`` (tests, seconds), ``quick`` (about a
    minute), ``full`` (about 15 minutes on 2 cores)."""

    name: str

    @property
    def smoke(self) -> bool:
        return self.name == "smoke"

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    @property
    def full(self) -> bool:
        return self.name == "full"

    def pick(self, *, smoke, quick, full):
        return {"smoke": smoke, "quick": quick, "full": full}[self.name]


SIZES = ("smoke", "quick", "full")


def calibrate(fn: Callable[[], object], min_seconds: float) -> int:
    """Calls per timed sample so that one sample lasts at least ``min_seconds``."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * min_seconds / max(elapsed, 1e-9) * 1.2))


def time_interleaved(
    functions: dict[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    min_seconds: float = 0.02,
) -> dict[str, list[float]]:
    """Seconds per call of each function, sampled round-robin ``repeats`` times.

    Each function is first called ``warmup`` times (imports, caches, allocator), then
    calibrated so a sample lasts ``min_seconds`` (fast calls are looped, slow ones run
    once); round ``k`` times every function once before round ``k + 1`` starts.
    """
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    numbers = {name: calibrate(fn, min_seconds) for name, fn in functions.items()}
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return samples


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a list of timings (seconds)."""
    values = np.asarray(samples, float)
    return {
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
        "repeats": int(values.size),
    }


def ratio_summary(slow: Sequence[float], fast: Sequence[float]) -> dict[str, float]:
    """Speed-up ``slow / fast`` from paired, interleaved samples: median and min–max of the
    per-round ratios (round ``k`` of both sides ran back to back)."""
    ratios = np.asarray(slow, float) / np.asarray(fast, float)
    return {
        "median": float(np.median(ratios)),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
    }


def loglog_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope of ``log(seconds)`` on ``log(size)``: time grows like size^slope."""
    x = np.log(np.asarray(sizes, float))
    y = np.log(np.asarray(seconds, float))
    if x.size < 2 or np.ptp(x) == 0:
        return float("nan")
    slope, _ = np.polyfit(x, y, 1)
    return float(slope)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def machine_description() -> dict:
    """CPU model, cores, RAM, load, OS and library versions, for the report's header."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    packages = ["pmrlhf", "numpy", "scipy", "choix", "torch", "transformers", "trl", "datasets"]
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gib": _ram_gib(),
        "load_average_1_5_15_min_at_start": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in packages},
    }
