"""One seed's SFT reference in ``pmrlhf lm compare`` (:mod:`.compare`), with what every method
needs from it before RL (the exact optima, its evaluation), and the fingerprints that say
when a stored result of a seed, the reference's or a method's, can be reused."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..._fingerprint import fingerprint
from ..data.oracle import OracleReward
from ..evaluate.exact import evaluate_candidates
from ..evaluate.optima import method_optima
from ..models.loading import TINY_MODELS
from ..train.sft import candidate_pairs
from .compare_config import CompareConfig
from .workflow import sft_reference


def method_fingerprint(config: CompareConfig, task, seed: int, method) -> str:
    """What one seed's result of a method depends on (``None``: the SFT reference)."""
    options = {
        "task": task.to_dict(),
        "model": config.model,
        "seed": seed,
        "sft": asdict(config.sft),
        "rl": config.rl.shared_settings(),
        "method": None if method is None else asdict(method),
    }
    return fingerprint(options)


def reference_fingerprint(config: CompareConfig, task, seed: int) -> str:
    """What the SFT reference depends on. The seed only where it changes the reference: a
    tiny model's random initialisation, or SFT batches drawn at random (more pairs than
    ``sft.batch_size``). Full-batch SFT of a pretrained model is the same for every seed."""
    seeded = config.model in TINY_MODELS or len(candidate_pairs(task)[0]) > config.sft.batch_size
    return fingerprint(
        {
            "task": task.to_dict(),
            "model": config.model,
            "sft": asdict(config.sft),
            "seed": seed if seeded else None,
        }
    )


@dataclass
class Reference:
    """A trained reference and what every method needs from it, computed before any RL
    step: the exact optima (docs/theory.md §7), the reference's own evaluation, and the
    seeds that use it."""

    key: str
    model: object
    tokenizer: object
    reward: OracleReward
    sft_losses: list
    max_len: int
    optima: dict
    evaluation: dict
    seconds: float
    seeds: list = field(default_factory=list)


def prepare_reference(config: CompareConfig, task, seed: int, *, progress=True) -> Reference:
    """SFT the reference for ``seed``, then compute every method's exact optimum given it."""
    started = time.perf_counter()
    model, tokenizer, sft_losses = sft_reference(
        config.model, task, config.sft, seed=seed, progress=progress
    )
    reward = OracleReward(task, tokenizer)
    max_len = config.rl.max_new_tokens or reward.max_len
    optima = method_optima(model, tokenizer, task, config.methods, max_len=max_len)
    return Reference(
        key=reference_fingerprint(config, task, seed),
        model=model,
        tokenizer=tokenizer,
        reward=reward,
        sft_losses=sft_losses,
        max_len=max_len,
        optima=optima,
        evaluation=evaluate_candidates(model, tokenizer, task),
        seconds=time.perf_counter() - started,
    )
