"""``pmrlhf lm compare``: KL vs PM vs conditional PM from the same start and seed.

Pipeline: load the model; SFT on the task's candidates (a reference that answers in the
format, with no preference of its own); evaluate it; then, for each method, copy it, run RL
against the oracle reward and evaluate exactly (THEORY.md §4–5).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .._fingerprint import fingerprint
from .._io import atomic_save_figure, atomic_write_csv, atomic_write_json
from .evaluate import evaluate_candidates
from .models import load_model
from .rl import RLConfig, train_rl
from .sft import SFTConfig, candidate_pairs, sft_on_pairs
from .tasks import load_task

SUMMARY_KEYS = (
    "kl_to_target",
    "tv_to_target",
    "minority_mass",
    "target_minority_mass",
    "coverage",
    "pairwise_pmd",
    "mean_reward",
)


@dataclass
class Method:
    name: str
    regularizer: str
    beta: float
    alpha: float | None = None


DEFAULT_METHODS = (
    Method("KL-RLHF", "kl", 0.1),
    Method("PM-RLHF", "pm", 1.0),
    Method("cPM-RLHF", "cpm", 1.0, 0.1),
)


def grid_methods(betas, alphas) -> tuple[Method, ...]:
    """KL-RLHF at every ``beta`` and conditional PM at every ``(beta, alpha)``: the
    paper's table (``pmrlhf lm compare --betas ... --alphas ...``)."""
    from .._validation import check_alpha, check_beta

    betas = [check_beta(b, "betas") for b in betas]
    alphas = [check_alpha(a, "alphas") for a in alphas]
    if not betas or not alphas:
        raise ValueError("betas and alphas must each hold at least one value")
    methods = [Method(f"KL-RLHF b={b:g}", "kl", b) for b in betas]
    methods += [Method(f"cPM-RLHF b={b:g} a={a:g}", "cpm", b, a) for b in betas for a in alphas]
    return tuple(methods)


def pmd_improvement(table: pd.DataFrame, methods) -> pd.Series:
    """``100 (1 - PMD / PMD_KL)`` per row, against KL-RLHF at the row's ``beta`` (or the first
    KL method when there is none at that ``beta``); NaN for rows that are not methods."""
    kl_by_beta = {}
    for m in methods:
        if m.regularizer == "kl":
            kl_by_beta.setdefault(m.beta, m.name)
    if not kl_by_beta:
        return pd.Series(np.nan, index=table.index)
    pmd = table.set_index("method").pairwise_pmd
    first = next(iter(kl_by_beta.values()))
    beta_of = {m.name: m.beta for m in methods}
    baseline = table.method.map(
        lambda name: pmd[kl_by_beta.get(beta_of[name], first)] if name in beta_of else np.nan
    )
    return 100 * (1 - table.pairwise_pmd / baseline)


@dataclass
class CompareConfig:
    task: str = "three_answers"
    model: str = "smollm2-135m"
    seed: int = 0
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    methods: tuple[Method, ...] = DEFAULT_METHODS
    threads: int | None = None


def quick_config(
    task: str = "three_answers", model: str = "tiny-llama", seed: int = 0
) -> CompareConfig:
    """Seconds, not minutes: for CI and ``pmrlhf reproduce --quick``."""
    return CompareConfig(
        task=task,
        model=model,
        seed=seed,
        sft=SFTConfig(steps=5, batch_size=4, lr=1e-3, seed=seed),
        rl=RLConfig(steps=3, max_new_tokens=4, lr=1e-3, seed=seed),
    )


def oracle_reward_fn(task):
    """Exact task reward of a sampled text: its candidate's BTL logit, or below all of them."""
    rewards = task.oracle_rewards()

    def reward(prompt_index: int, text: str, finished: bool) -> float:
        candidates = task.prompts[prompt_index].candidates
        answer = text.strip()
        if finished and answer in candidates:
            return float(rewards[prompt_index][candidates.index(answer)])
        return task.off_candidate_reward(prompt_index)

    return reward


def method_fingerprint(config: CompareConfig, method: Method | None, task, *, code: str) -> str:
    """What a method's result depends on: task, model, seed, SFT and RL settings, the method
    (``None``: the SFT reference) and ``code``, the digest of the layers below the report
    (:func:`code_digest`, computed once per comparison)."""
    options = {
        "code": code,
        "task": asdict(task),
        "model": config.model,
        "seed": config.seed,
        "sft": asdict(config.sft),
        "rl": asdict(config.rl),
        "method": None if method is None else asdict(method),
    }
    return fingerprint(options)


def code_digest() -> str:
    """Digest of the source of the layers a comparison's results depend on."""
    return fingerprint(None, layers=("theory", "simulate", "lm_experiments"))


def _cached(path: Path, key: str) -> dict | None:
    """The result stored at ``path`` if it was computed under fingerprint ``key``."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or cut short: compute it again
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != key:
        return None
    return saved


def run_compare(
    config: CompareConfig, out, *, progress: bool = True, resume: bool = True
) -> dict:
    """Train and evaluate every method; write ``summary.json``, ``summary.csv`` and a figure.

    Each method's evaluation is stored in ``out/runs/<method>/eval.json`` as soon as it is
    done, with a fingerprint of everything it depends on. With ``resume`` (the default), a
    method whose stored fingerprint matches is not trained again, so an interrupted
    comparison continues with the next method; when every method is stored, no model is
    loaded at all. Each RL run seeds itself (``train_rl``), so skipping a method does not
    change the others. ``resume=False`` retrains everything; so should a caller whose
    model folder changed in place (a model is identified by its name or path, not its
    weights).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = load_task(config.task)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    names = ["reference (SFT)", *(m.name for m in config.methods)]
    paths = {"reference (SFT)": out / "reference_eval.json"}
    paths |= {m.name: out / "runs" / m.name / "eval.json" for m in config.methods}
    code = code_digest()
    keys = {"reference (SFT)": method_fingerprint(config, None, task, code=code)}
    keys |= {m.name: method_fingerprint(config, m, task, code=code) for m in config.methods}
    stored = {name: _cached(paths[name], keys[name]) if resume else None for name in names}
    results = {name: saved["result"] for name, saved in stored.items() if saved}
    reused = [name for name in names if stored[name]]
    sft_losses = stored["reference (SFT)"]["sft_losses"] if stored["reference (SFT)"] else None
    if len(results) < len(names):
        reused = [name for name in reused if name != "reference (SFT)"]  # SFT is redone
        torch.manual_seed(config.seed)
        model, tokenizer = load_model(config.model, seed=config.seed)
        sft_started = time.perf_counter()
        # Redone on resume: the same seed gives the same reference (deterministic SFT).
        sft_losses = sft_on_pairs(
            model, tokenizer, candidate_pairs(task), config.sft, progress=progress
        )
        reference = model
        reference.eval()
        if "reference (SFT)" not in results:
            results["reference (SFT)"] = evaluate_candidates(reference, tokenizer, task)
            _store(
                paths["reference (SFT)"],
                keys["reference (SFT)"],
                results["reference (SFT)"],
                time.perf_counter() - sft_started,
                sft_losses=sft_losses,
            )
    for method in config.methods:
        if method.name in results:
            if progress:
                print(f"[{method.name}] stored result reused ({paths[method.name]})")
            continue
        method_started = time.perf_counter()
        policy = copy.deepcopy(reference)
        rl = RLConfig(
            **{
                **asdict(config.rl),
                "regularizer": method.regularizer,
                "beta": method.beta,
                "alpha": method.alpha,
            }
        )
        run_dir = out / "runs" / method.name
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        train_rl(
            policy,
            reference,
            tokenizer,
            task,
            oracle_reward_fn(task),
            rl,
            run_dir=run_dir,
            progress=progress,
        )
        results[method.name] = evaluate_candidates(policy, tokenizer, task)
        _store(
            paths[method.name],
            keys[method.name],
            results[method.name],
            time.perf_counter() - method_started,
        )
        del policy
    results = {name: results[name] for name in names}
    # Compute time of the whole comparison, stored results included.
    seconds = time.perf_counter() - started + sum(stored[name]["seconds"] for name in reused)
    table = pd.DataFrame(
        [{"method": name, **{k: r[k] for k in SUMMARY_KEYS}} for name, r in results.items()]
    )
    table["pmd_improvement_over_kl_pct"] = pmd_improvement(table, config.methods)
    summary = {
        "task": task.name,
        "model": config.model,
        "seed": config.seed,
        "seconds": round(seconds, 1),
        "reused": reused,
        "config": {
            "sft": asdict(config.sft),
            "rl": asdict(config.rl),
            "methods": [asdict(m) for m in config.methods],
        },
        "sft_final_loss": sft_losses[-1],
        "methods": {
            name: {
                k: r[k]
                for k in (
                    *SUMMARY_KEYS,
                    "kl_to_population",
                    "tv_to_population",
                    "abs_logodds_gap",
                    "distributions",
                )
            }
            for name, r in results.items()
        },
        "targets": [p.target.tolist() for p in task.prompts],
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_csv(out / "summary.csv", table)
    _save_figures(out, summary, task)
    return summary


def _store(path: Path, key: str, result: dict, seconds: float, **extra) -> None:
    atomic_write_json(path, {"fingerprint": key, "seconds": seconds, **extra, "result": result})


FIGURES = ("lm_compare.png", "lm_implied_preferences.png")


def _save_figures(out: Path, summary: dict, task) -> list[Path]:
    import matplotlib.pyplot as plt

    paths = []
    for name, draw in zip(FIGURES, (_figure, _implied_figure), strict=True):
        figure = draw(summary, task)
        paths.append(atomic_save_figure(out / name, figure))
        plt.close(figure)
    return paths


def figure_from_summary(out) -> list[Path]:
    """Redraw the figures of :data:`FIGURES` from a run's ``summary.json`` (no training)."""
    import json

    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    return _save_figures(out, summary, load_task(summary["task"]))


def implied_preferences(summary: dict, task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method (and the reference): ``(p_r, p_pi)`` over every candidate pair of every
    prompt, oriented so that the reward prefers the first candidate (THEORY.md §5)."""
    from scipy.special import expit

    rewards = task.oracle_rewards()
    out = {}
    for name, values in summary["methods"].items():
        targets, implied = [], []
        for reward, pi in zip(rewards, values["distributions"], strict=True):
            reward, log_pi = np.asarray(reward, float), np.log(np.asarray(pi, float))
            i, j = np.triu_indices(reward.size, k=1)
            swap = reward[j] > reward[i]
            a, b = np.where(swap, j, i), np.where(swap, i, j)
            targets.append(expit(reward[a] - reward[b]))
            implied.append(expit(log_pi[a] - log_pi[b]))
        out[name] = (np.concatenate(targets), np.concatenate(implied))
    return out


def _figure(summary, task):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(summary["methods"])
    prompts = task.prompts
    fig, axes = plt.subplots(
        1, len(prompts) + 1, figsize=(3.3 * (len(prompts) + 1), 3.8), squeeze=False
    )
    axes = axes[0]
    width = 0.8 / (len(names) + 1)
    colors = ["#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"]
    for j, (ax, prompt) in enumerate(zip(axes, prompts, strict=False)):
        x = np.arange(len(prompt.candidates))
        ax.bar(x, prompt.target, width, color="black", label="target (preferences)")
        for m, name in enumerate(names):
            coverage = summary["methods"][name]["coverage"]
            ax.bar(
                x + (m + 1) * width,
                summary["methods"][name]["distributions"][j],
                width,
                color=colors[m % len(colors)],
                label=f"{name} (mass on candidates {coverage:.2f})",
            )
        ax.set_xticks(x + width * len(names) / 2, prompt.candidates)
        ax.set(
            ylim=(0, 1),
            title=f"prompt {j + 1}",
            ylabel="probability among candidates" if j == 0 else None,
        )
    pmd = [summary["methods"][n]["pairwise_pmd"] for n in names]
    axes[-1].bar(range(len(names)), pmd, color=colors[: len(names)])
    axes[-1].set_xticks(range(len(names)), names, rotation=30, ha="right")
    axes[-1].set(
        title="pairwise PM divergence\n(lower = better)", ylabel="mean KL(Bern(p_r) || Bern(p_pi))"
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle(
        f"{summary['model']} on '{summary['task']}': candidate distributions after RL", fontsize=12
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _implied_figure(summary, task):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = implied_preferences(summary, task)
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    colors = ["#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    markers = "osD^v<>"
    ax.plot([0.5, 1], [0.5, 1], color="black", lw=1, label="matches the preferences")
    spread = 0.012  # side by side: every prompt of a task may share the same p_r values
    for k, (name, (target, implied)) in enumerate(pairs.items()):
        pmd = summary["methods"][name]["pairwise_pmd"]
        ax.scatter(
            target + spread * (k - (len(pairs) - 1) / 2),
            implied,
            s=40,
            alpha=0.85,
            color=colors[k % len(colors)],
            marker=markers[k % len(markers)],
            label=f"{name} (PMD {pmd:.3g})",
        )
    ax.set(
        xlim=(0.45, 1.0),
        ylim=(-0.02, 1.02),
        xlabel="preference for the better answer, p_r = sigma(r(a) - r(b))",
        ylabel="model's implied preference, pi(a) / (pi(a) + pi(b))",
        title=f"{summary['model']} on '{summary['task']}': every candidate pair\n"
        "(on the diagonal = preference matching; at 1 = collapse;\n"
        "methods side by side at each p_r)",
    )
    ax.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    return fig
