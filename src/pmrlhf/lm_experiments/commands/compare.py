"""``pmrlhf lm compare``: KL vs PM vs conditional PM from the same reference, several seeds.

For each seed: load the model, SFT it on the task's candidates (the reference), compute
every method's exact optimum given that reference (docs/theory.md §7), then train each
method with RL against the oracle reward, tracking its distance to the optimum, and
evaluate it exactly (docs/theory.md §5). Seeds are then summarised with means and
t-intervals (:mod:`~pmrlhf.lm_experiments.evaluate.summary`).
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..._fingerprint import git_state, load_stored, store
from ..._io import atomic_write_csv, atomic_write_json, remove_stale_temp_files
from ..._lock import run_folder
from ..._validation import check_out_dir
from ..data.tasks import load_task
from ..evaluate.exact import evaluate_candidates
from ..evaluate.predictions import prediction_table, reference_predictions
from ..evaluate.summary import (
    aggregate,
    paired_differences,
    seed_metrics,
    summary_table,
    task_targets,
)
from ..train.checkpoint import remove_checkpoint_staging
from ..train.method import REFERENCE
from .compare_config import CompareConfig
from .compare_reference import (
    Reference,
    method_fingerprint,
    prepare_reference,
    reference_fingerprint,
)
from .workflow import train_and_evaluate


def run_seed(
    config: CompareConfig,
    task,
    seed: int,
    out: Path,
    *,
    progress=True,
    resume=True,
    references: dict | None = None,
    on_reference=None,
) -> dict[str, dict]:
    """One seed: SFT reference, optima, RL per method, evaluations (stored as they finish).

    Returns ``{name: {"evaluation", "optimum", "curve", "seconds"}}`` for the reference and
    every method. A stored result with a matching fingerprint is reused (``resume``).
    ``references`` maps :func:`reference_fingerprint` to a :class:`Reference` already
    trained in this process (reused, and the newest one kept there); ``on_reference`` is
    called with this seed's reference, new or reused, before any RL step (the comparison
    writes its prediction then).
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
    references = {} if references is None else references
    key = reference_fingerprint(config, task, seed)
    ref = references.get(key)
    if ref is None:
        # Redone on resume: the same seed gives the same reference (deterministic SFT).
        ref = prepare_reference(config, task, seed, progress=progress)
        references.clear()  # one model kept: seeds that share a reference come in a row
        references[key] = ref
        spent = ref.seconds
    else:
        spent = 0.0
        if progress:
            print(f"[seed {seed}] the reference trained for seed(s) {ref.seeds} is reused")
    ref.seeds.append(seed)
    if on_reference is not None:
        on_reference(ref)
    if REFERENCE not in results:
        results[REFERENCE] = store(
            paths[REFERENCE],
            keys[REFERENCE],
            evaluation=ref.evaluation,
            seconds=spent,
            sft_losses=ref.sft_losses,
            max_len=ref.max_len,
        )
    for method in (m for m in config.methods if m.name not in results):
        results[method.name] = _train_method(
            config,
            task,
            seed,
            method,
            ref,
            paths[method.name],
            keys[method.name],
            progress=progress,
        )
    return results


def _train_method(config, task, seed, method, ref: Reference, path: Path, key: str, *, progress):
    """RL of one method from the reference, its curve of TV to the optimum, and its exact
    evaluation, stored under ``key`` at ``path``."""
    started = time.perf_counter()
    position = config.seeds.index(seed) * len(config.methods) + config.methods.index(method) + 1
    total = len(config.seeds) * len(config.methods)
    policy = copy.deepcopy(ref.model)
    rl = config.rl.with_method(method)
    optimum, curve = ref.optima[method.name], []

    def on_eval(step, policy):
        now = evaluate_candidates(policy, ref.tokenizer, task)
        distance = seed_metrics(now, optimum)["tv_to_optimum"]
        curve.append([step, distance])
        return {"tv_to_optimum": distance}

    if rl.eval_every:
        on_eval(0, policy)
    run_dir = path.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    evaluation = train_and_evaluate(
        policy,
        ref.model,
        ref.tokenizer,
        task,
        ref.reward,
        rl,
        seed=seed,
        run_dir=run_dir,
        progress=progress,
        label=f"seed {seed} · {method.name} ({position}/{total})",
        on_eval=on_eval,
    )
    result = store(
        path,
        key,
        evaluation=evaluation,
        optimum=optimum,
        curve=curve,
        seconds=time.perf_counter() - started,
    )
    # The checkpoint only lets an interrupted method resume; once its evaluation is
    # stored it is three models' weight (weights and Adam's two moments) of no further use.
    # `pmrlhf lm run` keeps its policy for later use.
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    return result


def run_compare(config: CompareConfig, out, *, progress: bool = True, resume: bool = True):
    """Train and evaluate every method for every seed; write ``summary.json`` (the contract
    of :mod:`~pmrlhf.lm_experiments.evaluate.summary`), ``summary.csv`` and the figures of
    :data:`~pmrlhf.lm_experiments.evaluate.plots.FIGURES`.

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
    task = load_task(config.validate().task)
    out = check_out_dir(out, "out")
    with run_folder(out, cleanup=[lambda folder: _remove_leftovers(folder, config)]):
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
    from ..evaluate.plots import save_figures

    started = time.perf_counter()
    per_seed = {name: [] for name in (REFERENCE, *(m.name for m in config.methods))}
    references, predicted = {}, {}

    def on_reference(ref: Reference) -> None:
        """Write (and on first sight print) the prediction before RL starts."""
        if ref.key in predicted:  # a reused reference: only its list of seeds grows
            predicted[ref.key]["seeds"] = list(ref.seeds)
        else:
            predicted[ref.key] = reference_predictions(
                task, config.methods, ref.optima, ref.evaluation, ref.seeds
            )
            if progress:
                print(prediction_table(predicted[ref.key]))
        atomic_write_json(
            out / "predictions.json",
            {"task": task.name, "model": config.model, "references": list(predicted.values())},
        )

    for seed in config.seeds:
        results = run_seed(
            config,
            task,
            seed,
            out / f"seed{seed}",
            progress=progress,
            resume=resume,
            references=references,
            on_reference=on_reference,
        )
        for name, result in results.items():
            per_seed[name].append(result)
    methods = aggregate(config.seeds, config.methods, per_seed)
    summary = {
        "task": task.name,
        "model": config.model,
        "seeds": list(config.seeds),
        "code": git_state(),
        "compute_seconds": round(sum(r["seconds"] for rs in per_seed.values() for r in rs), 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "run_seconds": {  # per method, one entry per seed
            name: [round(r["seconds"], 1) for r in runs] for name, runs in per_seed.items()
        },
        "torch_threads": torch.get_num_threads(),
        "max_new_tokens": per_seed[REFERENCE][0]["max_len"],
        "config": {
            "sft": asdict(config.sft),
            "rl": config.rl.shared_settings(),  # the methods own regularizer, beta, alpha
            "methods": [asdict(m) for m in config.methods],
        },
        "sft_final_loss": [
            r["sft_losses"][-1] if r["sft_losses"] else None for r in per_seed[REFERENCE]
        ],
        "methods": methods,
        "paired": paired_differences(config.methods, methods),
        "prompts": task_targets(task),
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_csv(out / "summary.csv", summary_table(summary))
    save_figures(out, summary)
    return summary
