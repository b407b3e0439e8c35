"""``pmrlhf lm trl``: one run of TRL's trainer on a synthetic task, scored like ``lm run``.

The run mirrors :func:`pmrlhf.lm_experiments.runs.run_one` with TRL doing the RL: the same
:class:`~pmrlhf.lm_experiments.runs.RunConfig` (model, task, seed, SFT, ``rl.*``), the
same SFT reference, the same optimizer (AdamW, no weight decay) and learning-rate schedule
(:func:`~pmrlhf.lm_experiments.rloo.lr_factor`), every prompt x ``rl.samples_per_prompt``
completions per step, at most the task's longest candidate new tokens, temperature 1 with
no top-p / top-k; then :class:`~pmrlhf.trl.PMRLOOTrainer` (``trainer="rloo"``) or
:class:`~pmrlhf.trl.PMGRPOTrainer` (``"grpo"``) with ``rl.regularizer``, ``rl.beta``,
``rl.alpha``. TRL's penalty gradient is the sampled one (``RLConfig.penalty_gradient=
"sampled"``, docs/theory.md §4). GRPO's ``scale_rewards`` is ``"none"`` with PM and cPM
unless asked otherwise, so that the updates follow ``E[r] - beta E[sum_t c_t]``, whose
optimum is ``softmax(r / beta)``; TRL's ``"group"`` with KL. Files in ``out``:
``config.yaml``, ``metrics.jsonl`` (TRL's log history, with the exact evaluation of
:class:`~pmrlhf.trl.PreferenceMatchingCallback` every ``eval_every`` steps) and
``eval.json`` in ``lm run``'s schema, so the two trainers go on one table.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import yaml

from .._io import atomic_write_json, atomic_write_text, json_ready, remove_stale_temp_files
from .._lock import run_lock
from .._validation import check_choice, check_out_dir
from ..errors import PmrlhfTypeError, PmrlhfUserError

TRAINERS = ("rloo", "grpo")
SCALE_REWARDS = ("group", "batch", "none")
"""GRPO's ``scale_rewards`` values (TRL 1.16)."""
RUN_FILES = ("metrics.jsonl", "eval.json", "config.yaml")
"""What ``lm trl`` writes in its folder; ``restart`` removes them."""


def run_trl(
    config,
    out,
    *,
    trainer: str = "rloo",
    eval_every: int = 10,
    restart: bool = False,
    progress: bool = True,
    scale_rewards: str | None = None,
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
        unless ``restart``.
    trainer : {"rloo", "grpo"}
    eval_every : int
        Exact evaluation every this many steps (0: only at the end).
    scale_rewards : {"group", "batch", "none"} or None
        GRPO's reward scaling (``trainer="grpo"`` only); None: ``"none"`` with ``"pm"`` and
        ``"cpm"`` (a scaled penalty no longer follows ``E[r] - beta E[sum_t c_t]``, see
        :func:`~pmrlhf.trl.config.warn_objective`), TRL's ``"group"`` with ``"kl"``.

    Returns
    -------
    The evaluation written to ``out/eval.json`` (:func:`~pmrlhf.lm_experiments.
    evaluate_candidates` of the trained policy, with ``reference``: the SFT model's).

    Raises
    ------
    ValueError
        An invalid setting or ``out`` already holding a run (before anything is loaded).
    FolderBusyError
        Another process is running in ``out``.
    """
    from ..lm_experiments.runs import RunConfig

    if not isinstance(config, RunConfig):
        raise PmrlhfTypeError(f"config must be a RunConfig, got {type(config).__name__}")
    task = config.validate()
    check_choice(trainer, "trainer", TRAINERS)
    scale_rewards = grpo_scale_rewards(trainer, config.rl.regularizer, scale_rewards)
    if config.reward != "oracle":
        raise PmrlhfUserError(f"lm trl supports reward='oracle' only, got reward={config.reward!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise PmrlhfUserError(f"eval_every must be an int >= 0, got {eval_every!r}")
    out = check_out_dir(out, "out")
    _check_folder(out, restart=restart)
    with run_lock(out):
        _check_folder(out, restart=restart)  # again, now under the lock
        remove_stale_temp_files(out)
        for name in RUN_FILES if restart else ():
            (out / name).unlink(missing_ok=True)
        return _run_locked(config, task, out, trainer, eval_every, progress, scale_rewards)


def _check_folder(out: Path, *, restart: bool) -> None:
    if not restart and any((out / name).exists() for name in ("metrics.jsonl", "eval.json")):
        raise PmrlhfUserError(
            f"{out} already holds a run; pass --restart to discard it, or choose another --out"
        )


def grpo_scale_rewards(trainer: str, regularizer: str, scale_rewards: str | None) -> str | None:
    """GRPO's ``scale_rewards`` for a run (see :func:`run_trl`); None for ``"rloo"``.

    Raises
    ------
    ValueError
        ``scale_rewards`` not one of :data:`SCALE_REWARDS`, or given with ``"rloo"``.
    """
    if scale_rewards is not None:
        check_choice(scale_rewards, "scale_rewards", SCALE_REWARDS)
        if trainer != "grpo":
            raise PmrlhfUserError(
                f"scale_rewards only applies to trainer='grpo', got trainer={trainer!r}"
            )
        return scale_rewards
    if trainer != "grpo":
        return None
    return "group" if regularizer == "kl" else "none"  # TRL's default with its own KL


def trl_config(
    config,
    trainer: str,
    output_dir,
    max_new_tokens: int,
    prompts: int,
    scale_rewards: str | None = None,
):
    """The :class:`~pmrlhf.trl.PMRLOOConfig` / :class:`~pmrlhf.trl.PMGRPOConfig` of a
    ``RunConfig`` (see :func:`run_trl`; ``scale_rewards`` as there)."""
    import torch

    from .config import PMGRPOConfig, PMRLOOConfig

    rl = config.rl
    k = rl.samples_per_prompt
    kind = PMRLOOConfig if trainer == "rloo" else PMGRPOConfig
    scale = grpo_scale_rewards(trainer, rl.regularizer, scale_rewards)
    extra = {} if scale is None else {"scale_rewards": scale}
    return kind(
        output_dir=str(output_dir),
        regularizer=rl.regularizer,
        cpm_alpha=rl.alpha,
        beta=rl.beta,
        per_device_train_batch_size=(rl.prompts_per_step or prompts) * k,
        gradient_accumulation_steps=1,
        num_generations=k,
        max_completion_length=max_new_tokens,
        max_steps=rl.steps,
        learning_rate=rl.lr,
        num_iterations=rl.inner_epochs,
        epsilon=rl.clip if rl.clip is not None else 0.2,
        temperature=rl.temperature,
        top_p=1.0,
        top_k=0,
        max_grad_norm=rl.max_grad_norm,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=False,  # the model is loaded in config.dtype; no autocast on top
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=config.seed,
        dataloader_num_workers=0,
        **extra,
    )


def _run_locked(
    config, task, out: Path, trainer: str, eval_every: int, progress: bool, scale_rewards
) -> dict:
    import functools

    import torch

    from ..lm_experiments.models import load_model, make_optimizer
    from ..lm_experiments.rloo import lr_factor
    from ..lm_experiments.sft import candidate_pairs, sft_on_pairs
    from .callback import PreferenceMatchingCallback, evaluate_policy
    from .grpo import PMGRPOTrainer
    from .rloo import PMRLOOTrainer

    torch.manual_seed(config.seed)
    model, tokenizer = load_model(
        config.model,
        dtype=config.dtype,
        seed=config.seed,
        lora=config.lora,
        gradient_checkpointing=config.gradient_checkpointing,
    )
    settings = {**asdict(config), "trainer": trainer, "eval_every": eval_every}
    if scale_rewards is not None:
        settings["scale_rewards"] = scale_rewards
    atomic_write_text(out / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    if config.sft.steps:  # the reference, as lm run makes it
        pairs, weights = candidate_pairs(task)
        sft_on_pairs(
            model,
            tokenizer,
            pairs,
            config.sft,
            seed=config.seed,
            weights=weights,
            progress=progress,
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
            config, trainer, Path(scratch) / "trainer", max_new, len(task.prompts), scale_rewards
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
        runner.train()
    history = runner.state.log_history
    lines = "".join(json.dumps(json_ready(r), allow_nan=False) + "\n" for r in history)
    atomic_write_text(out / "metrics.jsonl", lines)
    result = evaluate_policy(runner.model, tokenizer, task)
    result["reference"] = reference
    atomic_write_json(out / "eval.json", result)
    return result
