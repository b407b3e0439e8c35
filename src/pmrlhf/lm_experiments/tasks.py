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

Pairwise comparisons are sampled from the population (``sample_comparisons``); the oracle
reward of a candidate is the BTL logit of its population first-choice probability, so the
PM target ``softmax(r)`` is exactly the population's first-choice distribution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from ..simulate import Population, sample_comparisons

BUILTIN_TASKS = ("three_answers", "two_answers", "multi_group")
DEFAULT_TASK = "three_answers"


@dataclass(frozen=True)
class TaskPrompt:
    messages: tuple[dict, ...]
    candidates: tuple[str, ...]
    population: Population

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
        """Per prompt, ``r(c) = log P_first(c)`` (BTL logits; mean-free up to a constant)."""
        return [np.log(p.target) for p in self.prompts]

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
                }
                for p in self.prompts
            ],
        }


def _parse(data, source: str) -> SyntheticTask:
    if not isinstance(data, dict):
        raise ValueError(f"task {source}: expected a mapping at the top level")
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise ValueError(f"task {source}: 'prompts' must be a non-empty list")
    parsed = []
    for i, item in enumerate(prompts):
        where = f"task {source}, prompt {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping")
        messages, candidates = item.get("messages"), item.get("candidates")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
        ):
            raise ValueError(f"{where}: 'messages' must be a list of {{role, content}} mappings")
        if (
            not isinstance(candidates, list)
            or len(candidates) < 2
            or not all(isinstance(c, str) and c.strip() for c in candidates)
        ):
            raise ValueError(f"{where}: 'candidates' must list at least 2 non-empty strings")
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"{where}: 'candidates' has duplicates")
        try:
            population = Population.from_dict(item.get("population"))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where}: population: {err}") from None
        if population.n_items != len(candidates):
            raise ValueError(
                f"{where}: population utilities cover {population.n_items} items but there are "
                f"{len(candidates)} candidates"
            )
        parsed.append(TaskPrompt(tuple(messages), tuple(candidates), population))
    margin = data.get("off_candidate_margin", 3.0)
    if not isinstance(margin, int | float) or margin <= 0:
        raise ValueError(f"task {source}: off_candidate_margin must be a positive number")
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
    ValueError
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
        raise ValueError(f"unknown task {name!r}: use {', '.join(BUILTIN_TASKS)} or a file path")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(
            f"task file {path} could not be parsed: {str(err).splitlines()[0]}"
        ) from None
    return _parse(data, str(path))
