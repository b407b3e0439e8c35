"""Preference data sets by name or path, split by split: the shipped free-text data set
(:mod:`.free_text`), a folder of ``train.jsonl`` / ``test.jsonl``, one JSONL file, or a
Hugging Face hub data set (``Anthropic/hh-rlhf``, read with ``datasets.load_dataset`` on a
machine that reaches the hub). Every row goes through the one parser of
:func:`~pmrlhf.lm_experiments.data.preference_pairs.pair_from_row` (HH-RLHF transcripts,
prompt/chosen/rejected strings or TRL's conversational layout)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..._validation import check_count, check_probability
from ...errors import PmrlhfUserError
from .free_text import (
    CARD_FILE,
    FREE_TEXT_NAME,
    FREE_TEXT_NAMES,
    SPLIT_FILES,
    TRUTH_KEY,
    shipped_folder,
)
from .preference_pairs import (
    PreferencePair,
    conversational_row,
    load_preference_rows,
    pair_from_row,
)

KNOWN = (
    f"{FREE_TEXT_NAME} (shipped with pmrlhf; also {', '.join(FREE_TEXT_NAMES[1:])}), a folder "
    f"holding {' and/or '.join(SPLIT_FILES.values())}, a JSONL file, or a hub id such as "
    "Anthropic/hh-rlhf"
)


@dataclass(frozen=True)
class PreferenceDataset:
    """Splits of comparisons: ``splits[name]`` is a tuple of
    :class:`~pmrlhf.lm_experiments.data.preference_pairs.PreferencePair` (what the reward
    model and SFT take); ``truth[name]``, where the data has it (the free-text data set),
    the population's exact probability that each pair's ``chosen`` beats its ``rejected``;
    ``card``, the data set's ``card.json`` if it has one; ``skipped``, per split, the rows
    of a hub data set that are no pair (left out). ``to_dataset(name)`` gives the
    ``datasets.Dataset`` in TRL's conversational layout that TRL's preference trainers
    take."""

    name: str
    splits: dict[str, tuple[PreferencePair, ...]]
    truth: dict[str, tuple[float, ...]] = field(default_factory=dict)
    card: dict | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # hub rows that are no pair

    def digest(self) -> str:
        """A SHA-256 of every split's rows (pairs and truth): what a result made from the
        data is fingerprinted by, wherever the data came from."""
        text = json.dumps({split: self.rows(split) for split in self.splits}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def __getitem__(self, split: str) -> tuple[PreferencePair, ...]:
        if split not in self.splits:
            raise PmrlhfUserError(
                f"split must be one of {', '.join(self.splits)} of {self.name}, got {split!r}"
            )
        return self.splits[split]

    def rows(self, split: str) -> list[dict]:
        """One split as dicts in TRL's conversational layout, with ``population_preference``
        where the data has it."""
        truth = self.truth.get(split)
        rows = [conversational_row(pair) for pair in self[split]]
        if truth is not None:
            rows = [row | {TRUTH_KEY: p} for row, p in zip(rows, truth, strict=True)]
        return rows

    def to_dataset(self, split: str):
        """One split as a ``datasets.Dataset`` (needs the ``datasets`` package)."""
        from datasets import Dataset

        return Dataset.from_list(self.rows(split))

    def to_dataset_dict(self):
        """Every split, as a ``datasets.DatasetDict``."""
        from datasets import DatasetDict

        return DatasetDict({split: self.to_dataset(split) for split in self.splits})


def load_preference_dataset(name_or_path, *, limit: int | None = None) -> PreferenceDataset:
    """A preference data set by name (:data:`~.free_text.FREE_TEXT_NAMES`, or a hub id),
    folder (its ``train.jsonl`` and/or ``test.jsonl``, and ``card.json`` if there) or JSONL
    file (one split, ``train``); ``limit`` keeps the first pairs of each split.

    Raises
    ------
    PmrlhfUserError
        An unknown name (one line listing what is understood), a folder without split
        files, a bad line or row (file and line, or split and row, named), a
        ``population_preference`` that is not a probability or is on some rows only, a hub
        data set that cannot be loaded (no ``datasets`` package, no network, no such id).
    FileNotFoundError
        A ``.jsonl`` path that does not exist.
    """
    if limit is not None:
        check_count(limit, "limit")
    if not isinstance(name_or_path, str | Path) or not str(name_or_path).strip():
        raise PmrlhfUserError(f"preference data set must be one of: {KNOWN}; got {name_or_path!r}")
    name = str(name_or_path)
    if name in FREE_TEXT_NAMES:
        return _from_folder(shipped_folder(), limit, name=FREE_TEXT_NAME)
    path = Path(name)
    if path.is_dir():
        return _from_folder(path, limit, name=name)
    if path.exists():
        return _from_rows(name, {"train": load_preference_rows(path, limit=limit)}, None)
    if path.suffix == ".jsonl":
        raise FileNotFoundError(f"preference file {path} does not exist")
    if name.count("/") == 1 and not name.startswith((".", "/")) and all(name.split("/")):
        return _from_hub(name, limit)
    raise PmrlhfUserError(f"unknown preference data set {name!r}: use {KNOWN}")


def _from_folder(folder: Path, limit, *, name: str) -> PreferenceDataset:
    found = {s: folder / f for s, f in SPLIT_FILES.items() if (folder / f).is_file()}
    if not found:
        raise PmrlhfUserError(
            f"folder {folder} holds no {' or '.join(SPLIT_FILES.values())}: use {KNOWN}"
        )
    card = None
    if (folder / CARD_FILE).is_file():
        try:
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PmrlhfUserError(f"{folder / CARD_FILE} is not valid JSON ({err})") from None
    splits = {s: load_preference_rows(p, limit=limit) for s, p in found.items()}
    return _from_rows(name, splits, card)


def _from_rows(name: str, splits: dict, card) -> PreferenceDataset:
    """Pairs and their truth column, checked: on every row of a split or on none."""
    pairs, truth = {}, {}
    for split, rows in splits.items():
        pairs[split] = tuple(pair for pair, _ in rows)
        has = [TRUTH_KEY in extra for _, extra in rows]
        if any(has) and not all(has):
            raise PmrlhfUserError(
                f"{name} [{split}]: {TRUTH_KEY} is on {sum(has)} of {len(has)} rows; it must "
                "be on every row or on none"
            )
        if all(has):
            truth[split] = tuple(
                check_probability(extra[TRUTH_KEY], f"{name} [{split}] row {i + 1}: {TRUTH_KEY}")
                for i, (_, extra) in enumerate(rows)
            )
    return PreferenceDataset(name, pairs, truth, card)


def _from_hub(name: str, limit) -> PreferenceDataset:
    try:
        import datasets
    except ImportError:
        raise PmrlhfUserError(
            f"{name}: reading a hub data set needs the datasets package (pip install datasets)"
        ) from None
    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:  # the hub's many failures (no network, no such id, ...): one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise PmrlhfUserError(
            f"could not load {name!r} from the hub: {type(err).__name__}: {first}"
        ) from None
    splits, skipped = {}, {}
    for split, table in loaded.items():
        rows, skipped[split] = [], 0
        for i, row in enumerate(table):
            if limit is not None and len(rows) >= limit:
                break
            try:
                pair = pair_from_row(dict(row), f"{name} [{split}] row {i + 1}")
            except PmrlhfUserError:  # HH-RLHF holds a few rows whose transcripts share no
                skipped[split] += 1  # prompt or end empty: not a pair, counted
                continue
            rows.append((pair, {k: v for k, v in row.items() if k == TRUTH_KEY}))
        if not rows:
            raise PmrlhfUserError(f"hub data set {name}: no pairs in its {split!r} split")
        splits[split] = rows
    return replace(_from_rows(name, splits, None), skipped=skipped)
