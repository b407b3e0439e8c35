"""Pairwise preference data: read from local JSONL files, sampled from a synthetic task,
written in TRL's conversational layout.

Three layouts are recognised, one JSON object per line:

* **HH-RLHF**: ``{"chosen": T1, "rejected": T2}`` where each ``T`` is a full transcript with
  ``"\\n\\nHuman: ..."`` and ``"\\n\\nAssistant: ..."`` turns; the prompt is the shared
  transcript up to the last ``"\\n\\nAssistant:"`` and the responses are what follows it
  (stripped of surrounding whitespace, as the transcripts' spacing is not part of them).
* **prompt/chosen/rejected** (TL;DR style): ``{"prompt": P, "chosen": A, "rejected": B}``
  with strings (stripped likewise).
* **conversational** (TRL's preference layout, what :func:`write_preference_pairs`
  writes): ``{"prompt": [messages], "chosen": [{"role": "assistant", "content": A}],
  "rejected": [{"role": "assistant", "content": B}]}``, read exactly as written (a
  response's leading space, or a ``"\\n\\nAssistant:"`` inside it, is kept).

Other keys of a line (the free-text data set's ``population_preference``) are allowed:
:func:`load_preference_rows` returns them beside each pair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from ..._io import atomic_write_text
from ..._text_files import existing_file
from ...errors import PmrlhfUserError

ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"
PAIR_KEYS = ("prompt", "chosen", "rejected")
"""A line's keys that make the pair; any other key is carried beside it
(:func:`load_preference_rows`, :func:`write_preference_pairs`'s ``extra``)."""


class PreferencePair(NamedTuple):
    """One comparison: ``chosen`` was preferred to ``rejected`` as a reply to ``messages``.
    A tuple: ``messages, chosen, rejected = pair`` (what the reward model trains on)."""

    messages: tuple[dict, ...]
    chosen: str
    rejected: str


def _hh_messages(prompt: str) -> tuple[dict, ...]:
    """Split ``"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c"`` into chat messages."""
    messages, rest = [], prompt
    while rest:
        human, assistant = rest.find(HUMAN), rest.find(ASSISTANT)
        starts = [
            (i, role, marker)
            for i, role, marker in ((human, "user", HUMAN), (assistant, "assistant", ASSISTANT))
            if i >= 0
        ]
        if not starts:
            break
        i, role, marker = min(starts)
        rest = rest[i + len(marker) :]
        nxt = [j for j in (rest.find(HUMAN), rest.find(ASSISTANT)) if j >= 0]
        end = min(nxt) if nxt else len(rest)
        messages.append({"role": role, "content": rest[:end].strip()})
        rest = rest[end:]
    return tuple(messages)


def _split_hh(chosen: str, rejected: str, where: str) -> PreferencePair:
    cut = chosen.rfind(ASSISTANT)
    if cut < 0 or not rejected.startswith(chosen[: cut + len(ASSISTANT)]):
        raise PmrlhfUserError(
            f"{where}: chosen and rejected do not share a prompt ending in 'Assistant:'"
        )
    prompt = chosen[:cut]
    messages = _hh_messages(prompt)
    if not messages or messages[-1]["role"] != "user":
        raise PmrlhfUserError(f"{where}: the prompt must end with a Human turn")
    start = cut + len(ASSISTANT)
    return PreferencePair(messages, chosen[start:].strip(), rejected[start:].strip())


def load_preference_pairs(path, *, limit: int | None = None) -> list[PreferencePair]:
    """Read pairs from a JSONL file in either layout (detected per line).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PmrlhfUserError
        A folder, a file that is not UTF-8 text, an empty file, a line that is not a JSON
        object of a known layout (the message names the file and line), or an empty
        response.
    """
    return [pair for pair, _ in load_preference_rows(path, limit=limit)]


def load_preference_rows(path, *, limit: int | None = None) -> list[tuple[PreferencePair, dict]]:
    """:func:`load_preference_pairs` with each line's other keys: ``(pair, extra)`` where
    ``extra`` holds whatever the line has besides ``prompt``, ``chosen`` and ``rejected``
    (the free-text data set's ``population_preference``, say). Raises the same."""
    path = existing_file(path, name="preference file")
    try:
        return _read_rows(path, limit)
    except UnicodeDecodeError as err:
        raise PmrlhfUserError(
            f"preference file {path} is not UTF-8 text (byte {err.object[err.start]:#04x})"
        ) from None


def _read_rows(path: Path, limit: int | None) -> list[tuple[PreferencePair, dict]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise PmrlhfUserError(f"{where}: not valid JSON ({err.msg})") from None
            pair = pair_from_row(row, where)
            rows.append((pair, {k: v for k, v in row.items() if k not in PAIR_KEYS}))
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise PmrlhfUserError(f"preference file {path} holds no pairs")
    return rows


def pair_from_row(row, where: str) -> PreferencePair:
    """One comparison from a mapping in any of the three layouts (see the module docs):
    a line of a JSONL file, or a row of a ``datasets.Dataset`` (``Anthropic/hh-rlhf``'s
    rows are HH-RLHF transcripts). ``where`` names it in messages.

    Raises
    ------
    PmrlhfUserError
        Not a mapping of a known layout, or an empty response.
    """
    if isinstance(row, dict) and isinstance(row.get("prompt"), list):
        pair = _conversational(row, where)
    elif (
        not isinstance(row, dict)
        or not isinstance(row.get("chosen"), str)
        or not isinstance(row.get("rejected"), str)
    ):
        raise PmrlhfUserError(
            f"{where}: expected an object with string 'chosen' and 'rejected', or "
            "the conversational layout (lists of messages)"
        )
    elif "prompt" in row:
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise PmrlhfUserError(f"{where}: 'prompt' must be a non-empty string")
        pair = PreferencePair(
            ({"role": "user", "content": row["prompt"].strip()},),
            row["chosen"].strip(),
            row["rejected"].strip(),
        )
    else:
        pair = _split_hh(row["chosen"], row["rejected"], where)
    if not pair.chosen or not pair.rejected:
        raise PmrlhfUserError(f"{where}: empty chosen or rejected response")
    return pair


def _conversational(row: dict, where: str) -> PreferencePair:
    """A pair in TRL's conversational layout, read exactly (see the module docs)."""

    def message(m, roles) -> bool:
        return (
            isinstance(m, dict)
            and set(m) == {"role", "content"}
            and m["role"] in roles
            and isinstance(m["content"], str)
        )

    prompt = row["prompt"]
    if (
        not prompt
        or not all(message(m, ("system", "user", "assistant")) for m in prompt)
        or prompt[-1]["role"] != "user"
    ):
        raise PmrlhfUserError(
            f"{where}: 'prompt' must be a list of {{role, content}} messages ending with a "
            "user turn"
        )
    replies = []
    for key in ("chosen", "rejected"):
        value = row.get(key)
        if not isinstance(value, list) or len(value) != 1 or not message(value[0], ("assistant",)):
            raise PmrlhfUserError(f"{where}: {key!r} must be a list of one assistant message")
        replies.append(value[0]["content"])
    return PreferencePair(tuple(dict(m) for m in prompt), *replies)


def synthetic_pairs(task, n_per_prompt: int, *, rng) -> list[PreferencePair]:
    """Comparisons sampled from a synthetic task's annotator population, ``n_per_prompt``
    per prompt (:meth:`~pmrlhf.lm_experiments.data.tasks.SyntheticTask.sample_comparisons`)."""
    pairs = []
    for i, winners, losers in task.sample_comparisons(n_per_prompt, rng=rng):
        prompt = task.prompts[i]
        pairs += [
            PreferencePair(prompt.messages, prompt.candidates[w], prompt.candidates[l])
            for w, l in zip(winners, losers, strict=True)
        ]
    return pairs


def hh_transcripts(pair: PreferencePair) -> dict:
    """``{"chosen": T1, "rejected": T2}``: the pair as HH-RLHF transcripts.

    Raises
    ------
    PmrlhfUserError
        A system message (HH-RLHF has none), or a conversation that does not end with a
        user turn.
    """
    turns = {"user": HUMAN, "assistant": ASSISTANT}
    if any(m["role"] not in turns for m in pair.messages) or pair.messages[-1]["role"] != "user":
        raise PmrlhfUserError(
            "an HH-RLHF transcript holds user and assistant turns, ending with a user turn; "
            f"got roles {[m['role'] for m in pair.messages]}"
        )
    prompt = "".join(f"{turns[m['role']]} {m['content']}" for m in pair.messages)
    return {
        "chosen": f"{prompt}{ASSISTANT} {pair.chosen}",
        "rejected": f"{prompt}{ASSISTANT} {pair.rejected}",
    }


def conversational_row(pair: PreferencePair) -> dict:
    """``{"prompt", "chosen", "rejected"}``: the pair in TRL's conversational layout."""
    return {
        "prompt": [dict(m) for m in pair.messages],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }


def write_preference_pairs(path, pairs, *, extra=None) -> Path:
    """Write ``pairs`` as JSONL in TRL's conversational layout (one ``{"prompt",
    "chosen", "rejected"}`` per line), atomically; :func:`load_preference_pairs` reads them
    back exactly, and ``datasets.load_dataset("json", data_files=path)`` gives what TRL's
    preference trainers take. (HH-RLHF transcripts, :func:`hh_transcripts`, would lose a
    response's surrounding spaces and cannot hold one containing ``"\\n\\nAssistant:"``.)
    ``extra``, one mapping per pair, adds keys to each line (:func:`load_preference_rows`
    returns them)."""
    if not isinstance(path, str | Path) or not str(path).strip() or Path(path).is_dir():
        raise PmrlhfUserError(f"path must name a file, got {str(path)!r}")
    pairs = list(pairs)
    extra = [{}] * len(pairs) if extra is None else list(extra)
    if len(extra) != len(pairs) or any(
        not isinstance(e, dict) or set(e) & set(PAIR_KEYS) for e in extra
    ):
        raise PmrlhfUserError(
            f"extra must hold one mapping per pair ({len(pairs)}) without the keys "
            f"{', '.join(PAIR_KEYS)}"
        )
    lines = [
        json.dumps(conversational_row(PreferencePair(*pair)) | more) + "\n"
        for pair, more in zip(pairs, extra, strict=True)
    ]
    if not lines:
        raise PmrlhfUserError("pairs must hold at least one comparison")
    return atomic_write_text(path, "".join(lines))
