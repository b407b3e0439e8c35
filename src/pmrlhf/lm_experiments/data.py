"""Real pairwise preference data from local JSONL files (or ``datasets`` when online).

Two layouts are recognised, one JSON object per line:

* **HH-RLHF**: ``{"chosen": T1, "rejected": T2}`` where each ``T`` is a full transcript with
  ``"\\n\\nHuman: ..."`` and ``"\\n\\nAssistant: ..."`` turns; the prompt is the shared
  transcript up to the last ``"\\n\\nAssistant:"`` and the responses are what follows it.
* **prompt/chosen/rejected** (TL;DR style): ``{"prompt": P, "chosen": A, "rejected": B}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ASSISTANT = "\n\nAssistant:"
HUMAN = "\n\nHuman:"


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: ``chosen`` was preferred to ``rejected`` as a reply to ``messages``."""

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
        raise ValueError(
            f"{where}: chosen and rejected do not share a prompt ending in 'Assistant:'"
        )
    prompt = chosen[:cut]
    messages = _hh_messages(prompt)
    if not messages or messages[-1]["role"] != "user":
        raise ValueError(f"{where}: the prompt must end with a Human turn")
    start = cut + len(ASSISTANT)
    return PreferencePair(messages, chosen[start:].strip(), rejected[start:].strip())


def load_preference_pairs(path, *, limit: int | None = None) -> list[PreferencePair]:
    """Read pairs from a JSONL file in either layout (detected per line).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        An empty file, a line that is not a JSON object of a known layout (the message
        names the file and line), or an empty response.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"preference file {path} does not exist")
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("chosen"), str)
                or not isinstance(row.get("rejected"), str)
            ):
                raise ValueError(f"{where}: expected an object with string 'chosen' and 'rejected'")
            if "prompt" in row:
                if not isinstance(row["prompt"], str) or not row["prompt"].strip():
                    raise ValueError(f"{where}: 'prompt' must be a non-empty string")
                pair = PreferencePair(
                    ({"role": "user", "content": row["prompt"].strip()},),
                    row["chosen"].strip(),
                    row["rejected"].strip(),
                )
            else:
                pair = _split_hh(row["chosen"], row["rejected"], where)
            if not pair.chosen or not pair.rejected:
                raise ValueError(f"{where}: empty chosen or rejected response")
            pairs.append(pair)
            if limit is not None and len(pairs) >= limit:
                break
    if not pairs:
        raise ValueError(f"preference file {path} holds no pairs")
    return pairs
