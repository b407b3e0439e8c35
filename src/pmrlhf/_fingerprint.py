"""Fingerprints of options: a stored result is reused only under the options it was made with.

The promise they keep: a rerun skips work whose inputs and options are unchanged
(``pmrlhf reproduce`` stages, ``pmrlhf lm compare`` (seed, method) runs), and ``--force`` /
``--restart`` redo it. Source code is not hashed (a docstring edit would throw away every
result); the package version is, so that a result of another release is recomputed.
"""

from __future__ import annotations

import hashlib
import json

from . import __version__


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def fingerprint(options) -> str:
    """SHA-256 of ``options`` (as JSON) and the package version."""
    text = json.dumps([__version__, options], default=_jsonable, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
