"""A token-level toy language: the bridge from finite response sets to language models.

Every sequence of up to ``max_len`` tokens that ends in the end token ``EOS = 0`` (and has
no earlier ``EOS``) is a response; at depth ``max_len - 1`` only ``EOS`` is allowed. A
sequence is its non-``EOS`` prefix plus ``EOS``, so sequences and prefix nodes are in
bijection and everything is a vectorised array over nodes in breadth-first order.

The tabular autoregressive policy has logits ``(n_nodes, vocab_size)``. The reference is
peaked: at each node a few *plausible* tokens get most of the mass. A sequence is
*meaningful* when every one of its tokens is plausible. Rewards are i.i.d. normal, also on
meaningless sequences (a reward model is arbitrary off its data), which is what makes
plain PM spread mass over gibberish and conditional PM necessary (docs/theory.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import log_softmax

from .._validation import DEFAULT_SEED, check_beta, check_choice, check_positive_int
from ..errors import PmrlhfUserError
from ..theory import penalty, reference_log_weight
from ..theory.regularizers import check_regularizer
from .metrics import kl

EOS = 0
MAX_SEQUENCES = 1_000_000


@dataclass(frozen=True)
class TreeTraining:
    """Trained node logits and a history (``step, objective, kl_to_optimum``)."""

    logits: np.ndarray
    history: pd.DataFrame


class TokenTree:
    """All sequences of up to ``max_len`` tokens ending in ``EOS`` (docs/theory.md §4).

    Parameters
    ----------
    vocab_size : int >= 2
        Tokens ``0 .. vocab_size - 1``; token 0 is ``EOS``.
    max_len : int >= 1
        Longest sequence, ``EOS`` included.
    seed : int
        Seeds the reference policy, the plausible tokens and the rewards.
    plausible_per_node : int
        How many tokens per node the reference finds plausible.
    ref_sharpness : float
        Logit bonus of plausible tokens in the reference.
    reward_scale : float
        Standard deviation of the sequence rewards.

    Raises
    ------
    ValueError
        Sizes out of range, or a tree with more than 1,000,000 sequences (``max_len``).
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        *,
        seed: int = DEFAULT_SEED,
        plausible_per_node: int = 2,
        ref_sharpness: float = 4.0,
        reward_scale: float = 1.0,
    ):
        self.vocab_size = check_positive_int(vocab_size, "vocab_size", minimum=2)
        self.max_len = check_positive_int(max_len, "max_len")
        branching = self.vocab_size - 1
        sizes = [branching**d for d in range(self.max_len)]
        if sum(sizes) > MAX_SEQUENCES:
            raise PmrlhfUserError(
                f"max_len={max_len} with vocab_size={vocab_size} gives {sum(sizes):.3g} "
                f"sequences, more than {MAX_SEQUENCES:,} can be enumerated"
            )
        plausible_per_node = check_positive_int(plausible_per_node, "plausible_per_node")
        if plausible_per_node > self.vocab_size:
            raise PmrlhfUserError(
                f"plausible_per_node must be <= vocab_size, got {plausible_per_node}"
            )
        ref_sharpness = check_beta(ref_sharpness, "ref_sharpness")
        reward_scale = check_beta(reward_scale, "reward_scale")
        self.offsets = np.concatenate(
            [[0], np.cumsum(sizes)]
        )  # depth d: [offsets[d], offsets[d+1])
        n = int(self.offsets[-1])
        self.depth = np.repeat(np.arange(self.max_len), sizes)  # (N,)
        # child[node, a] for non-EOS tokens a, or -1 at the last depth (only EOS allowed).
        self.child = np.full((n, self.vocab_size), -1, dtype=np.int64)  # (N, V)
        for d in range(self.max_len - 1):
            local = np.arange(sizes[d])
            first = self.offsets[d + 1] + local * branching
            self.child[self.offsets[d] : self.offsets[d + 1], 1:] = first[:, None] + np.arange(
                branching
            )
        self.valid = self.child >= 0
        self.valid[:, EOS] = True
        rng = np.random.default_rng(seed)
        ranks = rng.random((n, self.vocab_size)).argsort(1).argsort(1)
        plausible = (ranks < plausible_per_node) & self.valid
        plausible[self.depth == self.max_len - 1, EOS] = True  # the forced EOS is plausible
        self.plausible = plausible  # (N, V)
        ref_logits = rng.normal(scale=0.5, size=(n, self.vocab_size)) + ref_sharpness * plausible
        self.ref_logprobs = self._log_policy(ref_logits)  # (N, V), -inf off the tree
        # The same with 0 at invalid (node, token) pairs, so that penalties stay finite there.
        self._ref_filled = np.where(self.valid, self.ref_logprobs, 0.0)
        self.reward = rng.normal(scale=reward_scale, size=n)  # (N,) one per sequence
        self.meaningful = self.path_sum(np.where(plausible, 0.0, 1.0)) == 0  # (N,)

    @property
    def n_sequences(self) -> int:
        return int(self.offsets[-1])

    def _log_policy(self, logits: np.ndarray) -> np.ndarray:
        return log_softmax(np.where(self.valid, logits, -np.inf), axis=-1)

    def path_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of per-(node, token) ``values`` along each sequence, its ``EOS`` included.

        ``values`` has shape ``(n_nodes, vocab_size)``; returns ``(n_sequences,)``.
        """
        prefix = np.zeros(self.n_sequences)
        for d in range(self.max_len - 1):
            nodes = slice(self.offsets[d], self.offsets[d + 1])
            kids = self.child[nodes, 1:]  # (nodes at d, V-1)
            prefix[kids] = prefix[nodes, None] + values[nodes, 1:]
        return prefix + values[:, EOS]

    def sequence_logprobs(self, logits: np.ndarray) -> np.ndarray:
        """Exact ``log pi(y)`` of every sequence under a tabular policy's logits."""
        return self.path_sum(np.where(self.valid, self._log_policy(logits), 0.0))

    def meaningful_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every unordered pair of distinct meaningful sequences, as index arrays ``(a, b)``
        oriented so that ``reward[a] >= reward[b]``: the analogue of a preference data set,
        whose pairs are both fluent text (docs/theory.md §5)."""
        index = np.flatnonzero(self.meaningful)
        i, j = np.triu_indices(index.size, k=1)
        i, j = index[i], index[j]
        swap = self.reward[j] > self.reward[i]
        return np.where(swap, j, i), np.where(swap, i, j)

    def sequences(self) -> list[tuple[int, ...]]:
        """The token tuples, in node order (for display; small trees only)."""
        tokens: list[tuple[int, ...]] = [()] * self.n_sequences
        for d in range(self.max_len - 1):
            for node in range(self.offsets[d], self.offsets[d + 1]):
                for a in range(1, self.vocab_size):
                    tokens[self.child[node, a]] = tokens[node] + (a,)
        return [t + (EOS,) for t in tokens]

    def optimum(
        self, *, regularizer: str, beta: float = 1.0, alpha: float | None = None
    ) -> np.ndarray:
        """Closed-form token-level optimum over sequences (docs/theory.md §4).

        ``pi(y) ∝ exp(r(y)/beta) * prod_t w_t`` with the per-token weights of
        :func:`pmrlhf.theory.reference_log_weight`: for KL the product is ``pi_ref(y)``,
        for PM it is 1, for conditional PM it runs over tokens with ``pi_ref <= alpha``.
        """
        regularizer, alpha = check_regularizer(regularizer, ref_given=True, alpha=alpha)
        beta = check_beta(beta)
        log_w = reference_log_weight(self._ref_filled, regularizer=regularizer, alpha=alpha)
        return np.exp(log_softmax(self.reward / beta + self.path_sum(log_w)))

    def _penalty(self, log_pi, regularizer, alpha) -> np.ndarray:
        """Per-(node, token) penalty ``c`` of docs/theory.md §4, 0 off the tree."""
        filled = np.where(self.valid, log_pi, 0.0)
        return penalty(filled, self._ref_filled, regularizer=regularizer, alpha=alpha)

    def objective(self, logits, *, regularizer: str, beta: float = 1.0, alpha=None) -> float:
        """``E_pi[r - beta * sum_t c_t]`` with the per-token penalty of docs/theory.md §4."""
        log_pi = self._log_policy(logits)
        c = self._penalty(log_pi, regularizer, alpha)
        seq_logp = self.path_sum(np.where(self.valid, log_pi, 0.0))
        return float(np.exp(seq_logp) @ (self.reward - beta * self.path_sum(c)))

    def _exact_gradient(self, logits, beta, regularizer, alpha) -> np.ndarray:
        """Policy gradient by backward soft-Q recursion, exact (no sampling)."""
        log_pi = self._log_policy(logits)  # (N, V)
        pi = np.exp(log_pi)
        c = self._penalty(log_pi, regularizer, alpha)
        q = np.zeros_like(log_pi)  # (N, V): return-to-go after taking a at node
        value = np.zeros(self.n_sequences)  # (N,)
        for d in range(self.max_len - 1, -1, -1):
            nodes = slice(self.offsets[d], self.offsets[d + 1])
            q[nodes, EOS] = self.reward[nodes] - beta * c[nodes, EOS]
            if d < self.max_len - 1:
                q[nodes, 1:] = value[self.child[nodes, 1:]] - beta * c[nodes, 1:]
            value[nodes] = (pi[nodes] * q[nodes]).sum(-1)
        reach = np.exp(self.path_sum(np.where(self.valid, log_pi, 0)) - log_pi[:, EOS])  # (N,)
        return np.where(self.valid, reach[:, None] * pi * (q - value[:, None]), 0.0)

    def _sample(self, logits, samples: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``samples`` sequences autoregressively; return visited (node, token) and ends."""
        pi = np.exp(self._log_policy(logits))
        node = np.zeros(samples, dtype=np.int64)
        alive = np.ones(samples, bool)
        steps_node = np.full((samples, self.max_len), -1)
        steps_token = np.full((samples, self.max_len), -1)
        for t in range(self.max_len):
            cdf = np.cumsum(pi[node], axis=-1)  # (S, V)
            token = np.minimum(
                (cdf < rng.random((samples, 1)) * cdf[:, -1:]).sum(-1), self.vocab_size - 1
            )
            steps_node[alive, t] = node[alive]
            steps_token[alive, t] = token[alive]
            ended = alive & (token == EOS)
            moving = alive & ~ended
            node = np.where(moving, self.child[node, np.where(moving, token, 1)], node)
            alive = moving
        return steps_node, steps_token, node

    def train(
        self,
        *,
        regularizer: str,
        beta: float = 1.0,
        alpha: float | None = None,
        method: str = "gradient",
        steps: int = 2000,
        lr: float = 1.0,
        samples: int = 32,
        seed: int = DEFAULT_SEED,
        log_every: int = 100,
    ) -> TreeTraining:
        """Train the tabular policy from the reference with the token-level penalty.

        ``method="gradient"``: exact policy gradient of ``E_pi[r - beta sum_t c_t]``;
        ``method="reinforce"``: ``samples`` sequences per step, sequence return
        ``r(y) - beta sum_t c_t``, leave-one-out baseline, Adam. Converges to
        :meth:`optimum`.
        """
        regularizer, alpha = check_regularizer(regularizer, ref_given=True, alpha=alpha)
        beta = check_beta(beta)
        method = check_choice(method, "method", ("gradient", "reinforce"))
        steps = check_positive_int(steps, "steps")
        samples = check_positive_int(samples, "samples", minimum=2)
        from .optimize import _Adam

        logits = self._ref_filled.copy()  # start at the reference
        target = self.optimum(regularizer=regularizer, beta=beta, alpha=alpha)
        adam = _Adam(logits.shape, lr) if method == "reinforce" else None
        rng = np.random.default_rng(seed)
        history = []
        for step in range(steps + 1):
            if step % log_every == 0 or step == steps:
                history.append(
                    {
                        "step": step,
                        "objective": self.objective(
                            logits, regularizer=regularizer, beta=beta, alpha=alpha
                        ),
                        "kl_to_optimum": float(kl(target, np.exp(self.sequence_logprobs(logits)))),
                    }
                )
            if step == steps:
                break
            if method == "gradient":
                logits = logits + lr * self._exact_gradient(logits, beta, regularizer, alpha)
                continue
            log_pi = self._log_policy(logits)
            nodes, tokens, ends = self._sample(logits, samples, rng)  # (S, L), (S, L), (S,)
            visited = nodes >= 0
            n_idx, t_idx = np.where(visited, nodes, 0), np.where(visited, tokens, 0)
            c = penalty(
                log_pi[n_idx, t_idx],
                self._ref_filled[n_idx, t_idx],
                regularizer=regularizer,
                alpha=alpha,
            )  # (S, L)
            returns = self.reward[ends] - beta * np.where(visited, c, 0).sum(-1)  # (S,)
            advantage = returns - (returns.sum() - returns) / (samples - 1)  # RLOO
            weight = np.where(visited, advantage[:, None], 0.0)  # (S, L)
            grad = np.zeros_like(logits)
            np.add.at(grad, (n_idx, t_idx), weight)
            np.add.at(grad, n_idx, -weight[..., None] * np.exp(log_pi[n_idx]))
            logits = np.where(self.valid, logits + adam.step(grad / samples), 0.0)
        return TreeTraining(logits, pd.DataFrame(history))
