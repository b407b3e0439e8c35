"""Fingerprints of options plus source code: a cached result is stale when either changes.

Used by ``pmrlhf reproduce`` (one per stage) and by ``run_compare`` (one per method), so
that a resumed run never reuses a result computed with other options or other code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def fingerprint(options, *, layers: tuple[str, ...] = ()) -> str:
    """SHA-256 of ``options`` (JSON) and of the ``.py``/``.yaml``/``.json`` files of the
    subpackages ``layers`` of pmrlhf (paths and contents, in sorted order)."""
    digest = hashlib.sha256(json.dumps(options, default=_jsonable).encode())
    for layer in layers:
        for path in sorted((PACKAGE_ROOT / layer).rglob("*")):
            if path.suffix in (".py", ".yaml", ".json") and path.is_file():
                digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()
