"""The settings of ``pmrlhf lm paper``: the paper's experiment on free text, stage by stage
(preference pairs -> SFT -> reward model -> RL with KL / PM / cPM -> preference audit).

:class:`PaperConfig` is read strictly from YAML/JSON (:meth:`PaperConfig.from_file`: every
key known at every level, the nearest name suggested, every value of its field's type) and
checked before anything is written or loaded. Free of torch, so the command line builds its
parsers without it; :mod:`pmrlhf.trl.paper` runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..._validation import (
    check_alpha,
    check_count,
    check_field_types,
    check_known_keys,
    check_number,
)
from ..._yaml import read_data_file
from ...errors import PmrlhfUserError
from ..models.smollm2 import SMOLLM2
from ..train.method import Method
from .compare_config import check_seeds, parse_methods
from .run_config import check_lora_keys

STAGES = ("sft", "reward", "rl", "audit")
"""The stages, in the order they run; each needs the ones before it."""

DEFAULT_METHODS = ("kl:0.1", "kl:1", "cpm:1:0.1")
"""KL as RLHF runs it (beta 0.1), KL at PM's strength and conditional PM at alpha 0.1."""

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class PaperSFT:
    """TRL's ``SFTTrainer`` on the chosen responses of the training pairs."""

    steps: int = 100
    batch_size: int = 8
    lr: float = 2.0e-5
    max_length: int = 512  # prompt and response tokens; longer rows are cut


@dataclass
class PaperReward:
    """TRL's ``RewardTrainer`` (Bradley-Terry) from the SFT model's body, a new head."""

    steps: int = 100
    batch_size: int = 8
    lr: float = 1.0e-5
    max_length: int = 512


@dataclass
class PaperRL:
    """:class:`~pmrlhf.trl.PMRLOOTrainer` per method and seed, from the SFT model."""

    steps: int = 50
    prompts_per_step: int = 4
    samples_per_prompt: int = 4
    max_completion_length: int = 64
    lr: float = 1.0e-6
    inner_epochs: int = 1  # TRL's num_iterations
    clip: float = 0.2  # TRL's epsilon


@dataclass
class PaperAudit:
    """The test pairs and samples each policy is audited on."""

    pairs: int | None = 200  # the first test pairs (null: every one)
    prompts: int = 16  # distinct test prompts sampled
    samples: int = 4  # responses per prompt (pairs among them)
    max_new_tokens: int | None = None  # null: rl.max_completion_length
    alpha: float | None = None  # plausibility threshold; null: the first cPM's, else 0.1


_PARTS = {"sft": PaperSFT, "reward": PaperReward, "rl": PaperRL, "audit": PaperAudit}


@dataclass
class PaperConfig:
    """The whole experiment. SFT and the reward model are trained once, seeded with the
    first of ``seeds``; RL runs once per method and seed, each from that SFT model."""

    data: str = ""  # pmrlhf/free-text, a folder with train.jsonl and test.jsonl, or a hub name
    model: str = SMOLLM2
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = DEFAULT_METHODS  # REG:BETA[:ALPHA]
    train_pairs: int | None = None  # the first N training pairs (null: every one)
    test_pairs: int | None = None
    dtype: str = "float32"  # the weights' dtype as loaded
    bf16: bool = False  # TRL's (transformers') bf16 mixed precision
    lora: dict | None = None  # peft.LoraConfig options: adapters, merged into each saved model
    gradient_checkpointing: bool = False
    prompt_format: str = "auto"  # auto | chat | plain (base models: the HH-RLHF transcript)
    # A TRL checkpoint every N steps of a training stage (0: none), in OUT/.trainer/<unit>/;
    # an interrupted stage resumes from its latest when run again with the same settings.
    save_steps: int = 0
    sft: PaperSFT = field(default_factory=PaperSFT)
    reward: PaperReward = field(default_factory=PaperReward)
    rl: PaperRL = field(default_factory=PaperRL)
    audit: PaperAudit = field(default_factory=PaperAudit)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> PaperConfig:
        """A config from a file's mapping, read strictly (unknown keys refused with the
        nearest name, values of the wrong type refused), then :meth:`validate`-d.

        Raises
        ------
        PmrlhfUserError
            The first mistake, in one line naming ``source`` and the key.
        """
        if not isinstance(data, dict):
            raise PmrlhfUserError(f"{source} must be a mapping, got {type(data).__name__}")
        check_known_keys(data, [f.name for f in fields(cls)], where=source)
        data = dict(data)
        top = {k: v for k, v in data.items() if k not in _PARTS and k not in ("seeds", "methods")}
        check_field_types(top, cls, where=source)
        for key, kind in _PARTS.items():
            part = {} if data.get(key) is None else data[key]
            if not isinstance(part, dict):
                raise PmrlhfUserError(f"{source}: {key} must be a mapping, got {part!r}")
            check_known_keys(part, [f.name for f in fields(kind)], where=f"{source} under {key!r}")
            check_field_types(part, kind, where=source, prefix=f"{key}.")
            data[key] = kind(**part)
        for key in ("seeds", "methods"):
            if key in data:
                if not isinstance(data[key], list):
                    raise PmrlhfUserError(f"{source}: {key} must be a list, got {data[key]!r}")
                data[key] = tuple(data[key])
        if data.get("lora") is not None:
            check_lora_keys(data["lora"], source=source)
        config = cls(**data)
        try:
            return config.validate()
        except PmrlhfUserError as err:
            raise PmrlhfUserError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path, *, name: str = "config file") -> PaperConfig:
        """:meth:`from_dict` of a YAML/JSON file (:func:`pmrlhf._yaml.read_data_file`)."""
        path = Path(path)
        data = read_data_file(path, name=name)
        return cls.from_dict({} if data is None else data, source=f"{name} {path}")

    def parsed_methods(self) -> tuple[Method, ...]:
        """The methods, named as ``lm compare`` names them (``KL b=0.1``, ``cPM b=1 a=0.1``)."""
        return parse_methods(list(self.methods))

    def audit_alpha(self) -> float:
        """The threshold of the audit's mass on plausible text: ``audit.alpha``, else the
        first conditional PM's ``alpha``, else 0.1."""
        if self.audit.alpha is not None:
            return self.audit.alpha
        return next((m.alpha for m in self.parsed_methods() if m.alpha is not None), 0.1)

    def settings(self) -> dict:
        """Every setting as plain data (what ``config.yaml`` and the fingerprints hold)."""
        return {**asdict(self), "seeds": list(self.seeds), "methods": list(self.methods)}

    def validate(self) -> PaperConfig:
        """Check every field (the data's files are checked when they are read); returns the
        config. Raises ``PmrlhfUserError`` naming the field."""
        from ..models.loading import check_prompt_format, resolve_name

        if not isinstance(self.data, str) or not self.data.strip():
            raise PmrlhfUserError(
                "data must name a folder with train.jsonl and test.jsonl, the shipped "
                "pmrlhf/free-text, or a hub data set such as Anthropic/hh-rlhf"
            )
        resolve_name(self.model)
        self.seeds = check_seeds(self.seeds)
        self.parsed_methods()
        for name in ("train_pairs", "test_pairs"):
            if getattr(self, name) is not None:
                check_count(getattr(self, name), name, 2)
        if self.dtype not in DTYPES:
            raise PmrlhfUserError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_prompt_format(self.prompt_format)
        check_count(self.save_steps, "save_steps", 0)
        if self.lora is not None and not isinstance(self.lora, dict):
            raise PmrlhfUserError(
                f"lora must be a mapping of peft.LoraConfig options, got {self.lora!r}"
            )
        for part in ("sft", "reward"):
            for name in ("steps", "batch_size", "max_length"):
                check_count(getattr(getattr(self, part), name), f"{part}.{name}")
        for name in ("steps", "prompts_per_step", "max_completion_length", "inner_epochs"):
            check_count(getattr(self.rl, name), f"rl.{name}")
        check_count(self.rl.samples_per_prompt, "rl.samples_per_prompt", 2)
        for part in ("sft", "reward", "rl"):
            check_number(getattr(self, part).lr, f"{part}.lr")
        check_number(self.rl.clip, "rl.clip")
        if self.audit.pairs is not None:
            check_count(self.audit.pairs, "audit.pairs")
        check_count(self.audit.prompts, "audit.prompts")
        check_count(self.audit.samples, "audit.samples", 2)
        if self.audit.max_new_tokens is not None:
            check_count(self.audit.max_new_tokens, "audit.max_new_tokens")
        if self.audit.alpha is not None:
            check_alpha(self.audit.alpha, "audit.alpha")
        return self


def check_stages(stages) -> tuple[str, ...]:
    """``stages`` as a tuple in running order, each known, at least one."""
    if isinstance(stages, str) or not stages:
        raise PmrlhfUserError(f"stages must be a list of {', '.join(STAGES)}, got {stages!r}")
    for stage in stages:
        if stage not in STAGES:
            raise PmrlhfUserError(f"unknown stage {stage!r}: use {', '.join(STAGES)}")
    return tuple(s for s in STAGES if s in stages)
