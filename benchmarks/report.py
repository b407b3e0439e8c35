"""BENCHMARKS.md and its figure, generated from ``benchmarks/results/*.json`` only."""

from __future__ import annotations

import json
from pathlib import Path

from pmrlhf._io import atomic_save_figure, atomic_write_text

from .report_format import (
    fmt_number,
    fmt_range,
    fmt_ratio_range,
    host,
    machine,
    meta_line,
    table,
)
from .report_rl import rl_step_section, trl_penalty_section

PART_TITLES = {
    "closed_forms": "1. Closed-form optimum vs scipy's constrained optimizers",
    "reward_fitting": "2. Reward fitting (BTL / Plackett–Luce MLE) vs choix",
    "rl_step": "3. One RLOO step: pmrlhf vs TRL",
    "simulate": "4. Simulation suite (`pmrlhf simulate`)",
    "trl_penalty": "5. The penalty inside TRL: `PMRLOOTrainer` vs `RLOOTrainer`",
}


def _load(results_dir: Path) -> dict:
    loaded = {}
    for part in PART_TITLES:
        path = results_dir / f"{part}.json"
        if path.exists():
            loaded[part] = json.loads(path.read_text())
    return loaded


def _closed_forms(data: dict) -> list[str]:
    config = data["config"]
    lines = [
        "Maximize `E_pi[r] - beta KL(pi || pi_ref)` (docs/theory.md §2) for random instances "
        f"(rewards N(0, 1), reference softmax(N(0, 1)), beta = {config['beta']}). "
        "`pmrlhf.theory.optimal_policy` solves every prompt at once in closed form; scipy's "
        "SLSQP and trust-constr solve one prompt at a time (bounds [0, 1], equality "
        "sum = 1, analytic gradient, uniform start; "
        f"SLSQP: {config['scipy_options']['SLSQP']}; trust-constr: "
        f"{config['scipy_options']['trust-constr']}).",
        "",
        f"* **Extrapolated rows**: scipy timed {config['scipy_subset']} prompts (or fewer when "
        "B is smaller) and its time is scaled linearly to B prompts; the note column says so.",
        f"* **Cap**: a scipy solver is not run at an n where its predicted time per prompt "
        f"(from the two previous sizes) exceeds {config['scipy_budget_seconds_per_prompt']} s; "
        "the note column records it.",
        "* Speed-up = scipy time / closed-form time, median and min–max over interleaved "
        "rounds; agreement = max |pi_scipy - pi_closed| over the solved prompts; objective "
        "gap = max over the solved prompts of J(pi_closed) - J(pi_scipy), scipy's answer "
        "clipped at 0 and renormalized (>= 0: the closed form reaches the higher objective; "
        "a large gap with a large difference means scipy stopped short of the optimum).",
        "",
    ]
    header = [
        "sweep",
        "n",
        "B",
        "method",
        "time, median (min–max)",
        "closed form faster by",
        "max abs diff",
        "objective gap",
        "scipy converged",
        "note",
    ]
    rows = []
    for row in data["rows"]:
        rows.append(
            [
                row["sweep"],
                row["n"],
                row["batch"],
                row["method"],
                fmt_range(row["seconds"]),
                fmt_ratio_range(row["speedup_vs_closed_form"]),
                fmt_number(row["max_abs_diff"], 2),
                fmt_number(row.get("objective_gap"), 2),
                row.get("scipy_converged") or "–",
                row["note"],
            ]
        )
    lines += table(header, rows)
    lines += [
        "",
        "Growth of time with n (one prompt) and with B (n = "
        f"{config['n_for_batch_sweep']}): slope of log(time) on log(size), least squares.",
        "",
    ]
    lines += table(
        ["method vs size", "fitted exponent"],
        [[k, fmt_number(v, 3)] for k, v in data["exponents"].items()],
    )
    return lines


def _reward_fitting(data: dict) -> list[str]:
    config = data["config"]
    lines = [
        "Same data for every method; choix gets its own list format (converted outside the "
        "timed region). Utilities are centered and scored with one vectorised "
        "log-likelihood (BTL for pairwise, PL for rankings); agreement is the max abs "
        "difference of centered utilities from the method that reached the highest "
        f"log-likelihood. choix settings: {config['choix_settings']}. "
        f"Large case: {config.get('large_case', '')}.",
        "",
        f"**Goal: {config['goal']}.**",
        "",
    ]
    header = [
        "data",
        "method",
        "time, median (min–max)",
        "pmrlhf faster by",
        "log-likelihood",
        "gap to best",
        "max abs diff vs best",
        "note",
    ]
    rows = []
    goals = {}
    timeouts = {}
    for row in data["rows"]:
        case = f"{row['kind']}, {row['n_items']} items × {row['n_comparisons']}"
        goals[case] = (row.get("goal_met_for_case"), row.get("goal_met_with_single_blas_thread"))
        name = row["method"] + (" (fastest choix)" if row.get("is_fastest_choix") else "")
        timed_out = "TimeoutError" in (row.get("note") or "")
        if row["method"].startswith("choix"):
            timeouts.setdefault(case, []).append(timed_out)
        ratio = fmt_ratio_range(row["speedup_of_pmrlhf_vs_this"])
        if timed_out:  # the competitor was stopped at the limit: the ratio is a lower bound
            ratio = f"> {row['speedup_of_pmrlhf_vs_this']['median']:.3g}× (stopped at the limit)"
        rows.append(
            [
                f"{case}: {row['data']}",
                name,
                fmt_range(row["seconds"]),
                ratio,
                fmt_number(row["log_likelihood"], 10),
                fmt_number(row["log_likelihood_gap_to_best"], 3),
                fmt_number(row["max_abs_diff_vs_best"], 2),
                row["note"],
            ]
        )
    lines += table(header, rows)
    lines += [""]
    words = {True: "met", False: "**not met**", None: "undecided (no choix estimate)"}
    for case, (met, met_single) in goals.items():
        if met is None and timeouts.get(case) and all(timeouts[case]):
            lines.append(
                f"* {case}: goal met with a lower bound — every choix method was stopped at "
                "the time limit without an estimate, while pmrlhf converged"
            )
            continue
        lines.append(
            f"* {case}: goal {words[met]} (with numpy's and scipy's BLAS on one thread, the "
            f"diagnostic row: {words[met_single]})"
        )
    return lines


def _simulate(data: dict) -> list[str]:
    if not data["available"]:
        return [
            "`pmrlhf simulate` is **not available** in this checkout:",
            "",
            "```",
            data.get("error", ""),
            "```",
        ]
    header = ["variant", "command", "wall time", "peak RSS (MiB)", "successful runs"]
    rows = [
        [
            row["variant"],
            f"`{row['command']}`",
            fmt_range(row["seconds"]),
            fmt_range(row["peak_rss_mib"], lambda v: f"{v:.0f}"),
            f"{row['ok_runs']}/{row['runs']}",
        ]
        for row in data["rows"]
    ]
    return table(header, rows)


def _figure(loaded: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if "closed_forms" in loaded:
        rows = loaded["closed_forms"]["rows"]
        for ax, sweep, label in (
            (axes[0], "n", "responses n (B = 1)"),
            (axes[1], "batch", "prompts B"),
        ):
            for method in dict.fromkeys(r["method"] for r in rows):
                points = [
                    (r["n"] if sweep == "n" else r["batch"], r["seconds"]["median"])
                    for r in rows
                    if r["sweep"] == sweep and r["method"] == method and r["seconds"]
                ]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.loglog(xs, ys, "o-", label=method)
            ax.set_xlabel(label)
            ax.set_ylabel("seconds (median)")
            ax.set_title(f"KL optimum: time vs {sweep}")
            ax.legend(fontsize=8)
    if "reward_fitting" in loaded:
        rows = loaded["reward_fitting"]["rows"]
        labels = [f"{r['kind'][:4]} {r['n_items']}: {r['method'].split('.')[-1]}" for r in rows]
        values = [r["seconds"]["median"] for r in rows]
        colors = ["tab:green" if r["method"].startswith("pmrlhf") else "tab:gray" for r in rows]
        bars = axes[2].barh(range(len(rows)), values, color=colors)
        for bar, row in zip(bars, rows, strict=True):
            if "TimeoutError" in (row.get("note") or ""):  # stopped at the limit: a lower bound
                bar.set_hatch("//")
                bar.set_facecolor("white")
                bar.set_edgecolor("tab:gray")
                axes[2].annotate(
                    "stopped",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                )
        axes[2].set_yticks(range(len(rows)), labels, fontsize=7)
        axes[2].set_xscale("log")
        axes[2].invert_yaxis()
        axes[2].set_xlabel("seconds (median; green = pmrlhf; hatched: stopped at the limit)")
        axes[2].set_title("Reward fitting vs choix")
    fig.tight_layout()
    return fig


# The measurement log of README's two commands (`make test`, `make reproduce`): each
# row a person's measurement from a fresh clone, appended to BENCHMARKS.md as its last part.
COMMAND_TIMINGS = Path(__file__).with_name("command_timings.md")


def write_report(results_dir, *, out, figure) -> str:
    """Assemble BENCHMARKS.md from whatever part results exist; save the figure."""
    results_dir, out, figure = Path(results_dir), Path(out), Path(figure)
    loaded = _load(results_dir)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks` (`make bench`) from "
        f'`{_relative(results_dir, out)}/*.json`; do not edit by hand. "Fast" here is always '
        "a ratio measured against the tool a user would otherwise use, on the same work, in "
        "the same run, with the two sides interleaved. Times are medians with min–max.",
        "",
    ]
    first = None
    if not loaded:
        lines += ["No results yet: run `make bench` or `python -m benchmarks --quick`."]
    else:
        first = next(iter(loaded.values()))["meta"]
        lines += ["## Machine", ""] + machine(first) + [""]
        if any(p["meta"]["size"] == "smoke" for p in loaded.values()):
            lines += [
                "> **SMOKE RUN: tiny sizes that only test the harness; the numbers below "
                "mean nothing. Run `make bench` for real numbers.**",
                "",
            ]
        elif any(p["meta"]["size"] != "full" for p in loaded.values()):
            lines += [
                "> **Some parts were run at a reduced size (see each section); their "
                "numbers are indicative only.**",
                "",
            ]
        if "closed_forms" in loaded or "reward_fitting" in loaded:
            lines += [f"![benchmarks]({_relative(figure, out)})", ""]
    builders = {
        "closed_forms": _closed_forms,
        "reward_fitting": _reward_fitting,
        "rl_step": rl_step_section,
        "simulate": _simulate,
        "trl_penalty": trl_penalty_section,
    }
    for part, title in PART_TITLES.items():
        lines += [f"## {title}", ""]
        if part not in loaded:
            lines += ["Not run yet.", ""]
            continue
        lines += [meta_line(loaded[part]["meta"]), ""]
        if host(loaded[part]["meta"]) != host(first):  # parts run apart, e.g. --parts
            lines += ["This part ran on another machine or software stack:", ""]
            lines += machine(loaded[part]["meta"]) + [""]
        lines += builders[part](loaded[part]) + [""]
    if COMMAND_TIMINGS.is_file():  # hand-kept: measured by people, not by this harness
        lines += COMMAND_TIMINGS.read_text().strip().splitlines() + [""]
    text = "\n".join(lines).rstrip() + "\n"
    if loaded:
        import matplotlib.pyplot as plt

        fig = _figure(loaded)
        atomic_save_figure(figure, fig)
        plt.close(fig)
    atomic_write_text(out, text)
    return text


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.resolve().relative_to(out.resolve().parent))
    except ValueError:
        return str(path)
