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
* ``run.py``: ``pmrlhf lm trl``, a TRL run on a synthetic task that writes ``lm run``'s
  ``eval.json``.

This subpackage relies on trainer internals of TRL and is tested with the TRL versions in
:data:`TESTED_TRL` (``pip install 'pmrlhf[trl]'`` installs one); importing it with TRL
missing or at another minor version raises an ``ImportError`` that says so. The rest of
``pmrlhf`` never imports TRL.
"""

from __future__ import annotations

from ._compat import TESTED_TRL, check_trl_version

check_trl_version()

from .callback import PreferenceMatchingCallback  # noqa: E402
from .config import PMGRPOConfig, PMRLOOConfig  # noqa: E402
from .grpo import PMGRPOTrainer  # noqa: E402
from .rloo import PMRLOOTrainer  # noqa: E402

__all__ = [
    "TESTED_TRL",
    "PMGRPOConfig",
    "PMGRPOTrainer",
    "PMRLOOConfig",
    "PMRLOOTrainer",
    "PreferenceMatchingCallback",
    "check_trl_version",
]
