"""The free-text preference data set with a known truth: prompts, pairs of sampled
responses labelled by :mod:`.text_population`'s population, a split by prompt, and its
files (``train.jsonl``, ``test.jsonl``, ``card.json``; docs/theory.md §6).

Each line is a pair in TRL's conversational layout (what ``pmrlhf lm pairs`` writes, read
by :func:`~pmrlhf.lm_experiments.data.preference_pairs.load_preference_pairs`) plus
``population_preference``, the exact probability that the population prefers ``chosen`` to
``rejected``, and ``group_preferences``, each group's. The sampling itself (a language
model) is :mod:`pmrlhf.lm_experiments.commands.free_text_data`'s; what is here is numpy.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np

from ..._io import atomic_write_json
from ..._yaml import load_yaml_text, read_data_file
from ...errors import PmrlhfUserError
from .preference_pairs import PreferencePair, write_preference_pairs
from .text_population import TextPopulation

FREE_TEXT_NAME = "pmrlhf/free-text"
FREE_TEXT_NAMES = (FREE_TEXT_NAME, "free_text", "free-text")
"""The names :func:`~pmrlhf.lm_experiments.data.preference_datasets.load_preference_dataset`
takes for the shipped data set."""
SPLIT_FILES = {"train": "train.jsonl", "test": "test.jsonl"}
CARD_FILE = "card.json"
PROMPTS_FILE = "prompts.yaml"
TRUTH_KEY = "population_preference"


def shipped_folder() -> Path:
    """The folder of the shipped data set (inside the installed package)."""
    return Path(str(resources.files(__package__).joinpath("builtin_datasets", "free_text")))


def read_prompts(path=None) -> list[str]:
    """The prompts of a YAML/JSON file ``{prompts: [question, ...]}``: distinct non-empty
    strings, at least 2. ``None``: the shipped ``builtin_datasets/free_text/prompts.yaml``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PmrlhfUserError
        An unreadable file, or content other than a list of at least 2 distinct non-empty
        strings under ``prompts``.
    """
    if path is None:
        source = f"shipped {PROMPTS_FILE}"
        data = load_yaml_text((shipped_folder() / PROMPTS_FILE).read_text(), source=source)
    else:
        source = f"prompts file {path}"
        data = read_data_file(path, name="prompts file")
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if (
        not isinstance(prompts, list)
        or len(prompts) < 2
        or not all(isinstance(p, str) and p.strip() for p in prompts)
    ):
        raise PmrlhfUserError(f"{source}: 'prompts' must be a list of at least 2 non-empty strings")
    prompts = [p.strip() for p in prompts]
    if len(set(prompts)) != len(prompts):
        twice = next(p for p in prompts if prompts.count(p) > 1)
        raise PmrlhfUserError(f"{source}: prompt {twice!r} appears twice")
    return prompts


def prompt_messages(prompt: str) -> tuple[dict, ...]:
    """A prompt as the one user message a pair's ``prompt`` holds."""
    return ({"role": "user", "content": prompt},)


SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


UNFINISHED = ("cut", "keep", "drop")
"""What becomes of a response the token limit cut off: cut back to its last full sentence,
kept as it is, or dropped."""


def clean_response(text: str, ended: bool, unfinished: str = "cut") -> str:
    """A sampled response as the data set stores it: stripped of surrounding whitespace.
    One the token limit cut off (``ended`` false) is, by ``unfinished``: ``"cut"`` back to
    the end of its last full sentence (``.``, ``!`` or ``?``, closing quotes and brackets
    kept), ``""`` if it has none; ``"keep"`` as it is; ``"drop"`` replaced by ``""``. A
    small model sampled at temperature 1 seldom ends within 48 tokens; cutting keeps whole
    sentences, of varied length. (``""`` is then dropped.)"""
    if not ended and unfinished == "drop":
        return ""
    if not ended and unfinished == "cut":
        ends = [m.end() for m in SENTENCE_END.finditer(text)]
        text = text[: ends[-1]] if ends else ""
    return text.strip()


def distinct_responses(texts) -> tuple[list[str], int, int]:
    """``(kept, empty, repeated)``: the stripped non-empty texts in order, each once, and
    how many were dropped as empty and as repeats."""
    kept, empty, repeated = [], 0, 0
    for text in texts:
        text = text.strip()
        if not text:
            empty += 1
        elif text in kept:
            repeated += 1
        else:
            kept.append(text)
    return kept, empty, repeated


def label_pairs(
    prompt: str, responses: list[str], population: TextPopulation, rng: np.random.Generator
) -> list[tuple[PreferencePair, dict]]:
    """Every pair ``i < j`` of ``responses``, labelled by one draw from the population:
    ``i`` is chosen with probability ``P(y_i > y_j)`` (:meth:`TextPopulation.
    preference_probability`). Each pair comes with ``{population_preference,
    group_preferences}``, the probabilities that ``chosen`` beats ``rejected``."""
    i, j = np.triu_indices(len(responses), k=1)
    if not i.size:
        return []
    first = [responses[k] for k in i]
    second = [responses[k] for k in j]
    groups = population.group_probabilities(first, second)  # (G, N)
    p = population.weights @ groups  # (N,)
    first_wins = rng.random(p.size) < p
    rows = []
    for n in range(p.size):
        win = first_wins[n]
        chosen, rejected = (first[n], second[n]) if win else (second[n], first[n])
        extra = {
            TRUTH_KEY: float(p[n] if win else 1 - p[n]),
            "group_preferences": {
                g.name: float(groups[k, n] if win else 1 - groups[k, n])
                for k, g in enumerate(population.groups)
            },
        }
        rows.append((PreferencePair(prompt_messages(prompt), chosen, rejected), extra))
    return rows


def split_prompts(count: int, test_share: float, rng: np.random.Generator):
    """``(train, test)``: sorted prompt indices, ``round(test_share * count)`` of them (at
    least 1, at most ``count - 1``) drawn at random for the test split."""
    if count < 2:
        raise PmrlhfUserError(f"a train and a test split need at least 2 prompts, got {count}")
    held = min(max(round(test_share * count), 1), count - 1)
    order = rng.permutation(count)
    return sorted(order[held:].tolist()), sorted(order[:held].tolist())


def write_free_text(out: Path, splits: dict, card: dict) -> list[Path]:
    """Write ``splits`` (``{"train": [(pair, extra), ...], "test": ...}``) as
    ``train.jsonl`` and ``test.jsonl`` and ``card`` as ``card.json``, each atomically."""
    paths = []
    for split, rows in splits.items():
        pairs, extra = [pair for pair, _ in rows], [more for _, more in rows]
        paths.append(write_preference_pairs(out / SPLIT_FILES[split], pairs, extra=extra))
    paths.append(atomic_write_json(out / CARD_FILE, card))
    return paths
