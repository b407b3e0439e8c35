"""``pmrlhf lm run``: one configured run in a folder (config, metrics, checkpoint, eval)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .._io import atomic_write_json, atomic_write_text
from .reward_model import RewardConfig
from .rl import RLConfig, train_rl
from .sft import SFTConfig, candidate_pairs, sft_on_pairs

REWARDS = ("oracle", "rm")


@dataclass
class RunConfig:
    """A run: model, task, optional SFT, then RL. Serialises to YAML/JSON."""

    model: str = "smollm2-135m"
    task: str = "three_answers"
    seed: int = 0
    sft_steps: int = 40
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    reward: str = (
        "oracle"  # oracle: the task's exact BTL logits; rm: a reward model fitted to comparisons
    )
    rm_pairs_per_prompt: int = 200
    rm: RewardConfig = field(default_factory=RewardConfig)
    dtype: str = "float32"
    lora: dict | None = None
    gradient_checkpointing: bool = False

    def name(self) -> str:
        return f"{self.model.replace('/', '_')}-{self.task}-{self.rl.regularizer}-seed{self.seed}"

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        if not isinstance(data, dict):
            raise ValueError("config must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        data = dict(data)
        try:
            data["sft"] = SFTConfig(**data.get("sft", {}))
            data["rl"] = RLConfig(**data.get("rl", {}))
            data["rm"] = RewardConfig(**data.get("rm", {}))
        except TypeError as err:
            raise ValueError(f"config: {err}") from None
        if data.get("reward", "oracle") not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {data['reward']!r}")
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
            raise ValueError(
                f"config file {path} could not be parsed: {str(err).splitlines()[0]}"
            ) from None
        return cls.from_dict(data or {})

    def with_overrides(self, top: dict, rl: dict) -> RunConfig:
        data = asdict(self)
        data.update({k: v for k, v in top.items() if v is not None})
        data["rl"].update({k: v for k, v in rl.items() if v is not None})
        if data["rl"]["regularizer"] != "cpm":
            data["rl"]["alpha"] = None if rl.get("alpha") is None else data["rl"]["alpha"]
        return RunConfig.from_dict(data)


def run_one(config: RunConfig, out, *, resume: bool = False, progress: bool = True) -> dict:
    """SFT (unless resuming), RL, exact evaluation; everything lands in ``out``."""
    import copy

    import torch

    from .compare import oracle_reward_fn
    from .evaluate import evaluate_candidates
    from .models import load_model
    from .tasks import load_task

    config.rl.validate()
    out = Path(out)
    task = load_task(config.task)
    if resume and not (out / "checkpoint" / "trainer_state.pt").exists():
        raise FileNotFoundError(f"--resume: no checkpoint in {out}")
    if not resume and (out / "metrics.jsonl").exists():
        raise ValueError(f"{out} already holds a run; pass --resume or choose another --out")
    from accelerate import Accelerator

    # Under `accelerate launch` this sets up the processes (DDP, DeepSpeed or FSDP as
    # configured); in a plain run it is a single process and changes nothing.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    torch.manual_seed(config.seed)
    model, tokenizer = load_model(
        config.model,
        dtype=config.dtype,
        seed=config.seed,
        lora=config.lora,
        gradient_checkpointing=config.gradient_checkpointing,
    )
    model.to(accelerator.device)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(asdict(config), sort_keys=False))
    # The reference is the SFT model; on resume, SFT is redone from the same seed (deterministic).
    sft = SFTConfig(**{**asdict(config.sft), "steps": config.sft_steps, "seed": config.seed})
    if config.sft_steps:
        sft_on_pairs(model, tokenizer, candidate_pairs(task), sft, progress=progress)
    reference = copy.deepcopy(model).eval()
    reward_fn, rewards = oracle_reward_fn(task), None
    if config.reward == "rm":
        reward_fn, rewards, stats = _fit_reward_model(config, task, tokenizer, progress)
        if main:
            atomic_write_json(out / "reward_model.json", stats)
    train_rl(
        model,
        reference,
        tokenizer,
        task,
        reward_fn,
        config.rl,
        run_dir=out,
        resume=resume,
        progress=progress and main,
        accelerator=accelerator if accelerator.num_processes > 1 else None,
    )
    model = accelerator.unwrap_model(model)
    if not main:
        accelerator.end_training()
        return {}
    result = evaluate_candidates(model, tokenizer, task, rewards=rewards)
    result["reference"] = evaluate_candidates(reference, tokenizer, task, rewards=rewards)
    atomic_write_json(out / "eval.json", result)
    accelerator.end_training()
    return result


def _fit_reward_model(config: RunConfig, task, tokenizer, progress: bool):
    """Train a reward model on comparisons sampled from the task's population.

    Returns a reward function for RL, the model's scores of every candidate (the target of
    evaluation is then ``softmax`` of these), and the fit statistics.
    """
    from .models import load_model
    from .reward_model import synthetic_pairs, train_reward_model

    backbone, _ = load_model(config.model, dtype=config.dtype, seed=config.seed + 1)
    pairs = synthetic_pairs(task, config.rm_pairs_per_prompt, rng=config.seed)
    rm, stats = train_reward_model(backbone, tokenizer, pairs, config.rm, progress=progress)
    rewards = [rm.score(tokenizer, p.messages, list(p.candidates)) for p in task.prompts]
    stats["candidate_scores"] = [r.tolist() for r in rewards]

    def reward(prompt_index: int, text: str, finished: bool) -> float:
        if not finished:  # truncated samples are not answers: below every candidate
            return float(rewards[prompt_index].min() - task.off_candidate_margin)
        return float(rm.score(tokenizer, task.prompts[prompt_index].messages, [text.strip()])[0])

    return reward, rewards, stats
