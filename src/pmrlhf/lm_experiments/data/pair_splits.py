"""A preference data set with a training and a test split, for ``pmrlhf lm paper``.

Two sources:

* a **folder** holding ``train.jsonl`` and ``test.jsonl``, one pair a line in any layout
  :func:`~pmrlhf.lm_experiments.data.preference_pairs.load_preference_pairs` reads (TRL's
  conversational preference layout: ``prompt``, ``chosen``, ``rejected``), optionally with
  the float ``population_preference`` on every line of a file: the known probability that
  the population prefers ``chosen`` to ``rejected``. Read strictly: a malformed line is
  refused, naming its file and line.
* a **hub name** (``Anthropic/hh-rlhf``): ``datasets.load_dataset(name)``'s ``train`` and
  ``test`` splits, rows of any of those layouts (HH-RLHF's transcripts); rows that are not
  a pair (HH-RLHF holds a few whose two transcripts do not share a prompt, or with an empty
  response) are skipped and counted.

Free of torch; ``datasets`` is imported for a hub name only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import PmrlhfUserError
from .preference_pairs import PreferencePair, load_preference_pairs, pair_from_row

SPLITS = ("train", "test")
POPULATION = "population_preference"
"""The optional column: P(population prefers chosen to rejected), in [0, 1]."""


@dataclass
class PairSplits:
    """``train`` and ``test`` pairs; ``population[split]`` the known preference of each pair
    (None where the data hold none); ``identity`` what the data's fingerprint is made of."""

    train: list[PreferencePair]
    test: list[PreferencePair]
    population: dict[str, list[float] | None] = field(default_factory=dict)
    identity: dict = field(default_factory=dict)
    skipped: int = 0

    def split(self, name: str) -> list[PreferencePair]:
        return self.train if name == "train" else self.test


def is_hub_name(name: str) -> bool:
    """``org/name`` that is not a local path."""
    return name.count("/") == 1 and not name.startswith((".", "/")) and not Path(name).exists()


def check_data_source(name: str) -> str:
    """``name`` if it is a folder or a hub name; a one-line refusal otherwise."""
    if Path(name).is_dir():
        for split in SPLITS:
            if not (Path(name) / f"{split}.jsonl").is_file():
                raise PmrlhfUserError(f"data folder {name} has no {split}.jsonl")
        return name
    if is_hub_name(name):
        return name
    raise PmrlhfUserError(
        f"data {name!r} is neither a folder with train.jsonl and test.jsonl nor a hub data "
        "set name such as Anthropic/hh-rlhf"
    )


def load_pairs_dataset(
    name_or_path: str, *, train_limit: int | None = None, test_limit: int | None = None
) -> PairSplits:
    """The two splits of a folder or a hub data set (module docs), each cut to its first
    ``*_limit`` pairs.

    Raises
    ------
    PmrlhfUserError
        Not a folder with both files nor a hub name; a malformed line or population value
        (a folder); a split without pairs.
    FileNotFoundError
        A folder's file vanished while read.
    """
    name = check_data_source(name_or_path)
    limits = {"train": train_limit, "test": test_limit}
    if not Path(name).is_dir():
        return _hub_pairs(name, limits)
    folder = Path(name)
    splits, population, digest = {}, {}, hashlib.sha256()
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        splits[split] = load_preference_pairs(path, limit=limits[split])
        population[split] = _population(path, len(splits[split]))
        digest.update(path.read_bytes())
    identity = {"sha256": digest.hexdigest(), "limits": limits}  # the content, not the place
    return PairSplits(splits["train"], splits["test"], population, identity)


def _population(path: Path, count: int) -> list[float] | None:
    """The ``population_preference`` of the first ``count`` pairs of ``path``: on every line
    or on none."""
    values = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if len(values) >= count:
                break
            if not line.strip():
                continue
            value = json.loads(line).get(POPULATION)  # a valid object: the pairs were read
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 <= value <= 1
            ):
                raise PmrlhfUserError(
                    f"{path}:{number}: {POPULATION} must be a number in [0, 1], got {value!r}"
                )
            values.append(value)
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        line = present.index(False) + 1
        raise PmrlhfUserError(
            f"{path}: {POPULATION} is on some pairs but not on pair {line}: give it on every "
            "pair or on none"
        )
    return [float(v) for v in values]


def _hub_pairs(name: str, limits: dict) -> PairSplits:
    """HH-RLHF (or another preference data set) by hub name; rows that are no pair skipped."""
    import datasets

    try:
        loaded = datasets.load_dataset(name)
    except (OSError, ValueError) as err:  # not on the hub, no network, no access
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PmrlhfUserError(
            f"data {name!r} is no local folder, and loading it from the hub failed: {first}"
        ) from err
    splits, population, skipped = {}, {}, 0
    for split in SPLITS:
        if split not in loaded:
            raise PmrlhfUserError(f"hub data set {name} has no {split!r} split")
        pairs, known = [], []
        for i, row in enumerate(loaded[split]):
            if limits[split] is not None and len(pairs) >= limits[split]:
                break
            try:
                pairs.append(pair_from_row(dict(row), f"{name}[{split}][{i}]"))
            except PmrlhfUserError:
                skipped += 1
                continue
            known.append(row.get(POPULATION))
        if not pairs:
            raise PmrlhfUserError(f"hub data set {name}: no pairs in its {split!r} split")
        splits[split] = pairs
        population[split] = None if None in known else [float(v) for v in known]
    identity = {"hub": name, "limits": limits}
    return PairSplits(splits["train"], splits["test"], population, identity, skipped)
