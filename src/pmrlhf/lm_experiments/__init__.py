"""Language-model layer: SFT, RL with KL / PM / conditional-PM penalties, exact evaluation
and exact optima given the reference.

A thin layer over torch, transformers and accelerate (docs/theory.md §4, §5, §7), laid out
by job (docs/architecture.md): ``models/``, ``data/``, ``train/``, ``evaluate/`` and
``commands/``. The names below are its public API; everything else is imported from the
module that defines it.
"""

from .commands.audit import audit
from .commands.compare import run_compare
from .commands.compare_config import (
    DEFAULT_METHODS,
    CompareConfig,
    check_seeds,
    grid_methods,
    quick_config,
)
from .data.oracle import OracleReward
from .data.preference_pairs import (
    PreferencePair,
    load_preference_pairs,
    synthetic_pairs,
    write_preference_pairs,
)
from .data.task_files import BUILTIN_TASKS
from .data.tasks import SyntheticTask, load_task
from .evaluate.exact import evaluate_candidates
from .evaluate.freeform import evaluate_freeform, implied_preference_figure
from .evaluate.optima import method_optima
from .evaluate.plots import FIGURES
from .evaluate.summary import console_table, t_interval
from .models.loading import load_model, load_tokenizer
from .train.method import Method
from .train.reward_model import (
    RewardConfig,
    load_reward_model,
    save_reward_model,
    train_reward_model,
)
from .train.rl import train_rl
from .train.rl_config import RLConfig
from .train.sft import SFTConfig, sft_on_pairs

__all__ = [
    "BUILTIN_TASKS",
    "DEFAULT_METHODS",
    "FIGURES",
    "CompareConfig",
    "Method",
    "OracleReward",
    "PreferencePair",
    "RLConfig",
    "RewardConfig",
    "SFTConfig",
    "SyntheticTask",
    "audit",
    "check_seeds",
    "console_table",
    "evaluate_candidates",
    "evaluate_freeform",
    "grid_methods",
    "implied_preference_figure",
    "load_model",
    "load_preference_pairs",
    "load_reward_model",
    "load_task",
    "load_tokenizer",
    "method_optima",
    "quick_config",
    "run_compare",
    "save_reward_model",
    "sft_on_pairs",
    "synthetic_pairs",
    "t_interval",
    "train_reward_model",
    "train_rl",
    "write_preference_pairs",
]
