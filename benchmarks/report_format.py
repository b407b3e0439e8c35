"""How BENCHMARKS.md writes numbers, ranges, tables and the machine a part ran on
(:mod:`benchmarks.report` and :mod:`benchmarks.report_rl` share them)."""

from __future__ import annotations

import math


def fmt_seconds(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def fmt_range(summary, fmt=fmt_seconds) -> str:
    if not summary:
        return "–"
    if summary.get("repeats", 2) == 1 or summary["min"] == summary["max"]:
        return (
            f"{fmt(summary['median'])} (1 run)"
            if summary.get("repeats") == 1
            else fmt(summary["median"])
        )
    return f"{fmt(summary['median'])} ({fmt(summary['min'])}–{fmt(summary['max'])})"


def fmt_ratio(value) -> str:
    return "–" if value is None else f"{value:.3g}×"


def fmt_ratio_range(summary) -> str:
    if not summary:
        return "–"
    return f"{summary['median']:.3g}× ({summary['min']:.3g}–{summary['max']:.3g})"


def fmt_number(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def meta_line(meta: dict) -> str:
    return (
        f"*Size `{meta['size']}`, seed {meta['seed']}, started {meta['started_utc']}, "
        f"took {meta['seconds']:.0f} s; command `{meta['command']}`.*"
    )


def host(meta: dict) -> dict:
    """The machine and versions a part ran on, without what changes from run to run."""
    return {k: v for k, v in meta["machine"].items() if k != "load_average_1_5_15_min_at_start"}


def machine(meta: dict) -> list[str]:
    machine = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    return [
        f"* CPU: {machine['cpu_model']}; {machine['logical_cores']} logical cores "
        f"({machine['usable_cores']} usable); RAM {machine['ram_gib']} GiB",
        f"* Load average (1, 5, 15 min) at start: {machine['load_average_1_5_15_min_at_start']}"
        " — the machine is shared, so compare ratios from interleaved runs, not absolute times",
        f"* OS: {machine['os']}; Python {machine['python']}",
        f"* Versions: {versions}",
        f"* Thread environment: {machine.get('thread_environment', {})}",
    ]


def gflop(value) -> str:
    return "–" if value is None else f"{value / 1e9:.3g}"


def percent(value) -> str:
    return "–" if value is None else f"{100 * value:.3g}%"
