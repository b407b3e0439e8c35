"""The training and test pairs of ``pmrlhf lm paper``, from any preference data set
:func:`~pmrlhf.lm_experiments.data.preference_datasets.load_preference_dataset` reads: the
shipped free-text data set by name (``pmrlhf/free-text``), a folder holding ``train.jsonl``
and ``test.jsonl`` (TRL's conversational layout, optionally with
``population_preference`` on every line: the known probability that the population prefers
``chosen`` to ``rejected``), or a hub name (``Anthropic/hh-rlhf``, whose rows that are no
pair are skipped and counted). Free of torch; ``datasets`` is imported for a hub name only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import PmrlhfUserError
from .preference_datasets import load_preference_dataset
from .preference_pairs import PreferencePair

SPLITS = ("train", "test")


@dataclass
class PairSplits:
    """``train`` and ``test`` pairs; ``population[split]`` the known preference of each pair
    (None where the data hold none); ``identity`` what the data's fingerprint is made of
    (their content and the limits, not where they were read from); ``skipped``, the hub rows
    that are no pair."""

    train: list[PreferencePair]
    test: list[PreferencePair]
    population: dict[str, list[float] | None] = field(default_factory=dict)
    identity: dict = field(default_factory=dict)
    skipped: int = 0


def load_pairs_dataset(
    name_or_path: str, *, train_limit: int | None = None, test_limit: int | None = None
) -> PairSplits:
    """The two splits of a preference data set (module docs), each cut to its first
    ``*_limit`` pairs.

    Raises
    ------
    PmrlhfUserError
        An unknown name, a malformed line or population value, a data set without a
        ``train`` or ``test`` split, a hub data set that cannot be loaded.
    FileNotFoundError
        A ``.jsonl`` path that does not exist.
    """
    limits = {"train": train_limit, "test": test_limit}
    largest = None if None in limits.values() else max(limits.values())
    dataset = load_preference_dataset(name_or_path, limit=largest)
    missing = [split for split in SPLITS if split not in dataset.splits]
    if missing:
        raise PmrlhfUserError(
            f"data {name_or_path!r} has no {' and no '.join(missing)} split: lm paper needs "
            "train.jsonl and test.jsonl"
        )
    pairs = {split: list(dataset[split][: limits[split]]) for split in SPLITS}
    population = {
        split: None
        if split not in dataset.truth
        else list(dataset.truth[split][: len(pairs[split])])
        for split in SPLITS
    }
    identity = {"sha256": dataset.digest(), "limits": limits}
    skipped = sum(dataset.skipped.values())
    return PairSplits(pairs["train"], pairs["test"], population, identity, skipped)
