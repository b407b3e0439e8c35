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
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Size:
    """How much work each benchmark does: ``smoke`` (tests, seconds), ``quick`` (about a
    minute), ``full`` (about 35 minutes on 2 cores)."""

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
    min_seconds: float = 0.02,
) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Seconds per call of each function, sampled round-robin ``repeats`` times.

    Each function is first called once as a warm-up (imports, caches, allocator; its result
    is returned for accuracy checks); a function faster than ``min_seconds`` is then looped
    so that one sample lasts ``min_seconds``. Round ``k`` times every function once before
    round ``k + 1`` starts, so load from other processes hits all sides alike.

    Returns
    -------
    samples : dict name -> list of seconds per call, one per round
    results : dict name -> the warm-up call's return value
    """
    results: dict[str, object] = {}
    numbers: dict[str, int] = {}
    for name, fn in functions.items():
        start = time.perf_counter()
        results[name] = fn()
        elapsed = time.perf_counter() - start
        numbers[name] = 1 if elapsed >= min_seconds else calibrate(fn, min_seconds)
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return samples, results


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
    per-round ratios (round ``k`` of both sides ran back to back). If one side has fewer
    samples (a slow baseline run once), its samples are divided by the other's median."""
    if len(slow) != len(fast):  # a baseline that ran once: compare with the median
        ratios = np.asarray(slow, float) / float(np.median(fast))
    else:
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
        "thread_environment": {
            name: os.environ.get(name, "unset")
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
    }


def time_in_child(fn: Callable[[], object], *, limit_seconds: float) -> tuple[float, object]:
    """Time one call of ``fn`` in a forked child process, killed after ``limit_seconds``.

    For estimators that may run for minutes (choix's pure-Python loops on large data): the
    parent stays responsive and the limit is enforced. The child inherits the data by
    ``fork``, so nothing is serialised on the way in; the clock runs inside the child.

    Returns
    -------
    seconds : float
        Wall time of the call, or ``limit_seconds`` if it was killed.
    result : object
        ``fn()``'s return value, the exception it raised, or ``TimeoutError``.
    """
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def target():
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as err:  # reported to the parent, not raised in the child
            value = err
        sender.send((time.perf_counter() - start, value))

    process = context.Process(target=target, daemon=True)
    process.start()
    sender.close()
    if receiver.poll(limit_seconds):
        seconds, value = receiver.recv()
        process.join()
        return seconds, value
    process.kill()
    process.join()
    return float(limit_seconds), TimeoutError(f"exceeded the limit of {limit_seconds:g} s")


def time_interleaved_in_children(
    functions: dict[str, Callable[[], object]],
    *,
    repeats: int,
    limit_seconds: float,
    repeat_below_seconds: float,
) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Like :func:`time_interleaved` but each call runs in a forked child with a time limit.

    Round-robin over the functions; a function whose first call failed, hit the limit, or
    took longer than ``repeat_below_seconds`` is not called again (its single sample
    stands), which bounds the total time of very slow baselines.
    """
    samples: dict[str, list[float]] = {name: [] for name in functions}
    results: dict[str, object] = {}
    for round_index in range(repeats):
        for name, fn in functions.items():
            if round_index > 0 and (
                isinstance(results[name], Exception) or samples[name][0] > repeat_below_seconds
            ):
                continue
            seconds, value = time_in_child(fn, limit_seconds=limit_seconds)
            samples[name].append(seconds)
            results.setdefault(name, value)
    return samples, results


def run_subprocess(command: list[str], *, timeout: float, log_path, env=None, cwd=None) -> dict:
    """Run a command, return its exit code, wall time and *its own* peak RSS.

    ``os.wait4`` reports the resource usage of exactly the child waited for (unlike
    ``RUSAGE_CHILDREN``, a running maximum over every child ever reaped). Output goes to
    ``log_path``; the child is killed after ``timeout`` seconds (``timed_out`` is then True).
    """
    import subprocess

    started = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": process.returncode,
        "timed_out": timed_out,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
    }


class BlasThreads:
    """Context manager: numpy's and scipy's bundled OpenBLAS limited to ``n`` threads.

    A diagnostic, not a fix (best effort; the effect of ``OPENBLAS_NUM_THREADS=n`` inside
    one process): tiny BLAS calls, such as scipy's L-BFGS-B and numpy dot products on a
    few dozen variables, can be dominated by OpenBLAS thread hand-offs when the cores are
    busy. ``applied`` counts the libraries found (wheels built against another BLAS: 0).
    """

    # (folder next to the package, file pattern, setter, getter)
    LIBRARIES = (
        (
            "numpy.libs",
            "libscipy_openblas64_*.so",
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_get_num_threads64_",
        ),
        (
            "scipy.libs",
            "libscipy_openblas*.so",
            "scipy_openblas_set_num_threads",
            "scipy_openblas_get_num_threads",
        ),
    )

    def __init__(self, n: int = 1):
        self.n = n
        self.applied = 0
        self._restore: list = []

    @staticmethod
    def _find():
        import ctypes
        import glob

        import scipy

        site = Path(scipy.__file__).resolve().parent.parent
        found = []
        for folder, pattern, setter, getter in BlasThreads.LIBRARIES:
            for path in glob.glob(str(site / folder / pattern)):
                lib = ctypes.CDLL(path)
                if hasattr(lib, setter) and hasattr(lib, getter):
                    found.append((getattr(lib, setter), getattr(lib, getter)))
                    break
        return found

    def __enter__(self):
        import scipy.optimize  # noqa: F401  (loads scipy's library first)

        for setter, getter in self._find():
            self._restore.append((setter, getter()))
            setter(self.n)
            self.applied += 1
        return self

    def __exit__(self, *exc):
        for setter, previous in self._restore:
            setter(previous)
        self._restore.clear()
        return False
