"""Language-model layer: SFT, RL with KL / PM / conditional-PM penalties, exact evaluation
and exact optima given the reference.

A thin layer over torch, transformers and accelerate (docs/theory.md §4, §5, §7), laid out
by job (docs/architecture.md): ``models/``, ``data/``, ``train/``, ``evaluate/`` and
``commands/``. The names below are its public API; everything else is imported from the
module that defines it.
"""

from __future__ import annotations

from .._lazy import lazy_names

_WHERE = {
    "BUILTIN_TASKS": ".data.task_files",
    "CompareConfig": ".commands.compare_config",
    "DEFAULT_METHODS": ".commands.compare_config",
    "FIGURES": ".evaluate.plots",
    "FREE_TEXT_POPULATION": ".data.text_population",
    "FreeTextConfig": ".commands.free_text_config",
    "Method": ".train.method",
    "OracleReward": ".data.oracle",
    "PreferenceDataset": ".data.preference_datasets",
    "PreferencePair": ".data.preference_pairs",
    "RLConfig": ".train.rl_config",
    "RewardConfig": ".train.reward_model",
    "SFTConfig": ".train.sft",
    "SyntheticTask": ".data.tasks",
    "TextGroup": ".data.text_population",
    "TextPopulation": ".data.text_population",
    "audit": ".commands.audit",
    "check_seeds": ".commands.compare_config",
    "console_table": ".evaluate.summary",
    "evaluate_candidates": ".evaluate.exact",
    "evaluate_freeform": ".evaluate.freeform",
    "grid_methods": ".commands.compare_config",
    "implied_preference_figure": ".evaluate.freeform",
    "load_model": ".models.loading",
    "load_preference_dataset": ".data.preference_datasets",
    "load_preference_pairs": ".data.preference_pairs",
    "load_reward_model": ".train.reward_model",
    "load_task": ".data.tasks",
    "load_tokenizer": ".models.loading",
    "make_free_text_data": ".commands.free_text_data",
    "method_optima": ".evaluate.optima",
    "quick_config": ".commands.compare_config",
    "run_compare": ".commands.compare",
    "save_reward_model": ".train.reward_model",
    "sft_on_pairs": ".train.sft",
    "synthetic_pairs": ".data.preference_pairs",
    "t_interval": ".evaluate.summary",
    "train_reward_model": ".train.reward_model",
    "train_rl": ".train.rl",
    "write_preference_pairs": ".data.preference_pairs",
}
"""Each public name and the module that defines it: imported when first used, so that
importing the package (the command line does, for its parsers) loads no torch."""

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
