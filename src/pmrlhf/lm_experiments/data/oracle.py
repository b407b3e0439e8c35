"""The task's exact reward of sampled completions, matched on token ids (docs/theory.md §7).

:class:`OracleReward` scores the (B, Tc) completions of
:func:`pmrlhf.lm_experiments.train.rl.train_rl`;
:class:`TokenIdReward` is the same reward with TRL's reward-function signature.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import PmrlhfTypeError, PmrlhfUserError


def candidate_token_ids(task, tokenizer) -> list[list[list[int]]]:
    """Per prompt, each candidate's canonical token ids followed by the end token."""
    from ..models.sequences import encode_response

    return [[encode_response(tokenizer, c) for c in p.candidates] for p in task.prompts]


class OracleReward:
    """The task's exact reward of sampled completions, matched on token ids.

    A completion is candidate ``c`` iff its tokens up to and including the first end token
    equal ``c``'s canonical encoding plus the end token; it then earns ``r(c)``
    (:meth:`~pmrlhf.lm_experiments.data.tasks.SyntheticTask.oracle_rewards`); anything else
    earns the prompt's off-candidate reward. Vectorized: one comparison of a (B, C, T) tensor.
    """

    def __init__(self, task, tokenizer, *, rewards=None):
        ids = candidate_token_ids(task, tokenizer)
        self.max_len = max(len(c) for cands in ids for c in cands)
        width = max(len(cands) for cands in ids)
        # (P, Cmax, L): candidates padded with -1 (never a token); missing candidates all -2.
        table = torch.full((len(ids), width, self.max_len), -2, dtype=torch.long)
        values = torch.full((len(ids), width), -np.inf, dtype=torch.float64)
        rewards = task.oracle_rewards() if rewards is None else rewards
        for i, (cands, reward) in enumerate(zip(ids, rewards, strict=True)):
            for j, c in enumerate(cands):
                table[i, j] = -1
                table[i, j, : len(c)] = torch.tensor(c)
                values[i, j] = float(reward[j])
        self.table, self.values = table, values
        # Below every candidate by the task's margin (docs/theory.md §7).
        self.off = torch.tensor(
            [float(np.min(r)) - task.off_candidate_margin for r in rewards], dtype=torch.float64
        )

    def __call__(self, prompt_index, completion, completion_mask_) -> torch.Tensor:
        """prompt_index: (B,) ints; completion, completion_mask_: (B, Tc). Returns (B,)."""
        prompt_index = torch.as_tensor(prompt_index, dtype=torch.long)
        completion, completion_mask_ = completion.cpu(), completion_mask_.cpu()
        tokens = torch.where(completion_mask_.bool(), completion, torch.full_like(completion, -1))
        tc = tokens.shape[1]
        if tc < self.max_len:  # (B, L): cut to the candidates' width, padded as they are
            tokens = torch.cat([tokens, tokens.new_full((len(tokens), self.max_len - tc), -1)], 1)
        elif tc > self.max_len:
            extra = tokens[:, self.max_len :]
            tokens = torch.where((extra != -1).any(-1, keepdim=True), -3, tokens[:, : self.max_len])
        match = (tokens[:, None, :] == self.table[prompt_index]).all(-1)  # (B, Cmax)
        hit = match.any(-1)  # (B,)
        value = self.values[prompt_index].gather(1, match.long().argmax(-1, keepdim=True))[:, 0]
        return torch.where(hit, value, self.off[prompt_index])  # (B,)


class TokenIdReward:
    """:class:`OracleReward` with TRL's reward-function signature.

    ``reward(prompts, completions, completion_ids, prompt_index, **kwargs) -> list[float]``:
    ``completion_ids`` are the sampled token ids (lists, as TRL passes them),
    ``prompt_index`` the dataset column of
    :meth:`~pmrlhf.lm_experiments.data.tasks.SyntheticTask.to_dataset`. A completion earns
    candidate ``c``'s reward iff its ids up to and including the first end token are
    ``c``'s canonical encoding plus the end token; anything else, a completion cut off
    before its end token included, earns the off-candidate reward (docs/theory.md §7).
    """

    __name__ = "oracle"  # TRL names a reward function's metrics after its __name__

    def __init__(self, task, tokenizer, *, rewards=None):
        # A SyntheticTask (checked by what it has: .tasks imports this module, not back)
        if not callable(getattr(task, "oracle_rewards", None)):
            raise PmrlhfTypeError(f"task must be a SyntheticTask, got {type(task).__name__}")
        self.oracle = OracleReward(task, tokenizer, rewards=rewards)
        self.eos = tokenizer.eos_token_id
        self.n_prompts = len(task.prompts)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs):
        from ..models.sequences import completion_mask, right_pad

        index = kwargs.get("prompt_index")
        if completion_ids is None or index is None:
            raise PmrlhfUserError(
                "completion_ids and prompt_index are required: train on task.to_dataset(), "
                "whose prompt_index column TRL passes to reward functions"
            )
        if len(index) != len(completion_ids):
            raise PmrlhfUserError(
                f"prompt_index has {len(index)} entries but completion_ids has "
                f"{len(completion_ids)}"
            )
        bad = [i for i in index if not 0 <= int(i) < self.n_prompts]
        if bad:
            raise PmrlhfUserError(
                f"prompt_index {bad[0]} is out of range for {self.n_prompts} prompts"
            )
        # Padded with -1, never a token: a completion cut off before its end token stays so.
        ids, real = right_pad([list(c) for c in completion_ids], -1)  # (B, Tc)
        ended, _ = completion_mask(ids, self.eos)  # (B, Tc): up to the first end token
        return self.oracle([int(i) for i in index], ids, real * ended).tolist()
