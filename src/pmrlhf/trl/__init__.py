"""Preference matching inside TRL: a one-line switch for a TRL user (docs/theory.md §4).

    from pmrlhf.trl import PMRLOOConfig as RLOOConfig, PMRLOOTrainer as RLOOTrainer
    config = RLOOConfig(..., regularizer="cpm", cpm_alpha=0.1)

* :class:`PMRLOOTrainer` (``rloo.py``): TRL's ``RLOOTrainer`` with the per-token penalty
  :func:`pmrlhf.theory.penalty` where TRL subtracts its KL from the reward;
  ``regularizer="kl"`` is TRL itself.
* :class:`PMGRPOTrainer` (``grpo.py``): TRL's ``GRPOTrainer`` with the penalty in each
  completion's reward, before the group normalisation (not in GRPO's k3 loss term).
* :class:`PreferenceMatchingCallback` (``callback.py``): the exact candidate distribution
  of a synthetic task, logged through the trainer's own logging.
* ``command.py``: ``pmrlhf lm trl``, a TRL run on a synthetic task that writes ``lm run``'s
  ``eval.json``.
* ``paper.py``: ``pmrlhf lm paper``, the paper's experiment on free text, stage by stage.

This subpackage relies on trainer internals of TRL (imported in ``_compat.py`` only) and
supports TRL >= :data:`MIN_TRL` within its major version, tested with the minor versions in
:data:`TESTED_TRL`; importing it with TRL missing or outside that range raises an
``ImportError`` that says so, and with a newer, untested minor version warns
(:func:`trl_support`). Elsewhere ``pmrlhf`` imports TRL only where it trains with one of
TRL's own trainers, inside the function: a reward model
(:func:`pmrlhf.lm_experiments.train.reward_model.train_reward_model`, ``RewardTrainer``)
and the stages of ``pmrlhf lm paper`` (``paper.py``, ``paper_train.py``, ``paper_audit.py``).
"""

from __future__ import annotations

from ._compat import MIN_TRL, TESTED_TRL, check_trl_version, trl_support
from .callback import PreferenceMatchingCallback
from .config import PMGRPOConfig, PMRLOOConfig
from .grpo import PMGRPOTrainer
from .rloo import PMRLOOTrainer

__all__ = [
    "MIN_TRL",
    "TESTED_TRL",
    "PMGRPOConfig",
    "PMGRPOTrainer",
    "PMRLOOConfig",
    "PMRLOOTrainer",
    "PreferenceMatchingCallback",
    "check_trl_version",
    "trl_support",
]
