"""BENCHMARKS.md and its figure, generated from ``benchmarks/results/*.json`` only."""

from __future__ import annotations

import json
import math
from pathlib import Path

from pmrlhf._io import atomic_save_figure, atomic_write_text

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


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _meta_line(meta: dict) -> str:
    return (
        f"*Size `{meta['size']}`, seed {meta['seed']}, started {meta['started_utc']}, "
        f"took {meta['seconds']:.0f} s; command `{meta['command']}`.*"
    )


def _host(meta: dict) -> dict:
    """The machine and versions a part ran on, without what changes from run to run."""
    return {k: v for k, v in meta["machine"].items() if k != "load_average_1_5_15_min_at_start"}


def _machine(meta: dict) -> list[str]:
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
    lines += _table(header, rows)
    lines += [
        "",
        "Growth of time with n (one prompt) and with B (n = "
        f"{config['n_for_batch_sweep']}): slope of log(time) on log(size), least squares.",
        "",
    ]
    lines += _table(
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
    lines += _table(header, rows)
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


def _rl_step_legacy(data: dict) -> list[str]:
    """Results stored before the settings, FLOPs and MFU were added."""
    config = data["config"]
    lines = [
        f"Model `{config['model']}` ({config['dtype']}, {config['device']}), "
        f"{config['prompts_per_step']} prompts × {config['samples_per_prompt']} samples, "
        f"at most {config['max_new_tokens']} new tokens, KL beta = {config['beta_kl']}; "
        f"{config['rounds']} round(s), sides interleaved (pmrlhf, TRL, pmrlhf, TRL, ...), each "
        f"in its own process; per round {config['warmup_steps']} warm-up step then "
        f"{config['steps_per_round']} timed step(s). TRL side: {config['trl_trainer']}; "
        f"pmrlhf side: {config['pmrlhf_trainer']}. Peak RSS is the child's own (`os.wait4`).",
        "",
    ]
    header = [
        "side",
        "seconds per step",
        "completion tokens / s",
        "peak RSS (MiB)",
        "tokens per step",
        "steps timed",
    ]
    rows = []
    for side, summary in data["summary"].items():
        if not summary["available"]:
            rows.append([side, "not available", "–", "–", "–", "–"])
            continue
        rows.append(
            [
                side,
                fmt_range(summary["seconds_per_step"]),
                fmt_range(summary["tokens_per_second"], lambda v: f"{v:.3g}"),
                fmt_range(summary["peak_rss_mib"], lambda v: f"{v:.0f}"),
                fmt_number(summary["tokens_per_step_median"]),
                summary["steps_recorded"],
            ]
        )
    lines += _table(header, rows)
    ratio = data.get("trl_over_pmrlhf_seconds_per_step")
    lines += [
        "",
        "TRL seconds per step / pmrlhf seconds per step (per-round medians): "
        + (fmt_ratio_range(ratio) if ratio else "not available"),
    ]
    sides = data["summary"]
    if ratio and all(sides.get(k, {}).get("available") for k in ("pmrlhf", "trl")):
        memory = sides["pmrlhf"]["peak_rss_mib"]["median"] / sides["trl"]["peak_rss_mib"]["median"]
        faster = ratio["median"] >= 1.0
        lighter = memory <= 1.0
        verdict = "met" if faster and lighter else "**not met**"
        lines += [
            "",
            f"Goal (not slower, not heavier): {verdict} — pmrlhf's step takes "
            f"{1 / ratio['median']:.2f}× TRL's time and its peak RSS is {memory:.2f}× TRL's.",
        ]
    for side, summary in data["summary"].items():
        if not summary["available"]:
            lines += [
                "",
                f"{side} failed; last lines of its log:",
                "",
                "```",
                summary["error"][-800:],
                "```",
            ]
    return lines


def _gflop(value) -> str:
    return "–" if value is None else f"{value / 1e9:.3g}"


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.3g}%"


def _pass_text(p: dict) -> str:
    kind = "fwd+bwd" if p["trained"] else "fwd"
    return f"{p['pass']} ({kind}): {p['tokens']:.0f} / {p['logits']:.0f}"


def _rl_setting(config: dict, result: dict) -> list[str]:
    sides = result["summary"]
    lines = [f"### Setting `{result['setting']}`: {result['description']}", ""]
    work_header = [
        "side",
        "prompts × samples",
        "prompt tokens (each prompt)",
        "completion tokens per sample (mean)",
        "max new tokens",
        "lr",
        "passes: real tokens through the model / logit positions",
        "tokens processed per step (all passes)",
        "model GFLOP per step",
    ]
    rows = []
    for side, summary in sides.items():
        if not summary["available"]:
            rows.append([side, "not available"] + ["–"] * (len(work_header) - 2))
            continue
        work = summary["work"]
        rows.append(
            [
                side,
                f"{work['prompts_per_step']} × {work['samples_per_prompt']}",
                ", ".join(str(n) for n in work["prompt_lengths"]),
                f"{work['completion_tokens_mean']:.3g}",
                work["max_new_tokens"],
                f"{work['lr']:g}",
                "; ".join(_pass_text(p) for p in work["passes"]),
                f"{sum(p['tokens'] for p in work['passes']):.0f}",
                _gflop(work["flops_per_step"]),
            ]
        )
    lines += ["Work per step (median over the timed steps):", ""]
    lines += _table(work_header, rows)
    available = [s for s in sides.values() if s["available"]]
    if len(available) == 2:
        a, b = (s["work"] for s in available)
        keys = ("prompts_per_step", "samples_per_prompt", "max_new_tokens", "lr", "beta")
        same = all(a[k] == b[k] for k in keys) and a["prompt_lengths"] == b["prompt_lengths"]
        lines += [
            "",
            "Same work on both sides (prompts, samples per prompt, prompt tokens, new-token "
            f"cap, lr, beta): {'yes' if same else '**no**'}. Completion lengths are sampled, "
            "so they differ from step to step and side to side.",
        ]
    header = [
        "side",
        "seconds per step",
        "completion tokens / s",
        "model GFLOP per step",
        "MFU",
        "peak RSS (MiB)",
        "steps timed",
    ]
    rows = []
    for side, summary in sides.items():
        if not summary["available"]:
            rows.append([side, "not available", "–", "–", "–", "–", "–"])
            continue
        rows.append(
            [
                side,
                fmt_range(summary["seconds_per_step"]),
                fmt_range(summary["tokens_per_second"], lambda v: f"{v:.3g}"),
                fmt_range(summary["flops_per_step"], _gflop),
                fmt_range(summary["mfu"], _percent),
                fmt_range(summary["peak_rss_mib"], lambda v: f"{v:.0f}"),
                summary["steps_recorded"],
            ]
        )
    lines += ["", "Time, FLOPs (per timed cycle) and memory:", ""]
    lines += _table(header, rows)
    ratio = result.get("trl_over_pmrlhf_seconds_per_step")
    lines += [
        "",
        "* TRL seconds per step / pmrlhf seconds per step (per-round medians): "
        + (fmt_ratio_range(ratio) if ratio else "not available"),
    ]
    if result.get("pmrlhf_over_trl_mfu"):
        lines += [
            "* pmrlhf MFU / TRL MFU (per-round medians): "
            + fmt_ratio_range(result["pmrlhf_over_trl_mfu"]),
            "* TRL model FLOPs per step / pmrlhf model FLOPs per step: "
            + fmt_ratio_range(result["trl_over_pmrlhf_flops_per_step"]),
        ]
    if ratio and len(available) == 2:
        memory = sides["pmrlhf"]["peak_rss_mib"]["median"] / sides["trl"]["peak_rss_mib"]["median"]
        verdict = "met" if ratio["median"] >= 1.0 and memory <= 1.0 else "**not met**"
        lines += [
            "",
            f"Goal (not slower, not heavier): {verdict} — pmrlhf's step takes "
            f"{1 / ratio['median']:.2f}× TRL's time and its peak RSS is {memory:.2f}× TRL's.",
        ]
    for side, summary in sides.items():
        if not summary["available"]:
            lines += ["", f"{side} failed; last lines of its log:", "", "```"]
            lines += [summary["error"][-800:], "```"]
    return lines + [""]


def _rl_step(data: dict) -> list[str]:
    if "settings" not in data:
        return _rl_step_legacy(data)
    config, rate = data["config"], data["matmul"]["best"]
    dims = next(
        (
            s["work"]["dims"]
            for r in data["settings"]
            for s in r["summary"].values()
            if s["available"]
        ),
        None,
    )
    lines = [
        f"Model `{config['model']}` ({config['dtype']}, {config['device']}), KL beta = "
        f"{config['beta_kl']}; per setting {config['rounds']} round(s), sides interleaved "
        "(pmrlhf, TRL, pmrlhf, TRL, ...), each in its own process; per round "
        f"{config['warmup_steps']} warm-up step then {config['steps_per_round']} timed "
        f"step(s). TRL side: {config['trl_trainer']}; pmrlhf side: {config['pmrlhf_trainer']}. "
        "Both sides: the same chat prompts with an empty system message, temperature 1, no "
        "top-p / top-k, AdamW, gradient clipping at 1, reward = completion tokens / 100. "
        "Peak RSS is the child's own (`os.wait4`). A timed step is the cycle from one step's "
        "reward call to the next one's.",
        "",
        f"* **fp32 matmul rate of this machine: {rate['gflops']:.3g} GFLOP/s** "
        f"(`torch.matmul` of two {rate['shape'][0]}×{rate['shape'][1]} float32 matrices, "
        f"2·n³ FLOPs, best of {rate['repeats']} calls after a warm-up, "
        f"{rate['threads']} torch threads (torch's default); measured before and after the "
        "RL runs, the faster taken: "
        + ", ".join(f"{m['gflops']:.3g}" for m in data["matmul"]["measurements"])
        + " GFLOP/s).",
        "* **Model FLOPs** (Kaplan's 6·N·T rule): a token through the model costs 2·N FLOPs "
        "forward only (sampling, reference, old log-probs) and 6·N forward and backward "
        "(the update), with N the non-embedding parameters (every parameter except "
        "embedding tables and the output layer)"
        + (
            f", here N = {dims['non_embedding_params']:,}; the output layer adds 2·d·V "
            f"(6·d·V trained), d·V = {dims['head_in']} × {dims['vocab']:,}, at each "
            "position whose logits are computed"
            if dims
            else "; the output layer adds 2·d·V (6·d·V trained) at each position whose "
            "logits are computed"
        )
        + ". A pass counts its prompt and completion tokens (real tokens: the padding both "
        "sides compute is left out; the last completion token is counted even in passes "
        "that never feed it); attention scores, norms and activations are left out. "
        "pmrlhf runs each prompt once per pass (its cache shared "
        "by its samples) and computes logits at completion positions only; TRL runs each "
        "row's prompt, generates with one logit row per new token, and its fused output "
        "layer scores every position but the last of each row on the CPU (only completion "
        "positions on CUDA/XPU with Triton); TRL also recomputes the old log-probs in a "
        "forward pass of their own.",
        "* **MFU** = model FLOPs of a timed step / its seconds / the matmul rate; median "
        "and min–max over the timed steps.",
        "",
    ]
    for result in data["settings"]:
        lines += _rl_setting(config, result)
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
    return _table(header, rows)


def _trl_penalty(data: dict) -> list[str]:
    config, sides = data["config"], data["summary"]
    lines = [
        f"Model `{config['model']}` ({config['dtype']}, {config['device']}); part 3's TRL side, "
        f"setting `{config['setting']}`, beta = {config['beta']}, run by each trainer below; "
        f"{config['rounds']} round(s), sides interleaved, each in its own process; per round "
        f"{config['warmup_steps']} warm-up step then {config['steps_per_round']} timed step(s) "
        "(a step: one reward call to the next). Ratios are of per-round medians against the "
        "stock trainer of the same round. `regularizer='kl'` is TRL's own penalty through the "
        "subclass; `'cpm'` adds a `torch.where` to the reference pass; `'pm'` loads no "
        "reference model and skips its pass.",
        "",
    ]
    header = [
        "trainer",
        "seconds per step",
        "/ stock (seconds)",
        "peak RSS (MiB)",
        "/ stock (peak RSS)",
        "steps timed",
    ]
    rows = []
    for side, summary in sides.items():
        if not summary["available"]:
            rows.append([side, "not available", "–", "–", "–", "–"])
            continue
        rows.append(
            [
                summary["trainer"],
                fmt_range(summary["seconds_per_step"]),
                fmt_ratio_range(summary.get("seconds_ratio_to_stock")),
                fmt_range(summary["peak_rss_mib"], lambda v: f"{v:.0f}"),
                fmt_ratio_range(summary.get("peak_rss_ratio_to_stock")),
                summary["steps_recorded"],
            ]
        )
    lines += _table(header, rows)
    goal = config["goal"]
    for side in ("pmtrl-kl", "pmtrl-cpm", "pmtrl-pm"):
        summary = sides.get(side, {})
        if "overhead" in summary:
            verdict = "met" if summary["goal_met"] else "**not met**"
            lines += [
                "",
                f"* {summary['trainer']}: step time {summary['overhead']:+.1%} against the "
                f"stock trainer; goal (penalty under {goal:.0%} of a step): {verdict}.",
            ]
    for side, summary in sides.items():
        if not summary["available"]:
            lines += ["", f"{side} failed; last lines of its log:", "", "```"]
            lines += [summary["error"][-800:], "```"]
    return lines + [""]


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
        lines += ["## Machine", ""] + _machine(first) + [""]
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
        "rl_step": _rl_step,
        "simulate": _simulate,
        "trl_penalty": _trl_penalty,
    }
    for part, title in PART_TITLES.items():
        lines += [f"## {title}", ""]
        if part not in loaded:
            lines += ["Not run yet.", ""]
            continue
        lines += [_meta_line(loaded[part]["meta"]), ""]
        if _host(loaded[part]["meta"]) != _host(first):  # parts run apart, e.g. --parts
            lines += ["This part ran on another machine or software stack:", ""]
            lines += _machine(loaded[part]["meta"]) + [""]
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
