"""``pmrlhf lm run``: one configured run in a folder (config, metrics, checkpoint, eval)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from .._io import atomic_write_json, atomic_write_text, remove_stale_temp_files
from .._lock import run_lock
from .._validation import check_out_dir
from ..errors import PmrlhfUserError
from .reward_model import RewardConfig
from .rl import RLConfig
from .sft import SFTConfig

REWARDS = ("oracle", "rm")
RUN_FILES = ("metrics.jsonl", "eval.json", "config.yaml", "reward_model.json")
"""What a run writes in its folder, besides ``checkpoint/``; ``--restart`` removes them."""


@dataclass
class RunConfig:
    """A run: model, task, SFT, then RL. Serialises to YAML/JSON. ``seed`` is the one seed
    of the run: it reaches SFT, the reward model, RL sampling and the tiny models' init."""

    model: str = "smollm2-135m"
    task: str = "three_answers"
    seed: int = 0
    sft: SFTConfig = field(default_factory=SFTConfig)  # sft.steps = 0: no fine-tuning
    rl: RLConfig = field(default_factory=RLConfig)
    reward: str = "oracle"  # oracle: the task's exact BTL logits; rm: a fitted reward model
    rm_pairs_per_prompt: int = 200
    rm: RewardConfig = field(default_factory=RewardConfig)
    dtype: str = "float32"
    # peft.LoraConfig options; the reference is then the policy with its adapters off.
    lora: dict | None = None
    gradient_checkpointing: bool = False
    # chat: the tokenizer's template; plain: the HH-RLHF transcript, for base models without
    # one (OPT, Llama-2 base); auto: chat where the tokenizer has a template (models.py).
    prompt_format: str = "auto"

    def name(self) -> str:
        return f"{self.model.replace('/', '_')}-{self.task}-{self.rl.regularizer}-seed{self.seed}"

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        if not isinstance(data, dict):
            raise PmrlhfUserError("config must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PmrlhfUserError(
                f"config has unknown keys {sorted(unknown)}; known: {sorted(known)}"
            )
        data = dict(data)
        for key, kind in (("sft", SFTConfig), ("rl", RLConfig), ("rm", RewardConfig)):
            part = data.get(key) or {}
            if not isinstance(part, dict):
                raise PmrlhfUserError(f"config: {key} must be a mapping, got {part!r}")
            allowed = {f.name for f in fields(kind)}
            if set(part) - allowed:
                raise PmrlhfUserError(
                    f"config: {key} has unknown keys {sorted(set(part) - allowed)}; "
                    f"known: {sorted(allowed)}"
                )
            data[key] = kind(**part)
        return cls(**data)

    @classmethod
    def from_file(cls, path) -> RunConfig:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise PmrlhfUserError(
                f"config file {path} could not be parsed: {str(err).splitlines()[0]}"
            ) from None
        return cls.from_dict(data or {})

    def with_overrides(self, top: dict, rl: dict, sft: dict | None = None) -> RunConfig:
        """A copy with the given fields replaced (``None`` values are left as they are).
        Switching away from ``cpm`` drops an inherited ``alpha``."""
        keep = lambda values: {k: v for k, v in (values or {}).items() if v is not None}  # noqa: E731
        rl_values = keep(rl)
        if rl_values.get("regularizer", self.rl.regularizer) != "cpm" and "alpha" not in rl_values:
            rl_values["alpha"] = None
        return replace(
            self,
            **keep(top),
            rl=replace(self.rl, **rl_values),
            sft=replace(self.sft, **keep(sft)),
        )

    def validate(self):
        """Check every field before anything is written or loaded; returns the task."""
        from .models import check_prompt_format, resolve_name
        from .tasks import load_task

        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise PmrlhfUserError(f"seed must be an int >= 0, got {self.seed!r}")
        resolve_name(self.model)
        if self.reward not in REWARDS:
            raise PmrlhfUserError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise PmrlhfUserError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        check_prompt_format(self.prompt_format)
        if self.lora is not None and not isinstance(self.lora, dict):
            raise PmrlhfUserError(
                f"lora must be a mapping of peft.LoraConfig options, got {self.lora!r}"
            )
        n = self.rm_pairs_per_prompt
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PmrlhfUserError(f"rm_pairs_per_prompt must be a positive int, got {n!r}")
        self.sft.validate()
        self.rl.validate()
        self.rm.validate()
        return load_task(self.task)


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
    import contextlib

    task = config.validate()
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
    # One process per folder; under `accelerate launch` the main process holds the lock.
    with run_lock(out) if main else contextlib.nullcontext():
        if main:
            _check_folder(out, resume=resume, restart=restart)  # again, now under the lock
            remove_stale_temp_files(out)
            from .checkpoint import remove_checkpoint_staging

            remove_checkpoint_staging(out / "checkpoint")
            if restart:
                _discard_run(out)
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
    would work instead."""
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

    from .evaluate import evaluate_candidates
    from .oracle import OracleReward
    from .workflow import sft_reference, train_and_evaluate

    main = accelerator.is_main_process
    several = accelerator.num_processes > 1
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(asdict(config), sort_keys=False))
    # On resume, SFT is redone from the same seed (deterministic), then the checkpoint loaded.
    model, tokenizer, _ = sft_reference(
        config.model,
        task,
        config.sft,
        seed=config.seed,
        device=accelerator.device,
        progress=progress,
        dtype=config.dtype,
        lora=config.lora,
        gradient_checkpointing=config.gradient_checkpointing,
        prompt_format=config.prompt_format,
    )
    # With LoRA the reference is the policy with its adapters off: no copy. Otherwise a
    # frozen copy, on this process's device already; not prepared by accelerate, which
    # would then save it in every checkpoint, and with nothing to shard (_check_backend).
    reference = model if config.lora else copy.deepcopy(model).eval()
    reward_fn, rewards = OracleReward(task, tokenizer), None
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
    from .data import synthetic_pairs
    from .models import load_model
    from .oracle import OracleReward
    from .reward_model import score_responses, train_reward_model

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
