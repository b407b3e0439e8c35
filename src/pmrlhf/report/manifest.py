"""``manifest.json`` of ``pmrlhf reproduce``: what each stage ran with and wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..errors import PmrlhfUserError


def load_manifest(path, *, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Read ``manifest.json``; an absent one is empty (``{"stages": {}}``).

    A damaged one (not JSON, truncated, not a mapping with a ``stages`` mapping of
    mappings) is replaced by an empty one when ``force`` is set.

    Raises
    ------
    PmrlhfUserError
        A damaged manifest without ``force``; the message names the file and ``--force``.
    """
    path = Path(path)
    if not path.exists():
        return {"stages": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        problem = _manifest_problem(manifest)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = str(error).splitlines()[0]
    if problem is None:
        return manifest
    if force:
        log(f"{path} is damaged ({problem}); --force: starting a new manifest")
        return {"stages": {}}
    raise PmrlhfUserError(
        f"{path} is damaged ({problem}); rerun with --force to replace it and rerun every stage"
    )


def _manifest_problem(manifest) -> str | None:
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    stages = manifest.setdefault("stages", {})
    if not isinstance(stages, dict):
        return f"'stages' is a JSON {type(stages).__name__}, not an object"
    for name, entry in stages.items():
        if not isinstance(entry, dict):
            return f"stage {name!r} is a JSON {type(entry).__name__}, not an object"
        if not isinstance(entry.get("outputs", []), list):
            return f"the outputs of stage {name!r} are not a list"
    return None
