"""``pmrlhf lm run``: one configured run in a folder (config, metrics, checkpoint, eval)."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import yaml

from ..._io import atomic_write_json, atomic_write_text
from ..._lock import check_not_busy, run_folder
from ..._validation import check_out_dir
from ...errors import PmrlhfUserError
from ..data.tasks import load_task
from .run_config import RunConfig

RUN_FILES = ("metrics.jsonl", "eval.json", "config.yaml", "reward_model.json")
"""What a run writes in its folder, besides ``checkpoint/``; ``--restart`` removes them."""


def run_one(
    config: RunConfig, out, *, resume: bool = False, restart: bool = False, progress: bool = True
) -> dict:
    """SFT (unless resuming), RL, exact evaluation; everything lands in ``out``.

    ``out`` is locked for the run (:func:`pmrlhf._lock.run_lock`): a second process there
    fails at once. A folder that already holds a run is refused unless ``resume`` (continue
    from its checkpoint) or ``restart`` (discard that run and start again). Temporary files
    and checkpoint staging folders of an interrupted run are removed first.

    Raises
    ------
    PmrlhfUserError
        An invalid setting, ``out`` already holding a run, or both ``resume`` and
        ``restart`` (all before anything is written or any model is loaded).
    FileNotFoundError
        ``resume`` without a checkpoint in ``out``.
    FolderBusyError
        Another process is running in ``out``.
    """
    task = load_task(config.validate().task)
    out = check_out_dir(out, "out")
    if resume and restart:
        raise PmrlhfUserError("--resume and --restart exclude each other: pick one")
    _check_folder(out, resume=resume, restart=restart)
    from accelerate import Accelerator

    # Under `accelerate launch` this sets up the processes (DDP, DeepSpeed or FSDP as
    # configured); in a plain run it is a single process and changes nothing.
    accelerator = Accelerator(cpu=not _cuda())
    _check_backend(accelerator)
    main = accelerator.is_main_process
    from ..train.checkpoint import remove_checkpoint_staging

    # One process per folder; under `accelerate launch` the main process holds the lock.
    with run_folder(
        out,
        check=lambda: _check_folder(out, resume=resume, restart=restart),
        cleanup=[lambda folder: remove_checkpoint_staging(folder / "checkpoint")],
        discard=_discard_run if restart else None,
        lock=main,
    ):
        return _run_locked(config, task, out, accelerator, resume=resume, progress=progress)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _check_backend(accelerator) -> None:
    """Refuse parameter sharding: sampling runs on each process's whole model."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    zero = getattr(accelerator.state, "deepspeed_plugin", None)
    if kind == DistributedType.FSDP or (
        kind == DistributedType.DEEPSPEED and zero is not None and zero.zero_stage == 3
    ):
        raise PmrlhfUserError(
            f"{kind.value}: sharded parameters are not supported (sampling runs on each "
            "process's whole model); use DDP or DeepSpeed ZeRO-1/2, with lora for large models"
        )


def _check_folder(out: Path, *, resume: bool, restart: bool) -> None:
    """Refuse to resume without a checkpoint or to overwrite a run; the message says what
    would work instead. A folder another process is running in is refused as busy first:
    its run has no checkpoint yet, but ``--restart`` would not help. Only the launch's
    rank 0 (the lock's future holder) asks: under ``accelerate launch`` or ``torchrun`` the
    other ranks would find rank 0's own lock."""
    if os.environ.get("RANK", "0") in ("", "0"):
        check_not_busy(out)
    # A checkpoint moved aside by a save that was killed mid-swap counts: it is restored
    # under the lock (checkpoint.remove_checkpoint_staging).
    has_checkpoint = (out / "checkpoint" / "trainer_state.pt").exists() or any(
        out.glob(".checkpoint.*.tmp.old/trainer_state.pt")
    )
    has_run = (out / "metrics.jsonl").exists()
    if resume and not has_checkpoint:
        if has_run:
            raise FileNotFoundError(
                f"--resume: no checkpoint in {out} (the run there stopped before its first "
                "checkpoint); pass --restart to discard it and start again"
            )
        raise FileNotFoundError(f"--resume: no checkpoint in {out}; run without --resume")
    if not resume and not restart and has_run:
        instead = (
            "pass --resume to continue it from its checkpoint or --restart to discard it"
            if has_checkpoint
            else "it stopped before its first checkpoint: pass --restart to discard it"
        )
        raise PmrlhfUserError(f"{out} already holds a run; {instead}, or choose another --out")


def _discard_run(out: Path) -> None:
    """Remove a previous run's files (under the folder's lock)."""
    import shutil

    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoint", ignore_errors=True)


def _run_locked(config: RunConfig, task, out: Path, accelerator, *, resume, progress) -> dict:
    import contextlib
    import copy

    from ..data.oracle import OracleReward
    from ..evaluate.exact import evaluate_candidates
    from ..train.rl_plumbing import preflight
    from .workflow import sft_reference, train_and_evaluate

    main = accelerator.is_main_process
    several = accelerator.num_processes > 1
    # On resume, SFT is redone from the same seed (deterministic), then the checkpoint loaded.
    model, tokenizer, _ = sft_reference(
        config.model,
        task,
        config.sft,
        seed=config.seed,
        device=accelerator.device,
        progress=progress,
        **config.load_options(),
    )
    # With LoRA the reference is the policy with its adapters off: no copy. Otherwise a
    # frozen copy, on this process's device already; not prepared by accelerate, which
    # would then save it in every checkpoint, and with nothing to shard (_check_backend).
    reference = model if config.lora else copy.deepcopy(model).eval()
    reward_fn, rewards = OracleReward(task, tokenizer), None
    # SFT refused a step too large before its first one; RL's step is checked here, before
    # the first file of the run is written (train_rl checks it again).
    preflight(model, tokenizer, task, reward_fn, config.rl, separate_ref=not config.lora)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(asdict(config), sort_keys=False))
    if config.reward == "rm":
        reward_fn, rewards, stats = _fit_reward_model(config, task, tokenizer, progress)
        if main:
            atomic_write_json(out / "reward_model.json", stats)
    result = train_and_evaluate(
        model,
        reference,
        tokenizer,
        task,
        reward_fn,
        config.rl,
        seed=config.seed,
        rewards=rewards,
        run_dir=out,
        resume=resume,
        progress=progress and main,
        accelerator=accelerator if several else None,
    )
    off = model.disable_adapter() if config.lora else contextlib.nullcontext()
    with off:
        result["reference"] = evaluate_candidates(reference, tokenizer, task, rewards=rewards)
    accelerator.end_training()
    if not main:
        return {}
    atomic_write_json(out / "eval.json", result)
    return result


def _fit_reward_model(config: RunConfig, task, tokenizer, progress: bool):
    """Train a reward model on comparisons sampled from the task's population.

    Returns a reward function for RL, the model's scores of every candidate (the target of
    evaluation is then ``softmax`` of these), and the fit statistics.
    """
    from ..data.oracle import OracleReward
    from ..data.preference_pairs import synthetic_pairs
    from ..models.loading import load_model
    from ..train.reward_model import score_responses, train_reward_model

    backbone, _ = load_model(
        config.model, dtype=config.dtype, seed=config.seed + 1, prompt_format=config.prompt_format
    )
    pairs = synthetic_pairs(task, config.rm_pairs_per_prompt, rng=config.seed)
    rm, stats = train_reward_model(
        backbone, tokenizer, pairs, config.rm, seed=config.seed, progress=progress
    )
    del backbone  # the reward model holds its own copy of the weights
    rewards = [score_responses(rm, tokenizer, p.messages, list(p.candidates)) for p in task.prompts]
    stats["candidate_scores"] = [r.tolist() for r in rewards]
    # Candidates (matched on token ids) earn the reward model's scores; anything else the
    # off-candidate reward below them, as with the oracle.
    return OracleReward(task, tokenizer, rewards=rewards), rewards, stats
