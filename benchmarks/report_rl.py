"""Parts 3 and 5 of BENCHMARKS.md: one RLOO step, pmrlhf against TRL (settings, FLOPs,
MFU), and the penalty inside TRL (:mod:`benchmarks.report` puts them in place)."""

from __future__ import annotations

from .report_format import (
    fmt_range,
    fmt_ratio_range,
    gflop,
    percent,
    table,
)


def _failures(sides: dict) -> list[str]:
    """The last lines of the log of each side that failed."""
    lines = []
    for side, summary in sides.items():
        if not summary["available"]:
            lines += ["", f"{side} failed; last lines of its log:", "", "```"]
            lines += [summary["error"][-800:], "```"]
    return lines


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
                gflop(work["flops_per_step"]),
            ]
        )
    lines += ["Work per step (median over the timed steps):", ""]
    lines += table(work_header, rows)
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
                fmt_range(summary["flops_per_step"], gflop),
                fmt_range(summary["mfu"], percent),
                fmt_range(summary["peak_rss_mib"], lambda v: f"{v:.0f}"),
                summary["steps_recorded"],
            ]
        )
    lines += ["", "Time, FLOPs (per timed cycle) and memory:", ""]
    lines += table(header, rows)
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
    return lines + _failures(sides) + [""]


def rl_step_section(data: dict) -> list[str]:
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


def trl_penalty_section(data: dict) -> list[str]:
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
    lines += table(header, rows)
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
    return lines + _failures(sides) + [""]
