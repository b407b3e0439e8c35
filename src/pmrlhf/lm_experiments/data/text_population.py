"""An annotator population whose utilities are stated functions of a response's text: the
known truth of the free-text preference data set (docs/theory.md §6, "A free-text
population").

Each group ``g`` scores a response ``y`` by

    u_g(y) = reason_g * R(y) + per_word_g * W(y),

where ``W(y)`` is the number of whitespace-separated words of ``y`` and ``R(y)`` is 1 when
``y`` contains a reasoning marker (:data:`REASON_MARKERS`: a reason such as ``because``,
``since``, ``therefore``, or a weighing of the options such as ``depends``, ``however``,
``both``; whole words, any case) and 0 otherwise. A random annotator belongs to group ``g`` with
probability ``w_g`` and judges a pair by BTL with ``u_g`` (docs/theory.md §1), so the
population prefers ``a`` to ``b`` with probability exactly

    P(a > b) = sum_g w_g * sigmoid(u_g(a) - u_g(b)),

a mixture of BTL models (docs/theory.md §6), not itself BTL. :data:`FREE_TEXT_POPULATION`
is the shipped data set's: a majority ``brief`` (0.6) that wants short answers and a
minority ``reasons`` (0.4) that wants an answer that gives a reason or weighs the options
and minds length only mildly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..._validation import check_real
from ...errors import PmrlhfTypeError, PmrlhfUserError

REASON_MARKERS = (
    # giving a reason
    "because",
    "since",
    "so that",
    "therefore",
    "as a result",
    "the reason",
    "due to",
    # weighing the options
    "depends",
    "depending on",
    "however",
    "on the other hand",
    "both",
    "whether",
    "while",
)
"""What counts as reasoning: giving a reason or weighing the options, any of these as whole
words, in any case. SmolLM2-135M's sentences almost never say *because* or *since* (none
of the 235 responses of the shipped data set does); about half weigh the options."""

WEIGHT_ATOL = 1e-9


@dataclass(frozen=True)
class TextGroup:
    """One annotator group: its ``name``, its share ``weight`` of the population, and its
    utility ``reason * R(y) + per_word * W(y)`` (see the module docs)."""

    name: str
    weight: float
    reason: float
    per_word: float

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise PmrlhfUserError(f"name must be a non-empty string, got {self.name!r}")
        where = f"group {self.name!r}"
        weight = check_real(self.weight, f"{where}: weight")
        if not 0 < weight <= 1:
            raise PmrlhfUserError(f"{where}: weight must lie in (0, 1], got {weight}")
        for field in ("reason", "per_word"):
            check_real(getattr(self, field), f"{where}: {field}")


@dataclass(frozen=True)
class TextPopulation:
    """Groups of annotators (:class:`TextGroup`, weights summing to 1) and the reason
    ``markers`` they look for. Pure functions of the texts; the formulas are in the module
    docs.

    Raises
    ------
    PmrlhfUserError
        No groups, an item that is not a :class:`TextGroup` (a ``PmrlhfTypeError``), two
        groups of one name, weights that do not sum to 1, no markers or an empty one.
    """

    groups: tuple[TextGroup, ...]
    markers: tuple[str, ...] = REASON_MARKERS

    def __post_init__(self):
        if not isinstance(self.groups, tuple) or not self.groups:
            raise PmrlhfUserError(f"groups must be a non-empty tuple, got {self.groups!r}")
        for i, group in enumerate(self.groups):
            if not isinstance(group, TextGroup):
                raise PmrlhfTypeError(f"groups[{i}] must be a TextGroup, got {group!r}")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise PmrlhfUserError(f"groups must have distinct names, got {names}")
        total = math.fsum(g.weight for g in self.groups)
        if abs(total - 1) > WEIGHT_ATOL:
            raise PmrlhfUserError(f"groups: weights must sum to 1, got {total!r}")
        if (
            not isinstance(self.markers, tuple)
            or not self.markers
            or not all(isinstance(m, str) and m.strip() for m in self.markers)
        ):
            raise PmrlhfUserError(
                f"markers must be a non-empty tuple of non-empty strings, got {self.markers!r}"
            )

    @property
    def weights(self) -> np.ndarray:
        """(G,) the groups' weights."""
        return np.array([g.weight for g in self.groups])

    def features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(W, R)``: each text's word count and reason indicator, (N,) each."""
        texts = _check_texts(texts, "texts")
        pattern = re.compile(
            r"\b(?:"
            + "|".join(r"\s+".join(map(re.escape, m.lower().split())) for m in self.markers)
            + r")\b"
        )
        count = np.array([len(t.split()) for t in texts], dtype=float)
        reason = np.array([bool(pattern.search(t.lower())) for t in texts], dtype=float)
        return count, reason

    def utilities(self, texts: Sequence[str]) -> np.ndarray:
        """(G, N): ``u_g`` of each text."""
        count, reason = self.features(texts)
        coef = np.array([[g.reason, g.per_word] for g in self.groups])  # (G, 2)
        return coef[:, :1] * reason + coef[:, 1:] * count

    def group_probabilities(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(G, N): each group's probability ``sigmoid(u_g(a_i) - u_g(b_i))`` that ``a_i``
        beats ``b_i``."""
        a, b = _check_texts(a, "a"), _check_texts(b, "b")
        if len(a) != len(b):
            raise PmrlhfUserError(f"a and b must have equal lengths, got {len(a)} and {len(b)}")
        return sigmoid(self.utilities(a) - self.utilities(b))

    def preference_probability(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(N,): the population's probability ``sum_g w_g sigmoid(u_g(a_i) - u_g(b_i))``
        that ``a_i`` is preferred to ``b_i``; in [0, 1], and ``1 - p`` with ``a``, ``b``
        swapped."""
        return self.weights @ self.group_probabilities(a, b)

    def disagreement(self, a: Sequence[str], b: Sequence[str]) -> float:
        """The share of pairs on which the largest group and another group prefer different
        responses (each by its own utility; a tie in either counts as no disagreement)."""
        gaps = np.sign(self.utilities(a) - self.utilities(b))  # (G, N)
        major = gaps[int(np.argmax(self.weights))]
        differ = (gaps * major < 0).any(axis=0)
        return float(differ.mean()) if differ.size else 0.0

    def to_dict(self) -> dict:
        """The population as plain data (what ``card.json`` stores), with its formula."""
        return {
            "formula": "P(a > b) = sum_g weight_g * sigmoid(u_g(a) - u_g(b)), "
            "u_g(y) = reason_g * R(y) + per_word_g * W(y); W: whitespace-separated words, "
            "R: 1 if y contains a marker (whole words, any case), else 0",
            "groups": [
                {"name": g.name, "weight": g.weight, "reason": g.reason, "per_word": g.per_word}
                for g in self.groups
            ],
            "markers": list(self.markers),
        }

    @classmethod
    def from_dict(cls, data: dict) -> TextPopulation:
        """The inverse of :meth:`to_dict` (``formula`` is ignored)."""
        if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
            raise PmrlhfUserError("population must be a mapping with a list of groups")
        groups = []
        for i, group in enumerate(data["groups"]):
            keys = ("name", "weight", "reason", "per_word")
            if not isinstance(group, dict) or set(group) != set(keys):
                raise PmrlhfUserError(f"population.groups[{i}] must have keys {', '.join(keys)}")
            groups.append(TextGroup(**group))
        markers = data.get("markers", REASON_MARKERS)
        return cls(tuple(groups), tuple(markers) if isinstance(markers, list) else markers)


def sigmoid(x) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow, elementwise."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, dtype=float)))


def _check_texts(texts, name: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise PmrlhfTypeError(f"{name} must be a sequence of strings, got {type(texts).__name__}")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise PmrlhfTypeError(f"{name}[{bad[0]}] must be a string, got {texts[bad[0]]!r}")
    return list(texts)


FREE_TEXT_POPULATION = TextPopulation(
    (
        TextGroup("brief", 0.6, reason=0.0, per_word=-0.1),
        TextGroup("reasons", 0.4, reason=2.0, per_word=-0.02),
    )
)
"""The shipped free-text data set's population: ``brief`` loses 1 logit per 10 words;
``reasons`` gains 2 logits for a reason and loses 0.2 per 10 words, so it prefers the longer
of two answers whenever only that one gives a reason (and they differ by under 100 words)."""
