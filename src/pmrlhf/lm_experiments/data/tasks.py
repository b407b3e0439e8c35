"""Synthetic preference tasks: prompts, a finite candidate set, and an annotator population.

File format (YAML or JSON), documented here once::

    name: three_answers
    description: one line
    off_candidate_margin: 3.0          # optional, see oracle_rewards
    prompts:
      - messages:                      # chat messages, as for tokenizer.apply_chat_template
          - {role: user, content: "Which season do you like most? ..."}
        candidates: [Summer, Autumn, Winter]
        population:                    # pmrlhf.simulate.Population over the candidates
          weights: [1.0]
          utilities: [[-0.51, -1.20, -2.30]]
        sft_weights: [0.2, 0.3, 0.5]   # optional: how often SFT shows each candidate
                                       # (default uniform); a biased reference

Pairwise comparisons are sampled from the population (``sample_comparisons``); the oracle
reward of a candidate is the BTL logit of its population first-choice probability, so the
PM target ``softmax(r)`` is exactly the population's first-choice distribution.

A completion earns a candidate's reward iff its token ids are the candidate's canonical
encoding followed by the end token (:class:`OracleReward`); every other completion, a
different tokenisation of the same text included, earns :meth:`off_candidate_reward`.
Reward and evaluation then describe one distribution (docs/theory.md §7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_softmax, logsumexp

from ...simulate import Population, sample_comparisons
from .oracle import TokenIdReward
from .task_files import check_task_data, read_task_file


@dataclass(frozen=True)
class TaskPrompt:
    messages: tuple[dict, ...]
    candidates: tuple[str, ...]
    population: Population
    sft_weights: tuple[float, ...] | None = None  # None: SFT shows every candidate equally

    @property
    def target(self) -> np.ndarray:
        """The population's first-choice distribution over the candidates."""
        return self.population.first_choice_distribution()


@dataclass(frozen=True)
class SyntheticTask:
    name: str
    prompts: tuple[TaskPrompt, ...]
    description: str = ""
    off_candidate_margin: float = 3.0
    source: str = field(default="", compare=False)

    def oracle_rewards(self) -> list[np.ndarray]:
        """Per prompt, ``r(c) = log P_first(c)`` (BTL logits, up to a constant), computed
        in log space: ``log sum_k w_k softmax(u_k)(c)`` stays finite for any finite
        utilities (a first-choice probability may underflow; its logarithm does not)."""
        out = []
        for p in self.prompts:
            weights = p.population.weights
            log_first = log_softmax(p.population.utilities, axis=-1)  # (K, C)
            out.append(logsumexp(log_first, axis=0, b=weights[:, None]))  # (C,)
        return out

    def off_candidate_reward(self, prompt_index: int) -> float:
        """Reward of any response outside the candidate set: below every candidate."""
        return float(self.oracle_rewards()[prompt_index].min() - self.off_candidate_margin)

    def sample_comparisons(self, n_per_prompt: int, *, rng):
        """``[(prompt_index, winners, losers)]`` drawn from each prompt's population."""
        rng = np.random.default_rng(rng)
        return [
            (i, *sample_comparisons(p.population, n_per_prompt, rng=rng))
            for i, p in enumerate(self.prompts)
        ]

    def to_dataset(self):
        """The prompts as a ``datasets.Dataset`` in TRL's conversational prompt format.

        Columns: ``prompt`` (the chat messages, with the empty system message that
        :func:`~pmrlhf.lm_experiments.models.sequences.encode_prompt` adds, so that TRL's chat
        template gives the very tokens ``pmrlhf`` feeds) and ``prompt_index`` (the prompt's
        position in :attr:`prompts`, which TRL passes to reward functions as a keyword).
        """
        from datasets import Dataset

        from ..models.sequences import with_system_message

        return Dataset.from_dict(
            {
                "prompt": [with_system_message(p.messages) for p in self.prompts],
                "prompt_index": list(range(len(self.prompts))),
            }
        )

    def reward_function(self, tokenizer, *, rewards=None) -> TokenIdReward:
        """This task's reward with TRL's reward-function signature (:class:`TokenIdReward`).

        ``rewards``: one vector of candidate rewards per prompt (default: the oracle's,
        :meth:`oracle_rewards`), e.g. a fitted reward model's scores.
        """
        return TokenIdReward(self, tokenizer, rewards=rewards)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "off_candidate_margin": self.off_candidate_margin,
            "prompts": [
                {
                    "messages": list(p.messages),
                    "candidates": list(p.candidates),
                    "population": p.population.to_dict(),
                    **({"sft_weights": list(p.sft_weights)} if p.sft_weights else {}),
                }
                for p in self.prompts
            ],
        }


def load_task(name_or_path) -> SyntheticTask:
    """Load a built-in task by name or a task file (``.yaml``, ``.yml``, ``.json``).

    Raises
    ------
    PmrlhfUserError
        Unknown name, unreadable or malformed file, candidates/utilities mismatch.
    FileNotFoundError
        A path that does not exist.
    """
    fields = check_task_data(*read_task_file(name_or_path))
    prompts = tuple(TaskPrompt(**prompt) for prompt in fields.pop("prompts"))
    return SyntheticTask(prompts=prompts, **fields)
