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


def git_state() -> dict:
    """The source the results came from: ``{"version", "commit", "dirty"}``, where ``commit``
    is the git commit of the checkout that holds this package (``None`` for an installed
    copy outside git) and ``dirty`` whether tracked files differ from it."""
    import subprocess

    here = Path(__file__).resolve().parent
    state = {"version": __version__, "commit": None, "dirty": None}
    try:
        run = dict(cwd=here, capture_output=True, text=True, timeout=10, check=True)
        state["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "-uno"], **run).stdout
        state["dirty"] = bool(changed.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return state
