"""Many prompts, each a token-level toy language (:class:`TokenTree`): the simulation
analogue of fine-tuning a language model on a preference data set (docs/theory.md §4–5).

Each prompt has its own reference (peaked on plausible tokens), its own reward on every
sequence (gibberish included) and its own meaningful sequences; the "data set" is every
pair of distinct meaningful sequences of every prompt. Pairwise metrics need no
normalizing constant, exactly as for free-form text.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .._validation import DEFAULT_SEED, check_choice, check_positive_int
from ..errors import PmrlhfUserError
from .metrics import pairwise_pmd
from .toy_language import TokenTree

MODELS = ("reference", "reward", "kl", "pm", "cpm")


def tree_prompts(
    prompts: int,
    *,
    vocab_size: int = 5,
    max_len: int = 5,
    seed: int = DEFAULT_SEED,
    plausible_per_node: int = 2,
    ref_sharpness: float = 4.0,
    reward_scale: float = 1.0,
) -> list[TokenTree]:
    """``prompts`` independent :class:`TokenTree` s; prompt ``k`` is seeded by ``[seed, k]``.

    Raises
    ------
    ValueError
        ``prompts < 1`` or a tree argument out of range (see :class:`TokenTree`).
    """
    prompts = check_positive_int(prompts, "prompts")
    return [
        TokenTree(
            vocab_size,
            max_len,
            seed=[seed, k],
            plausible_per_node=plausible_per_node,
            ref_sharpness=ref_sharpness,
            reward_scale=reward_scale,
        )
        for k in range(prompts)
    ]


def log_policies(
    trees, *, model: str, beta: float = 1.0, alpha: float | None = None
) -> list[np.ndarray]:
    """Per prompt, ``log pi(y)`` of every sequence under ``model``:

    * ``"reference"``: the reference policy; ``"reward"``: the reward itself (its implied
      preference is the reward model's, ``sigma(r(a) - r(b))``);
    * ``"kl"``, ``"pm"``, ``"cpm"``: the closed-form token-level optimum
      (:meth:`TokenTree.optimum`, docs/theory.md §4).
    """
    model = check_choice(model, "model", MODELS)
    if model == "reference":
        return [tree.sequence_logprobs(tree.ref_logprobs) for tree in trees]
    if model == "reward":
        return [tree.reward for tree in trees]
    with np.errstate(divide="ignore"):
        return [np.log(tree.optimum(regularizer=model, beta=beta, alpha=alpha)) for tree in trees]


def pair_metrics(trees, log_pis) -> dict:
    """Implied preferences and pairwise metrics over every meaningful pair of every prompt.

    Returns
    -------
    dict
        ``implied``: ``sigma(log pi(a) - log pi(b))`` per pair (``a`` the reward's favourite);
        ``target``: ``sigma(r(a) - r(b))``; ``kl_bernoulli`` and ``abs_logodds_gap`` of
        :func:`pmrlhf.simulate.pairwise_pmd`; ``coverage``: mean policy mass on meaningful
        sequences; ``mean_reward``: mean ``E_pi[r]`` over prompts (both only for policies,
        i.e. when every ``log_pi`` is normalized).

    Raises
    ------
    ValueError
        ``log_pis`` not one array per tree, each of the tree's number of sequences.
    """
    if len(log_pis) != len(trees) or len(trees) == 0:
        raise PmrlhfUserError(
            f"log_pis must hold one array per tree ({len(trees)}), got {len(log_pis)}"
        )
    parts = {"la": [], "lb": [], "ra": [], "rb": []}
    coverage, reward = [], []
    for tree, log_pi in zip(trees, log_pis, strict=True):
        log_pi = np.asarray(log_pi, dtype=float)
        if log_pi.shape != tree.reward.shape:
            raise PmrlhfUserError(f"log_pi has shape {log_pi.shape}, expected {tree.reward.shape}")
        a, b = tree.meaningful_pairs()
        parts["la"].append(log_pi[a])
        parts["lb"].append(log_pi[b])
        parts["ra"].append(tree.reward[a])
        parts["rb"].append(tree.reward[b])
        pi = np.exp(log_pi)
        coverage.append(pi[tree.meaningful].sum())
        reward.append(pi @ tree.reward)
    la, lb, ra, rb = (np.concatenate(parts[k]) for k in ("la", "lb", "ra", "rb"))
    normalized = np.allclose([np.exp(lp).sum() for lp in log_pis], 1.0)
    return {
        "implied": expit(la - lb),
        "target": expit(ra - rb),
        **pairwise_pmd(la, lb, ra, rb),
        "coverage": float(np.mean(coverage)) if normalized else float("nan"),
        "mean_reward": float(np.mean(reward)) if normalized else float("nan"),
        "pairs": int(la.size),
    }
