"""``pmrlhf lm compare``: KL vs PM vs conditional PM from the same reference, several seeds.

For each seed: load the model, SFT it on the task's candidates (the reference), compute
every method's exact optimum given that reference (docs/theory.md §7), then train each
method with RL against the oracle reward, tracking its distance to the optimum, and
evaluate it exactly (docs/theory.md §5). Seeds are then summarised with means and
t-intervals (:mod:`.summary`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .._fingerprint import fingerprint, load_stored, store
from .._io import atomic_write_csv, atomic_write_json, remove_stale_temp_files
from .._lock import run_lock
from .._validation import check_alpha, check_beta, check_out_dir
from ..errors import PmrlhfUserError
from ..theory.regularizers import check_regularizer
from .checkpoint import remove_checkpoint_staging
from .evaluate import evaluate_candidates
from .models import SMOLLM2, resolve_name
from .optima import method_optima
from .oracle import OracleReward
from .rl import RLConfig
from .sft import SFTConfig
from .summary import REFERENCE, aggregate, seed_metrics, summary_table, task_targets
from .tasks import DEFAULT_TASK, load_task
from .workflow import sft_reference, train_and_evaluate


@dataclass(frozen=True)
class Method:
    """One RL objective: a regularizer at a strength ``beta`` (and cPM's ``alpha``)."""

    name: str
    regularizer: str
    beta: float
    alpha: float | None = None

    def validate(self) -> Method:
        check_regularizer(self.regularizer, ref_given=True, alpha=self.alpha)
        check_beta(self.beta, f"beta of method {self.name!r}")
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise PmrlhfUserError(
                f"method name must be a non-empty string without '/', got {self.name!r}"
            )
        return self


# KL at beta 0.1 is how RLHF is run in practice; the other three compare at matched beta 1,
# where PM's optimum softmax(r / beta) is the preference distribution (docs/theory.md §3).
DEFAULT_METHODS = (
    Method("KL b=0.1", "kl", 0.1),
    Method("KL b=1", "kl", 1.0),
    Method("PM b=1", "pm", 1.0),
    Method("cPM b=1 a=0.1", "cpm", 1.0, 0.1),
)


def grid_methods(betas, alphas) -> tuple[Method, ...]:
    """KL and plain PM at every ``beta``, conditional PM at every ``(beta, alpha)``: the
    paper's table (``pmrlhf lm compare --betas ... --alphas ...``)."""
    betas = [check_beta(b, "betas") for b in betas]
    alphas = [check_alpha(a, "alphas") for a in alphas]
    if not betas or not alphas:
        raise PmrlhfUserError("betas and alphas must each hold at least one value")
    methods = [Method(f"KL b={b:g}", "kl", b) for b in betas]
    methods += [Method(f"PM b={b:g}", "pm", b) for b in betas]
    methods += [Method(f"cPM b={b:g} a={a:g}", "cpm", b, a) for b in betas for a in alphas]
    return tuple(methods)


def check_seeds(seeds) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct non-negative ints (``PmrlhfUserError`` naming ``seeds``)."""
    if isinstance(seeds, int | str) or not hasattr(seeds, "__iter__"):
        raise PmrlhfUserError(f"seeds must be a list of ints, got {seeds!r}")
    seeds = tuple(seeds)
    if not seeds:
        raise PmrlhfUserError("seeds must hold at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0:
            raise PmrlhfUserError(f"seeds must be non-negative ints, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise PmrlhfUserError(f"seeds must be distinct, got {list(seeds)}")
    return tuple(int(s) for s in seeds)


@dataclass
class CompareConfig:
    """A comparison. Each seed owns its SFT, its RL sampling and its evaluation; ``rl``
    holds the shared RL settings (a method sets regularizer, beta and alpha)."""

    task: str = DEFAULT_TASK
    model: str = SMOLLM2
    seeds: tuple[int, ...] = (0, 1, 2)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=lambda: RLConfig(eval_every=5))
    methods: tuple[Method, ...] = DEFAULT_METHODS

    def validate(self):
        """Check every field before anything is written or loaded; returns the task."""
        self.seeds = check_seeds(self.seeds)
        resolve_name(self.model)
        self.sft.validate()
        self.rl.validate()
        if not self.methods:
            raise PmrlhfUserError("methods must hold at least one method")
        for method in self.methods:
            method.validate()
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names) or REFERENCE in names:
            raise PmrlhfUserError(f"method names must be distinct and not {REFERENCE!r}: {names}")
        return load_task(self.task)


def quick_config(task: str = DEFAULT_TASK, model: str = "tiny-llama", seeds=(0, 1)):
    """Seconds, not minutes: for CI and ``pmrlhf reproduce --quick``."""
    return CompareConfig(
        task=task,
        model=model,
        seeds=tuple(seeds),
        sft=SFTConfig(steps=5, lr=1e-3),
        rl=RLConfig(steps=3, samples_per_prompt=4, lr=1e-3, eval_every=1),
    )


def method_fingerprint(config: CompareConfig, task, seed: int, method) -> str:
    """What one seed's result of a method depends on (``None``: the SFT reference)."""
    options = {
        "task": task.to_dict(),
        "model": config.model,
        "seed": seed,
        "sft": asdict(config.sft),
        "rl": asdict(config.rl),
        "method": None if method is None else asdict(method),
    }
    return fingerprint(options)


def run_seed(
    config: CompareConfig, task, seed: int, out: Path, *, progress=True, resume=True
) -> dict[str, dict]:
    """One seed: SFT reference, optima, RL per method, evaluations (stored as they finish).

    Returns ``{name: {"evaluation", "optimum", "curve", "seconds"}}`` for the reference and
    every method. A stored result with a matching fingerprint is reused (``resume``).
    """
    names = [REFERENCE, *(m.name for m in config.methods)]
    paths = {REFERENCE: out / "reference.json"}
    paths |= {m.name: out / "runs" / m.name.replace(" ", "_") / "eval.json" for m in config.methods}
    keys = {REFERENCE: method_fingerprint(config, task, seed, None)}
    keys |= {m.name: method_fingerprint(config, task, seed, m) for m in config.methods}
    results = {}
    for name in names:
        saved = load_stored(paths[name], keys[name]) if resume else None
        if saved:
            results[name] = saved
            if progress:
                print(f"[seed {seed}, {name}] stored result reused ({paths[name]})")
    if len(results) == len(names):
        return results
    started = time.perf_counter()
    # Redone on resume: the same seed gives the same reference (deterministic SFT).
    reference, tokenizer, sft_losses = sft_reference(
        config.model, task, config.sft, seed=seed, progress=progress
    )
    reward = OracleReward(task, tokenizer)
    max_len = config.rl.max_new_tokens or reward.max_len
    todo = [m for m in config.methods if m.name not in results]
    optima = method_optima(reference, tokenizer, task, todo, max_len=max_len)
    if REFERENCE not in results:
        results[REFERENCE] = store(
            paths[REFERENCE],
            keys[REFERENCE],
            evaluation=evaluate_candidates(reference, tokenizer, task),
            seconds=time.perf_counter() - started,
            sft_losses=sft_losses,
            max_len=max_len,
        )
    for method in todo:
        method_started = time.perf_counter()
        policy = copy.deepcopy(reference)
        rl = replace(
            config.rl, regularizer=method.regularizer, beta=method.beta, alpha=method.alpha
        )
        curve = []

        def on_eval(step, policy, optimum=optima[method.name], curve=curve):
            now = evaluate_candidates(policy, tokenizer, task)
            distance = seed_metrics(now, optimum)["tv_to_optimum"]
            curve.append([step, distance])
            return {"tv_to_optimum": distance}

        if rl.eval_every:
            on_eval(0, policy)
        run_dir = paths[method.name].parent
        run_dir.mkdir(parents=True, exist_ok=True)
        evaluation = train_and_evaluate(
            policy,
            reference,
            tokenizer,
            task,
            reward,
            rl,
            seed=seed,
            run_dir=run_dir,
            progress=progress,
            on_eval=on_eval,
        )
        results[method.name] = store(
            paths[method.name],
            keys[method.name],
            evaluation=evaluation,
            optimum=optima[method.name],
            curve=curve,
            seconds=time.perf_counter() - method_started,
        )
        del policy
    return results


def run_compare(config: CompareConfig, out, *, progress: bool = True, resume: bool = True):
    """Train and evaluate every method for every seed; write ``summary.json`` (the contract
    of :mod:`.summary`), ``summary.csv`` and the figures of :data:`.plots.FIGURES`.

    Each seed's results are stored in ``out/seed<S>/`` as soon as they are done, with a
    fingerprint of the options they depend on (:mod:`pmrlhf._fingerprint`). With ``resume``
    (the default) a stored result whose fingerprint matches is not computed again, so an
    interrupted comparison continues where it stopped (the only cache of the LM work:
    ``pmrlhf reproduce`` runs its LM stage every time and lets this skip); ``resume=False``
    recomputes everything (do so after changing the code, or a model folder in place).

    ``out`` is locked for the comparison (:func:`pmrlhf._lock.run_lock`): a second process
    there fails at once. Temporary files and checkpoint staging folders that an interrupted
    comparison left are removed first.

    Raises
    ------
    PmrlhfUserError
        An invalid setting (checked before anything is written or any model is loaded).
    FolderBusyError
        Another process is running in ``out``.
    """
    task = config.validate()
    out = check_out_dir(out, "out")
    with run_lock(out):
        _remove_leftovers(out, config)
        return _compare_locked(config, task, out, progress=progress, resume=resume)


def _remove_leftovers(out: Path, config: CompareConfig) -> None:
    """Temporary files and checkpoint staging of interrupted writes, in every run folder."""
    folders = [out]
    for seed in config.seeds:
        folders.append(out / f"seed{seed}")
        runs = out / f"seed{seed}" / "runs"
        folders += sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    for folder in folders:
        remove_stale_temp_files(folder)
        remove_checkpoint_staging(folder / "checkpoint")


def _compare_locked(config: CompareConfig, task, out: Path, *, progress: bool, resume: bool):
    from .plots import save_figures

    started = time.perf_counter()
    per_seed = {name: [] for name in (REFERENCE, *(m.name for m in config.methods))}
    seconds = 0.0
    for seed in config.seeds:
        results = run_seed(
            config, task, seed, out / f"seed{seed}", progress=progress, resume=resume
        )
        for name, result in results.items():
            per_seed[name].append(result)
            seconds += result["seconds"]
    methods = aggregate(config.seeds, config.methods, per_seed)
    rl = asdict(config.rl)
    for key in ("regularizer", "beta", "alpha"):  # the methods own these
        rl.pop(key)
    summary = {
        "task": task.name,
        "model": config.model,
        "seeds": list(config.seeds),
        "compute_seconds": round(seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "max_new_tokens": per_seed[REFERENCE][0]["max_len"],
        "config": {
            "sft": asdict(config.sft),
            "rl": rl,
            "methods": [asdict(m) for m in config.methods],
        },
        "sft_final_loss": [
            r["sft_losses"][-1] if r["sft_losses"] else None for r in per_seed[REFERENCE]
        ],
        "methods": methods,
        "prompts": task_targets(task),
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_csv(out / "summary.csv", summary_table(summary))
    save_figures(out, summary)
    return summary


__all__ = [
    "DEFAULT_METHODS",
    "CompareConfig",
    "Method",
    "check_seeds",
    "grid_methods",
    "quick_config",
    "run_compare",
]
