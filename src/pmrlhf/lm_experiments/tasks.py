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

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy.special import log_softmax, logsumexp

from .._validation import check_simplex
from ..errors import PmrlhfTypeError, PmrlhfUserError
from ..simulate import Population, sample_comparisons

BUILTIN_TASKS = ("three_answers", "two_answers", "multi_group", "biased_reference")
DEFAULT_TASK = "three_answers"


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
        :func:`~pmrlhf.lm_experiments.sequences.encode_prompt` adds, so that TRL's chat
        template gives the very tokens ``pmrlhf`` feeds) and ``prompt_index`` (the prompt's
        position in :attr:`prompts`, which TRL passes to reward functions as a keyword).
        """
        from datasets import Dataset

        from .sequences import with_system_message

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


def _check_messages(messages, where: str) -> None:
    """Chat messages: a non-empty list of ``{role: str, content: str}`` mappings."""
    if not isinstance(messages, list) or not messages:
        raise PmrlhfUserError(
            f"{where}.messages must be a non-empty list of {{role, content}} mappings"
        )
    for j, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise PmrlhfUserError(
                f"{where}.messages[{j}] must be a {{role, content}} mapping, got {message!r}"
            )
        for key in ("role", "content"):
            if not isinstance(message[key], str):
                raise PmrlhfUserError(
                    f"{where}.messages[{j}].{key} must be a string, got {message[key]!r}"
                )


def _population_message(where: str, message: str) -> str:
    """``Population.from_dict``'s message with the field's full name in front."""
    if message.startswith(("weights ", "utilities ")):
        return f"{where}.population.{message}"
    if message.startswith("population "):
        return f"{where}.{message}"
    return f"{where}.population: {message}"


def _parse(data, source: str) -> SyntheticTask:
    if not isinstance(data, dict):
        raise PmrlhfUserError(f"task {source}: expected a mapping at the top level")
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise PmrlhfUserError(f"task {source}: 'prompts' must be a non-empty list")
    parsed = []
    for i, item in enumerate(prompts):
        where = f"task {source}: prompts[{i}]"
        if not isinstance(item, dict):
            raise PmrlhfUserError(f"{where} must be a mapping, got {type(item).__name__}")
        messages, candidates = item.get("messages"), item.get("candidates")
        _check_messages(messages, where)
        if (
            not isinstance(candidates, list)
            or len(candidates) < 2
            or not all(isinstance(c, str) and c.strip() for c in candidates)
        ):
            raise PmrlhfUserError(f"{where}.candidates must list at least 2 non-empty strings")
        if len(set(candidates)) != len(candidates):
            raise PmrlhfUserError(f"{where}.candidates has duplicates")
        try:
            population = Population.from_dict(item.get("population"))
        except (ValueError, TypeError) as err:
            raise PmrlhfUserError(_population_message(where, str(err))) from None
        if population.n_items != len(candidates):
            raise PmrlhfUserError(
                f"{where}.population.utilities cover {population.n_items} items but there are "
                f"{len(candidates)} candidates"
            )
        sft_weights = item.get("sft_weights")
        if sft_weights is not None:
            try:
                sft_weights = check_simplex(sft_weights, f"{where}.sft_weights")
            except (ValueError, TypeError) as err:
                raise PmrlhfUserError(str(err)) from None
            if sft_weights.shape != (len(candidates),):
                raise PmrlhfUserError(
                    f"{where}.sft_weights has {sft_weights.size} entries but there are "
                    f"{len(candidates)} candidates"
                )
            sft_weights = tuple(float(w) for w in sft_weights)
        parsed.append(TaskPrompt(tuple(messages), tuple(candidates), population, sft_weights))
    margin = data.get("off_candidate_margin", 3.0)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 < margin < np.inf:
        raise PmrlhfUserError(
            f"task {source}: off_candidate_margin must be a positive finite number, got {margin!r}"
        )
    return SyntheticTask(
        str(data.get("name", Path(source).stem)),
        tuple(parsed),
        str(data.get("description", "")),
        float(margin),
        source,
    )


def load_task(name_or_path) -> SyntheticTask:
    """Load a built-in task by name or a task file (``.yaml``, ``.yml``, ``.json``).

    Raises
    ------
    PmrlhfUserError
        Unknown name, unreadable or malformed file, candidates/utilities mismatch.
    FileNotFoundError
        A path that does not exist.
    """
    name = str(name_or_path)
    if name in BUILTIN_TASKS:
        text = resources.files(__package__).joinpath("tasks", f"{name}.yaml").read_text()
        return _parse(yaml.safe_load(text), name)
    path = Path(name)
    if not path.exists():
        if path.suffix in (".yaml", ".yml", ".json"):
            raise FileNotFoundError(f"task file {path} does not exist")
        raise PmrlhfUserError(
            f"unknown task {name!r}: use {', '.join(BUILTIN_TASKS)} or a file path"
        )
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise PmrlhfUserError(
            f"task file {path} could not be parsed: {str(err).splitlines()[0]}"
        ) from None
    return _parse(data, str(path))


def candidate_token_ids(task: SyntheticTask, tokenizer) -> list[list[list[int]]]:
    """Per prompt, each candidate's canonical token ids followed by the end token."""
    from .sequences import encode_response

    return [[encode_response(tokenizer, c) for c in p.candidates] for p in task.prompts]


class OracleReward:
    """The task's exact reward of sampled completions, matched on token ids.

    A completion is candidate ``c`` iff its tokens up to and including the first end token
    equal ``c``'s canonical encoding plus the end token; it then earns ``r(c)``
    (:meth:`SyntheticTask.oracle_rewards`); anything else earns the prompt's
    off-candidate reward. Vectorized: one comparison of a (B, C, T) tensor.
    """

    def __init__(self, task: SyntheticTask, tokenizer, *, rewards=None):
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
    ``prompt_index`` the dataset column of :meth:`SyntheticTask.to_dataset`. A completion
    earns candidate ``c``'s reward iff its ids up to and including the first end token are
    ``c``'s canonical encoding plus the end token; anything else, a completion cut off
    before its end token included, earns the off-candidate reward (docs/theory.md §7).
    """

    __name__ = "oracle"  # TRL names a reward function's metrics after its __name__

    def __init__(self, task: SyntheticTask, tokenizer, *, rewards=None):
        if not isinstance(task, SyntheticTask):
            raise PmrlhfTypeError(f"task must be a SyntheticTask, got {type(task).__name__}")
        self.oracle = OracleReward(task, tokenizer, rewards=rewards)
        self.eos = tokenizer.eos_token_id
        self.n_prompts = len(task.prompts)

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs):
        from .sequences import completion_mask, right_pad

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
