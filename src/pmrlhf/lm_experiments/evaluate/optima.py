"""Exact optima of the RL objectives for a language-model policy, given its reference.

The policy lives on token sequences of at most ``L`` tokens (a response ends with the end
token or is cut at ``L``). On a synthetic task every such sequence except the candidates'
canonical encodings earns the same off-candidate reward ``r_off``. Then every optimum has
the form (docs/theory.md §7)::

    pi*(c) = W(c) exp(r_c / beta) / E
    E = exp(r_off / beta) M + sum_c W(c) (exp(r_c / beta) - exp(r_off / beta))

where ``W`` is the product of the regularizer's token weights ``w`` along a sequence and
``M`` their sum over all sequences:

* KL: ``w = pi_ref``, so ``W(c) = pi_ref(c)`` and ``M = 1``;
* PM: ``w = 1``, so ``W(c) = 1`` and ``M = N``, the number of sequences;
* conditional PM (token level): ``w = 1`` where ``pi_ref(t | h) > alpha``, ``pi_ref``
  elsewhere. ``M`` is a sum over the tree of plausible tokens, enumerated with the
  reference model. Below an implausible token off every candidate's path the vocabulary
  cannot be enumerated: there ``M`` is taken as 1 (KL below it, exact for ``pi_ref``) and
  bounded above by ``U_d = (1 + k (1 - alpha))^d``; the optimum at the upper end gives the
  reported error bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp

from ...theory.regularizers import reference_log_weight


@dataclass(frozen=True)
class TokenTree:
    """What the optima need from the reference model, for one prompt.

    ``candidate_logps[c][t]`` is ``log pi_ref`` of candidate ``c``'s ``t``-th token given
    its prefix. ``log_mass`` is ``log M`` for conditional PM at threshold ``alpha`` with
    the lumped subtrees at their lower (``[0]``) and upper (``[1]``) bound.
    """

    candidate_logps: tuple[np.ndarray, ...]
    alpha: float | None
    log_mass: tuple[float, float]
    nodes: int


def mass_upper_bound(alpha: float, depth: int) -> float:
    """``U_d = (1 + k (1 - alpha))^d``, ``k = ceil(1/alpha) - 1``: no subtree of ``depth``
    further tokens has a larger conditional-PM weight sum (docs/theory.md §7)."""
    k = math.ceil(1 / alpha) - 1
    return (1 + k * (1 - alpha)) ** depth


@torch.no_grad()
def _next_token_logps(model, prompt: list[int], prefixes: list[tuple[int, ...]]) -> np.ndarray:
    """``log pi(. | x, h)`` for prefixes ``h`` of equal length: (n, V) in float64."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt) + list(h) for h in prefixes], device=device)  # (n, Tp + d)
    logits = model(input_ids=ids, logits_to_keep=1).logits[:, -1].double()  # (n, V)
    return torch.log_softmax(logits, dim=-1).cpu().numpy()


def reference_tree(
    ref,
    prompt: list[int],
    candidates: list[list[int]],
    *,
    eos_id: int,
    max_len: int,
    alpha: float | None,
    expand_all: bool = False,
) -> TokenTree:
    """Walk the reference's tree of plausible tokens under ``prompt`` down to ``max_len``.

    Parameters
    ----------
    ref : causal LM, eval mode
    prompt : list of int
        The prompt's token ids.
    candidates : list of list of int
        Each candidate's canonical token ids, ending with ``eos_id``.
    eos_id : int
    max_len : int
        Length cap ``L`` of a completion.
    alpha : float or None
        Conditional-PM threshold; ``None`` skips the plausible tree (KL and PM need only
        the candidates' paths).
    expand_all : bool
        Enumerate every token (exact, for tiny vocabularies in tests).
    """
    logps_at: dict[tuple[int, ...], np.ndarray] = {}  # log pi_ref(. | h) of every walked h
    children: dict[tuple[int, ...], list[int]] = {}  # the tokens walked below h (not EOS)
    frontier, nodes = [()], 0
    for depth in range(max_len):
        if not frontier:
            break
        rows = _next_token_logps(ref, prompt, frontier)  # (n, V)
        nodes += len(frontier)
        next_frontier = []
        for h, logp in zip(frontier, rows, strict=True):
            logps_at[h] = logp
            wanted = {c[depth] for c in candidates if tuple(c[:depth]) == h}
            if expand_all:
                wanted = set(range(logp.size))
            elif alpha is not None:
                wanted |= set(np.flatnonzero(logp > math.log(alpha)).tolist())
            wanted.discard(eos_id)  # the end token closes the sequence: a leaf
            children[h] = sorted(wanted)
            if depth + 1 < max_len:  # at the cap a child is a leaf (a cut sequence)
                next_frontier += [(*h, t) for t in children[h]]
        frontier = next_frontier
    candidate_logps = tuple(
        np.array([logps_at[tuple(c[:d])][c[d]] for d in range(len(c))]) for c in candidates
    )
    if alpha is None:
        return TokenTree(candidate_logps, None, (0.0, 0.0), nodes)
    bounds = []
    for upper in (False, True):
        mass: dict[tuple[int, ...], float] = {}
        for h in sorted(logps_at, key=len, reverse=True):  # children before parents
            logp = logps_at[h]
            depth = len(h)
            w = np.exp(reference_log_weight(logp, regularizer="cpm", alpha=alpha))  # (V,)
            expanded = np.asarray(children[h], dtype=int)
            below = np.array([mass.get((*h, t), 1.0) for t in expanded])  # terminal: M = 1
            total = float(w[expanded] @ below) + float(w[eos_id])
            lumped = 1.0 - float(np.exp(logp[expanded]).sum()) - float(np.exp(logp[eos_id]))
            remaining = max_len - depth - 1
            scale = mass_upper_bound(alpha, remaining) if upper else 1.0
            mass[h] = total + max(lumped, 0.0) * scale
        bounds.append(math.log(mass[()]))
    return TokenTree(candidate_logps, alpha, (bounds[0], bounds[1]), nodes)


def sequence_count(vocab_size: int, max_len: int) -> float:
    """``log N``: sequences of at most ``max_len`` tokens over ``vocab_size`` tokens, one of
    them the end token (finished at length ``l``: ``(V - 1)^(l - 1)``; cut: ``(V - 1)^L``)."""
    v = vocab_size - 1
    terms = [(length - 1) * math.log(v) for length in range(1, max_len + 1)]
    return float(logsumexp([*terms, max_len * math.log(v)]))


def optimum(
    rewards,
    off_reward: float,
    tree: TokenTree,
    *,
    regularizer: str,
    beta: float,
    vocab_size: int,
    max_len: int,
    upper: bool = False,
) -> np.ndarray:
    """The optimum's mass on each candidate and on everything else: shape (C + 1,).

    Computed in log space (docs/theory.md §7); ``upper`` takes conditional PM's lumped
    subtrees at their upper bound instead of the approximation ``M = 1``.
    """
    rewards = np.asarray(rewards, dtype=float)
    if regularizer == "kl":
        log_w = np.array([lp.sum() for lp in tree.candidate_logps])
        log_m = 0.0
    elif regularizer == "pm":
        log_w = np.zeros(rewards.size)
        log_m = sequence_count(vocab_size, max_len)
    else:
        log_w = np.array(
            [
                reference_log_weight(lp, regularizer="cpm", alpha=tree.alpha).sum()
                for lp in tree.candidate_logps
            ]
        )
        log_m = tree.log_mass[1 if upper else 0]
    scaled, off = rewards / beta, off_reward / beta
    # exp(r_c/beta) - exp(r_off/beta) > 0 because every candidate is above r_off.
    log_gain = scaled + np.log1p(-np.exp(off - scaled))
    log_total = np.logaddexp(off + log_m, logsumexp(log_w + log_gain))
    on = np.exp(log_w + scaled - log_total)  # (C,)
    return np.append(on, max(1.0 - on.sum(), 0.0))


def tv_with_other(p, q) -> float:
    """Total variation between two (C + 1,) vectors: candidates plus everything else."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def method_optima(ref, tokenizer, task, methods, *, max_len: int) -> dict[str, dict]:
    """Every method's optimum given the trained reference ``ref``, prompt by prompt.

    Returns ``{method name: {"optimum": [(C + 1,) per prompt], "bound": [TV error bound
    per prompt]}}`` with the candidates' mass first and everything else last. The bound is
    0 for KL and PM (exact) and the TV between conditional PM's bracketing optima.
    """
    from ..data.oracle import candidate_token_ids
    from ..models.sequences import encode_prompt

    ids = candidate_token_ids(task, tokenizer)
    rewards = task.oracle_rewards()
    vocab = ref.get_output_embeddings().weight.shape[0]
    trees: dict[tuple[int, float | None], TokenTree] = {}
    out = {}
    for method in methods:
        alpha = method.alpha if method.regularizer == "cpm" else None
        result = {"optimum": [], "bound": []}
        for i, prompt in enumerate(task.prompts):
            if (i, alpha) not in trees:
                trees[i, alpha] = reference_tree(
                    ref,
                    encode_prompt(tokenizer, prompt.messages),
                    ids[i],
                    eos_id=tokenizer.eos_token_id,
                    max_len=max_len,
                    alpha=alpha,
                )
            options = dict(
                regularizer=method.regularizer, beta=method.beta, vocab_size=vocab, max_len=max_len
            )
            off = task.off_candidate_reward(i)
            low = optimum(rewards[i], off, trees[i, alpha], **options)
            high = optimum(rewards[i], off, trees[i, alpha], **options, upper=True)
            result["optimum"].append(low.tolist())
            result["bound"].append(tv_with_other(low, high))
        out[method.name] = result
    return out
