"""The settings of ``pmrlhf lm run``: :class:`RunConfig`, read from YAML/JSON and checked
before anything runs (:func:`pmrlhf.lm_experiments.commands.single_run.run_one` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..._validation import DEFAULT_SEED, check_count, check_field_types, check_known_keys
from ..._yaml import read_data_file
from ...errors import PmrlhfUserError
from ...theory.regularizers import check_regularizer
from ..data.task_files import DEFAULT_TASK
from ..models.smollm2 import SMOLLM2
from ..train.reward_config import RewardConfig
from ..train.rl_config import RLConfig
from ..train.sft_config import SFTConfig

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

    model: str = SMOLLM2
    task: str = DEFAULT_TASK
    seed: int = DEFAULT_SEED
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

    def load_options(self) -> dict:
        """How the run loads its model: the keywords of
        :func:`~pmrlhf.lm_experiments.models.loading.load_model` that
        :func:`~pmrlhf.lm_experiments.commands.workflow.sft_reference` passes on, for
        ``lm run`` and ``lm trl`` alike."""
        return {
            "dtype": self.dtype,
            "lora": self.lora,
            "gradient_checkpointing": self.gradient_checkpointing,
            "prompt_format": self.prompt_format,
        }

    def name(self) -> str:
        return f"{self.model.replace('/', '_')}-{self.task}-{self.rl.regularizer}-seed{self.seed}"

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> RunConfig:
        """A run from the mapping of a config file, read strictly: every key known, at every
        level (``rl``, ``sft``, ``rm``; ``lora``: ``peft.LoraConfig``'s fields, when peft is
        installed), every value of its field's type, and ``rl``'s regularizer with its
        ``alpha`` as ``lm run``'s options allow them. Messages name ``source`` and the key.

        Raises
        ------
        PmrlhfUserError
            The first of these mistakes, in one line (``unknown key 'sft_weigths' in ...
            (did you mean ...?)``, ``...: rl: lr_final must be a number, got 'x'``).
        """
        if not isinstance(data, dict):
            raise PmrlhfUserError(f"{source} must be a mapping, got {type(data).__name__}")
        check_known_keys(data, [f.name for f in fields(cls)], where=source)
        data = dict(data)
        top = {k: v for k, v in data.items() if k not in ("sft", "rl", "rm")}
        check_field_types(top, cls, where=source)
        for key, kind in (("sft", SFTConfig), ("rl", RLConfig), ("rm", RewardConfig)):
            part = data.get(key)
            part = {} if part is None else part
            if not isinstance(part, dict):
                raise PmrlhfUserError(
                    f"{source}: {key} must be a mapping, got {type(part).__name__} {part!r}"
                )
            check_known_keys(part, [f.name for f in fields(kind)], where=f"{source} under {key!r}")
            check_field_types(part, kind, where=source, prefix=f"{key}.")
            if key == "rl":  # unnamed fields keep lm run's defaults, as on the command line
                part = dict(part)
                if part.get("regularizer", "cpm") != "cpm":
                    part.setdefault("alpha", None)  # alpha belongs to the default cpm only
                data[key] = replace(default_rl(), **part)
                _check_rl_pair(data[key], source)
            else:
                data[key] = kind(**part)
        if data.get("lora") is not None:
            check_lora_keys(data["lora"], source=source)
        return cls(**data)

    @classmethod
    def from_file(cls, path, *, name: str = "config file") -> RunConfig:
        """:meth:`from_dict` on a YAML/JSON file read by :func:`pmrlhf._yaml.read_data_file`
        (size, depth and alias bounds; UTF-8 text; YAML 1.2 booleans and floats); ``name``
        is how messages call the file (``"--config"``).

        Raises
        ------
        FileNotFoundError
            ``path`` does not exist.
        PmrlhfUserError
            A folder, a binary or non-UTF-8 file, one that does not parse, and the mistakes
            :meth:`from_dict` refuses.
        """
        path = Path(path)
        data = read_data_file(path, name=name)
        return cls.from_dict({} if data is None else data, source=f"{name} {path}")

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

    def validate(self) -> RunConfig:
        """Check every field but ``task`` (the command checks it by loading it, once) before
        anything is written or loaded; returns the config."""
        from ..models.loading import check_prompt_format, resolve_name

        check_count(self.seed, "seed", 0)
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
        check_count(self.rm_pairs_per_prompt, "rm_pairs_per_prompt")
        self.sft.validate()
        self.rl.validate()
        self.rm.validate()
        return self


def _check_rl_pair(rl: RLConfig, source: str) -> None:
    """``rl.regularizer`` with ``rl.alpha`` as ``lm run --regularizer ... --alpha ...``
    accepts them (:func:`~pmrlhf.theory.regularizers.check_regularizer`, which
    :meth:`RLConfig.validate` runs): ``{regularizer: pm, alpha: 0.1}`` is refused here,
    before a command-line override could drop the ``alpha``."""
    try:
        check_regularizer(rl.regularizer, ref_given=True, alpha=rl.alpha)
    except ValueError as err:
        raise PmrlhfUserError(f"{source}: rl.{err}") from None


def check_lora_keys(lora, *, source: str) -> None:
    """``lora`` must be a mapping; its keys must be ``peft.LoraConfig``'s fields when peft
    is installed (peft is imported only here, only then).

    Raises
    ------
    PmrlhfUserError
        Not a mapping; an unknown key, with the nearest field's name.
    """
    if not isinstance(lora, dict):
        raise PmrlhfUserError(
            f"{source}: lora must be a mapping of peft.LoraConfig options, got {lora!r}"
        )
    import importlib.util

    if importlib.util.find_spec("peft") is None:
        return
    from peft import LoraConfig

    check_known_keys(lora, [f.name for f in fields(LoraConfig)], where=f"{source} under 'lora'")
