"""The settings of ``pmrlhf lm run``: :class:`RunConfig`, read from YAML/JSON and checked
before anything runs (:func:`pmrlhf.lm_experiments.runs.run_one` runs it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from ..errors import PmrlhfUserError
from .reward_model import RewardConfig
from .rl import RLConfig
from .sft import SFTConfig

REWARDS = ("oracle", "rm")


def default_rl() -> RLConfig:
    """``lm run``'s and ``lm trl``'s method when none is named: conditional PM at
    ``alpha = 0.1``, ``beta = 1`` (optimum: ``softmax(r)`` on the answers the reference finds
    plausible, docs/theory.md §4). Plain PM (``"pm"``) is the wrong default on text: its
    ``-log pi`` rewards entropy on every token and spreads the policy over text that is not
    an answer (README: 2e-7 of the mass left on the candidates); KL is the baseline whose
    bias this project measures."""
    return RLConfig(regularizer="cpm", alpha=0.1)


@dataclass
class RunConfig:
    """A run: model, task, SFT, then RL. Serialises to YAML/JSON. ``seed`` is the one seed
    of the run: it reaches SFT, the reward model, RL sampling and the tiny models' init."""

    model: str = "smollm2-135m"
    task: str = "three_answers"
    seed: int = 0
    sft: SFTConfig = field(default_factory=SFTConfig)  # sft.steps = 0: no fine-tuning
    rl: RLConfig = field(default_factory=default_rl)  # conditional PM, alpha 0.1 (why: default_rl)
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
            if key == "rl":  # unnamed fields keep lm run's defaults, as on the command line
                part = dict(part)
                if part.get("regularizer", "cpm") != "cpm":
                    part.setdefault("alpha", None)  # alpha belongs to the default cpm only
                data[key] = replace(default_rl(), **part)
            else:
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
