"""Benchmarks of pmrlhf against what a user would otherwise use (``python -m benchmarks``).

Parts: ``closed_forms`` (theory vs scipy SLSQP / trust-constr), ``reward_fitting``
(simulate.fit_btl / fit_pl vs choix), ``rl_step`` (lm_experiments RLOO vs TRL RLOOTrainer),
``simulate`` (wall time of ``pmrlhf simulate``). Every ratio comes from interleaved runs in
one invocation; raw results go to ``benchmarks/results/``, the report to BENCHMARKS.md.
"""
