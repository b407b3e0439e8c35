"""Fingerprints of options: a stored result is reused only under the options it was made with.

The promise they keep: a rerun skips work whose inputs and options are unchanged
(``pmrlhf reproduce`` stages, ``pmrlhf lm compare`` (seed, method) runs), and ``--force`` /
``--restart`` redo it. Source code is not hashed (a docstring edit would throw away every
result); the package version is, so that a result of another release is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import __version__
from ._io import atomic_write_json


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def fingerprint(options) -> str:
    """SHA-256 of ``options`` (as JSON) and the package version."""
    text = json.dumps([__version__, options], default=_jsonable, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def store(path, key: str, **result) -> dict:
    """Write ``result`` to ``path`` (JSON, atomically) under fingerprint ``key``; return it."""
    atomic_write_json(path, {"fingerprint": key, **result})
    return result


def load_stored(path, key: str) -> dict | None:
    """The result :func:`store` wrote at ``path`` if it was made under fingerprint ``key``;
    ``None`` if it was not, or is absent or cut short (then it is computed again)."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != key:
        return None
    return saved
