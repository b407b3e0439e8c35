"""``pmrlhf lm trl``: one run of TRL's trainer on a synthetic task, scored like ``lm run``.

The run mirrors :func:`pmrlhf.lm_experiments.commands.single_run.run_one` with TRL doing
the RL: the same :class:`~pmrlhf.lm_experiments.commands.run_config.RunConfig` (model,
task, seed, SFT, ``rl.*``), the same SFT reference, the same optimizer (AdamW, no weight
decay) and learning-rate schedule
(:func:`~pmrlhf.lm_experiments.train.rloo_estimators.lr_factor`), every prompt x
``rl.samples_per_prompt`` completions per step, at most the task's longest candidate new
tokens, temperature 1 with
no top-p / top-k; then :class:`~pmrlhf.trl.PMRLOOTrainer` (``trainer="rloo"``) or
:class:`~pmrlhf.trl.PMGRPOTrainer` (``"grpo"``) with ``rl.regularizer``, ``rl.beta``,
``rl.alpha``. TRL's penalty gradient is the sampled one (``RLConfig.penalty_gradient=
"sampled"``, docs/theory.md §4). GRPO's ``scale_rewards`` is ``"none"`` with PM and cPM
unless asked otherwise, so that the updates follow ``E[r] - beta E[sum_t c_t]``, whose
optimum is ``softmax(r / beta)``; TRL's ``"group"`` with KL. Files in ``out``:
``config.yaml``, ``metrics.jsonl`` (TRL's log history, with the exact evaluation of
:class:`~pmrlhf.trl.PreferenceMatchingCallback` every ``eval_every`` steps),
``eval.json`` in ``lm run``'s schema, so the two trainers go on one table, and
``trainer/``, TRL's ``output_dir``: its latest checkpoint ``checkpoint-N`` (every
``save_every`` steps), from which ``resume`` continues an interrupted run (TRL's
``resume_from_checkpoint``: policy, optimizer, schedule, RNG and log history; the SFT
reference is made again, seeded as before), and what ``report_to`` writes there
(TensorBoard's ``runs/``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from .._io import atomic_write_json, atomic_write_text, json_ready
from .._lock import check_not_busy, run_folder
from .._validation import check_choice, check_count, check_out_dir
from .._yaml import read_data_file
from ..errors import PmrlhfTypeError, PmrlhfUserError
from .arguments import TRAINERS, check_report_to, grpo_scale_rewards, trl_config

"""GRPO's ``scale_rewards`` values (TRL 1.16)."""
RUN_FILES = ("metrics.jsonl", "eval.json", "config.yaml")
"""What ``lm trl`` writes in its folder, with :data:`TRAINER_DIR`; ``restart`` removes them."""
TRAINER_DIR = "trainer"
"""TRL's ``output_dir`` in a run folder: checkpoints and ``report_to`` logs."""


def run_trl(
    config,
    out,
    *,
    trainer: str = "rloo",
    eval_every: int = 10,
    restart: bool = False,
    progress: bool = True,
    scale_rewards: str | None = None,
    resume: bool = False,
    save_every: int = 10,
    report_to: str | list[str] = "none",
) -> dict:
    """SFT, then TRL's RLOO or GRPO with ``config.rl.regularizer``, then exact evaluation.

    Parameters
    ----------
    config : RunConfig
        As for ``lm run``; ``reward`` must be ``"oracle"``. Used of ``rl``: regularizer,
        beta, alpha, steps, prompts_per_step, samples_per_prompt, max_new_tokens, lr,
        warmup_steps, lr_final, inner_epochs (TRL's ``num_iterations``), clip (TRL's
        ``epsilon``, default 0.2), temperature, max_grad_norm.
    out : path
        The run folder, locked for the run; one that already holds a run is refused
        unless ``restart`` (discard it) or, for an unfinished one, ``resume``.
    trainer : {"rloo", "grpo"}
    eval_every : int
        Exact evaluation every this many steps (0: only at the end).
    scale_rewards : {"group", "batch", "none"} or None
        GRPO's reward scaling (``trainer="grpo"`` only); None: ``"none"`` with ``"pm"`` and
        ``"cpm"`` (a scaled penalty no longer follows ``E[r] - beta E[sum_t c_t]``, see
        :func:`~pmrlhf.trl.config.warn_objective`), TRL's ``"group"`` with ``"kl"``.
    resume : bool
        Continue the unfinished run in ``out`` from its latest checkpoint; its
        ``config.yaml`` must hold the same settings.
    save_every : int
        A checkpoint (the latest one kept) every this many steps; 0: none, and no resume.
    report_to : str or list of str
        TRL's (transformers') ``report_to``: ``"none"`` (default), ``"all"``,
        ``"tensorboard"``, ``"wandb"``, ...

    Returns
    -------
    The evaluation written to ``out/eval.json`` (:func:`~pmrlhf.lm_experiments.
    evaluate_candidates` of the trained policy, with ``reference``: the SFT model's).

    Raises
    ------
    ValueError
        An invalid setting, ``out`` already holding a run, a finished run or other
        settings with ``resume``, ``resume`` with ``restart`` (before anything is loaded).
    FileNotFoundError
        ``resume`` without a checkpoint in ``out``.
    FolderBusyError
        Another process is running in ``out``.
    """
    from ..lm_experiments.commands.run_config import RunConfig
    from ..lm_experiments.data.tasks import load_task

    if not isinstance(config, RunConfig):
        raise PmrlhfTypeError(f"config must be a RunConfig, got {type(config).__name__}")
    task = load_task(config.validate().task)
    check_choice(trainer, "trainer", TRAINERS)
    scale_rewards = grpo_scale_rewards(trainer, config.rl.regularizer, scale_rewards)
    if config.reward != "oracle":
        raise PmrlhfUserError(f"lm trl supports reward='oracle' only, got reward={config.reward!r}")
    check_count(eval_every, "eval_every", 0)
    check_count(save_every, "save_every", 0)
    report_to = check_report_to(report_to)
    if resume and restart:
        raise PmrlhfUserError("--resume and --restart exclude each other: pick one")
    out = check_out_dir(out, "out")
    settings = {**asdict(config), "trainer": trainer, "eval_every": eval_every}
    if scale_rewards is not None:
        settings["scale_rewards"] = scale_rewards
    _check_folder(out, settings, resume=resume, restart=restart)
    with run_folder(
        out,
        check=lambda: _check_folder(out, settings, resume=resume, restart=restart),
        discard=_discard_run if restart else None,
    ) as checkpoint:
        run = _RunSettings(trainer, eval_every, progress, scale_rewards, save_every, report_to)
        return _run_locked(config, task, out, settings, run, checkpoint)


def _discard_run(out: Path) -> None:
    """Remove a previous run's files (``--restart``, under the folder's lock)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)


def latest_checkpoint(out: Path) -> Path | None:
    """TRL's latest ``checkpoint-N`` folder in ``out/trainer``, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / TRAINER_DIR
    found = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    return None if found is None else Path(found)


def _check_folder(out: Path, settings: dict, *, resume: bool, restart: bool) -> Path | None:
    """Refuse to overwrite a run, or to resume without a checkpoint, a finished run or
    other settings; the message says what would work instead. Returns the checkpoint to
    resume from (None for a fresh run). A folder another process is running in is refused
    as busy first, whatever the flags."""
    check_not_busy(out)
    if restart:
        return None
    checkpoint = latest_checkpoint(out)
    finished = any((out / name).exists() for name in ("metrics.jsonl", "eval.json"))
    started = finished or checkpoint is not None or (out / "config.yaml").exists()
    if not resume:
        if started:
            instead = (
                "pass --resume to continue it from its latest checkpoint or --restart to discard it"
                if checkpoint is not None and not finished
                else "pass --restart to discard it"
            )
            raise PmrlhfUserError(f"{out} already holds a run; {instead}, or choose another --out")
        return None
    if finished:
        raise PmrlhfUserError(
            f"--resume: the run in {out} is finished; pass --restart to run it again"
        )
    if checkpoint is None:
        raise FileNotFoundError(
            f"--resume: no checkpoint in {out / TRAINER_DIR}"
            + ("; pass --restart to discard the run there" if started else "")
        )
    path = out / "config.yaml"
    saved = (read_data_file(path, name="saved config") if path.exists() else None) or {}
    if not isinstance(saved, dict):
        raise PmrlhfUserError(f"saved config {path} must be a mapping, got {type(saved).__name__}")
    wanted = json.loads(json.dumps(settings))  # as YAML reads it back: lists, no tuples
    if saved != wanted:
        differ = sorted(k for k in {*wanted, *saved} if saved.get(k) != wanted.get(k))
        raise PmrlhfUserError(
            f"--resume: the run in {out} has other settings ({', '.join(differ)}); resume it "
            "with its own (its config.yaml) or pass --restart"
        )
    return checkpoint


@dataclass(frozen=True)
class _RunSettings:
    trainer: str
    eval_every: int
    progress: bool
    scale_rewards: str | None
    save_every: int
    report_to: str | list[str]


def _run_locked(config, task, out: Path, settings: dict, run: _RunSettings, checkpoint) -> dict:
    import functools

    import torch

    from ..lm_experiments.commands.workflow import sft_reference
    from ..lm_experiments.models.loading import make_optimizer
    from ..lm_experiments.train.rloo_estimators import lr_factor
    from ._compat import resume_sampler_order
    from .callback import PreferenceMatchingCallback, evaluate_policy
    from .grpo import PMGRPOTrainer
    from .rloo import PMRLOOTrainer

    trainer, eval_every, progress = run.trainer, run.eval_every, run.progress
    atomic_write_text(out / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    # The reference, as lm run makes it (with LoRA: SFT's adapters merged, fresh ones added,
    # so that TRL's adapters-off reference is the SFT model).
    model, tokenizer, _ = sft_reference(
        config.model,
        task,
        config.sft,
        seed=config.seed,
        progress=progress,
        **config.load_options(),
    )
    reference = evaluate_policy(model, tokenizer, task)
    reward = task.reward_function(tokenizer)
    max_new = config.rl.max_new_tokens or reward.oracle.max_len
    optimizer = make_optimizer(model, config.rl.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, config.rl))
    callbacks = [PreferenceMatchingCallback(task, every=eval_every)] if eval_every else None
    name_or_path = model.config._name_or_path
    with tempfile.TemporaryDirectory(dir=out, prefix=".trl-") as scratch:
        if config.lora is None:
            # TRL loads its reference model from the policy's config path: the SFT model.
            folder = Path(scratch) / "reference"
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            model.config._name_or_path = str(folder)
        args = trl_config(
            config,
            trainer,
            out / TRAINER_DIR,
            max_new,
            len(task.prompts),
            run.scale_rewards,
            save_every=run.save_every,
            report_to=run.report_to,
        )
        args.disable_tqdm = not progress
        kind = PMRLOOTrainer if trainer == "rloo" else PMGRPOTrainer
        runner = kind(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=task.to_dataset(),
            processing_class=tokenizer,
            callbacks=callbacks,
            optimizers=(optimizer, schedule),
        )
        model.config._name_or_path = name_or_path  # the reference is loaded; the folder goes
        if checkpoint is not None:
            resume_sampler_order(runner, checkpoint)
        runner.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    history = runner.state.log_history
    lines = "".join(json.dumps(json_ready(r), allow_nan=False) + "\n" for r in history)
    atomic_write_text(out / "metrics.jsonl", lines)
    result = evaluate_policy(runner.model, tokenizer, task)
    result["reference"] = reference
    atomic_write_json(out / "eval.json", result)
    return result
