"""The settings of ``pmrlhf lm compare``: the methods (a regularizer at a ``beta``, cPM's
``alpha``), the seeds and :class:`CompareConfig`, each checked before anything runs
(:func:`pmrlhf.lm_experiments.commands.compare.run_compare` runs them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..._validation import check_alpha, check_beta
from ...errors import PmrlhfUserError
from ..data.task_files import DEFAULT_TASK
from ..models.loading import resolve_name
from ..models.smollm2 import SMOLLM2
from ..train.method import LABELS, REFERENCE, Method, method_name
from ..train.rl_config import RLConfig
from ..train.sft_config import SFTConfig

# KL at beta 0.1 is how RLHF is run in practice; the other three compare at matched beta 1,
# where PM's optimum softmax(r / beta) is the preference distribution (docs/theory.md §3).
DEFAULT_METHODS = (
    Method("KL b=0.1", "kl", 0.1),
    Method("KL b=1", "kl", 1.0),
    Method("PM b=1", "pm", 1.0),
    Method("cPM b=1 a=0.1", "cpm", 1.0, 0.1),
)


def parse_method(spec: str) -> Method:
    """A method from ``REG:BETA[:ALPHA]`` (``kl:1``, ``pm:1``, ``cpm:1:0.1``), named by
    :func:`method_name`. Conditional PM needs ``ALPHA`` in (0, 1); KL and PM take none.

    Raises
    ------
    PmrlhfUserError
        A malformed spec, an unknown regularizer, ``beta <= 0`` or a bad ``alpha``.
    """
    form = "REG:BETA[:ALPHA] (e.g. kl:1, pm:1, cpm:1:0.1)"
    if not isinstance(spec, str):
        raise PmrlhfUserError(f"methods: expected {form}, got {spec!r}")
    parts = spec.strip().split(":")
    regularizer = parts[0].strip().lower()
    if regularizer not in LABELS or len(parts) not in (2, 3):
        raise PmrlhfUserError(f"methods: {spec!r} is not {form}")
    if (regularizer == "cpm") != (len(parts) == 3):
        need = (
            "cpm needs an alpha (cpm:BETA:ALPHA)"
            if regularizer == "cpm"
            else (f"{regularizer} takes no alpha ({regularizer}:BETA)")
        )
        raise PmrlhfUserError(f"methods: {spec!r}: {need}")
    try:
        numbers = [float(x) for x in parts[1:]]
    except ValueError:
        raise PmrlhfUserError(f"methods: {spec!r} is not {form}") from None
    beta = check_beta(numbers[0], f"beta of method {spec!r}")
    alpha = check_alpha(numbers[1], f"alpha of method {spec!r}") if len(numbers) > 1 else None
    return Method(method_name(regularizer, beta, alpha), regularizer, beta, alpha).validate()


def parse_methods(specs) -> tuple[Method, ...]:
    """:func:`parse_method` of each spec; at least one, no two of the same name."""
    if isinstance(specs, str) or not specs:
        raise PmrlhfUserError(f"methods: expected a list of REG:BETA[:ALPHA], got {specs!r}")
    methods = tuple(parse_method(spec) for spec in specs)
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise PmrlhfUserError(f"methods: each method once, got {names}")
    return methods


def grid_methods(betas, alphas) -> tuple[Method, ...]:
    """KL and plain PM at every ``beta``, conditional PM at every ``(beta, alpha)``: the
    paper's table (``pmrlhf lm compare --betas ... --alphas ...``)."""
    betas = [check_beta(b, "betas") for b in betas]
    alphas = [check_alpha(a, "alphas") for a in alphas]
    if not betas or not alphas:
        raise PmrlhfUserError("betas and alphas must each hold at least one value")
    methods = [Method(method_name("kl", b), "kl", b) for b in betas]
    methods += [Method(method_name("pm", b), "pm", b) for b in betas]
    methods += [Method(method_name("cpm", b, a), "cpm", b, a) for b in betas for a in alphas]
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

    def validate(self) -> CompareConfig:
        """Check every field but ``task`` (:func:`.compare.run_compare` checks it by loading
        it, once) before anything is written or loaded; returns the config."""
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
        return self


def quick_config(task: str = DEFAULT_TASK, model: str = "tiny-llama", seeds=(0, 1)):
    """Seconds, not minutes: for CI and ``pmrlhf reproduce --quick``."""
    return CompareConfig(
        task=task,
        model=model,
        seeds=tuple(seeds),
        sft=SFTConfig(steps=5, lr=1e-3),
        rl=RLConfig(steps=3, samples_per_prompt=4, lr=1e-3, eval_every=1),
    )
