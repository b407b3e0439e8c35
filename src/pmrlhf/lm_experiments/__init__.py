"""Language-model layer: SFT, RL with KL / PM / conditional-PM penalties, exact evaluation.

A thin layer over torch, transformers and accelerate (THEORY.md §4–5).
"""

from .compare import FIGURES, CompareConfig, Method, grid_methods, quick_config, run_compare
from .data import PreferencePair, load_preference_pairs
from .evaluate import evaluate_candidates
from .freeform import evaluate_freeform, implied_preference_figure
from .models import load_model, load_tokenizer
from .reward_model import RewardConfig, RewardModel, train_reward_model
from .rl import RLConfig, train_rl
from .sft import SFTConfig, sft_on_pairs
from .tasks import BUILTIN_TASKS, SyntheticTask, load_task

__all__ = [
    "BUILTIN_TASKS",
    "PreferencePair",
    "RewardConfig",
    "RewardModel",
    "evaluate_freeform",
    "implied_preference_figure",
    "load_preference_pairs",
    "train_reward_model",
    "CompareConfig",
    "Method",
    "RLConfig",
    "SFTConfig",
    "SyntheticTask",
    "evaluate_candidates",
    "grid_methods",
    "load_model",
    "load_task",
    "load_tokenizer",
    "quick_config",
    "reproduce_compare",
    "run_compare",
    "sft_on_pairs",
    "train_rl",
]


def reproduce_compare(
    out, *, model: str, seed: int, quick: bool, progress: bool = True, resume: bool = True
) -> dict:
    """The LM stage of ``pmrlhf reproduce``: the default task, quick or full settings.

    With ``resume``, methods finished by an interrupted earlier run are reused
    (:func:`run_compare`)."""
    from pathlib import Path

    config = (
        quick_config(model=model, seed=seed) if quick else CompareConfig(model=model, seed=seed)
    )
    summary = run_compare(config, out, progress=progress, resume=resume)
    names = ("summary.json", "summary.csv", *FIGURES)
    outputs = [str(Path(out) / name) for name in names]
    return {"summary": {k: v for k, v in summary.items() if k != "config"}, "outputs": outputs}
