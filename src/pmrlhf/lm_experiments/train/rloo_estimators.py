"""The estimators of one RLOO update and its learning-rate schedule (:mod:`.rl` runs them).

The penalty's exact expectation over the vocabulary at each sampled history, the return of
each token with the penalties after it, the leave-one-out baseline (docs/theory.md §4), and
the warmup-then-decay factor of the learning rate (also used by :mod:`pmrlhf.trl.command`).
"""

from __future__ import annotations

import torch

from ...theory import penalty


def expected_penalty(logits, ref_logits=None, *, regularizer: str, alpha: float | None = None):
    """``C(h) = sum_v pi(v | h) c(v | h)``: the per-token penalty's expectation over the
    whole vocabulary at each history (docs/theory.md §4, "Gradients").

    logits, ref_logits: (B, Tc, V) logits of the policy and the reference at the sampled
    histories (``ref_logits`` unused by plain PM). Returns (B, Tc), differentiable in
    ``logits``: minus the entropy for PM, ``KL(pi(.|h) || pi_ref(.|h))`` for KL, and the
    KL to the conditional-PM weights ``w`` for cPM.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)  # half precision: in float32
    logp = torch.log_softmax(logits.to(dtype), dim=-1)  # (B, Tc, V)
    ref_logp = None if ref_logits is None else torch.log_softmax(ref_logits.to(dtype), dim=-1)
    c = penalty(logp, ref_logp, regularizer=regularizer, alpha=alpha)  # (B, Tc, V)
    return (logp.exp() * c).sum(-1)  # (B, Tc)


def penalized_returns(reward, expected, mask, *, beta: float):
    """Return of each token ``G_t = r - beta * sum_{t' > t} C(h_t')`` (docs/theory.md §4).

    reward (B,); expected (B, Tc): :func:`expected_penalty` at the sampled histories;
    mask (B, Tc). The penalty at ``h_t`` itself and before it is not in ``G_t``: the
    score of ``y_t`` only moves what comes after; ``C(h_t)`` has its own exact gradient.
    """
    c = expected * mask  # (B, Tc)
    after = c.flip(-1).cumsum(-1).flip(-1) - c  # (B, Tc): sum over t' > t
    return reward[:, None] - beta * after  # (B, Tc)


def leave_one_out(values, k: int):
    """``values`` (B,) minus the mean of the other ``k - 1`` values of its group (B / k
    groups of ``k`` consecutive entries): the RLOO advantage."""
    grouped = values.view(-1, k)  # (P, k)
    baseline = (grouped.sum(-1, keepdim=True) - grouped) / (k - 1)  # (P, k)
    return (grouped - baseline).view(-1)  # (B,)


def lr_factor(config, step: int) -> float:
    """Learning rate of update ``step + 1`` over ``config.lr`` (an
    :class:`~pmrlhf.lm_experiments.train.rl.RLConfig`, or what has its ``steps``,
    ``warmup_steps`` and ``lr_final``): linear warmup over
    ``warmup_steps`` updates (the first Adam steps are sign-like, every weight moves by
    about lr, and a large first move can drop an answer the policy never samples again),
    then linear decay to ``lr_final`` at the last step."""
    warmup = min(config.warmup_steps, config.steps - 1)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return 1 - (1 - config.lr_final) * (step - warmup) / max(config.steps - warmup, 1)
