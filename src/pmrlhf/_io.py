"""Atomic writes: a result file is either the old one or the complete new one, never half.

Each write goes to a hidden temporary file beside its target, named
``.<target name>.<random>.pmrlhf-tmp``, which is renamed over the target once complete. A
process killed mid-write (SIGKILL, power loss) can leave such a file behind: it is never an
output (:func:`output_files` skips it) and :func:`remove_stale_temp_files` deletes it at the
start of the next run in that folder (under :func:`pmrlhf._lock.run_lock`).

JSON files hold strict JSON (no ``NaN`` or ``Infinity``): :func:`atomic_write_json` writes a
float that is not finite as ``null``. So ``null`` in a number's place means "not a finite
number"; a writer that knows why (no baseline, a division by zero) puts the reason in a key
beside it.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np

TEMP_SUFFIX = ".pmrlhf-tmp"
"""Suffix of the temporary files of an atomic write."""

# Names of temporary files: this module's, and those of versions before TEMP_SUFFIX
# (tempfile.mkstemp: ".<name>." + 8 random characters + ".tmp").
_TEMP_NAME = re.compile(r"^\..+\.(?:[A-Za-z0-9_]+\.pmrlhf-tmp|[a-z0-9_]{8}\.tmp)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_temp_file(path) -> bool:
    """Whether ``path`` is named like the temporary file of an atomic write."""
    return bool(_TEMP_NAME.match(Path(path).name))


def output_files(folder, pattern: str = "*") -> list[Path]:
    """Sorted files of ``folder`` matching ``pattern``, real outputs only.

    Skips hidden files (the temporary files of interrupted writes, the ``.lock`` of
    :func:`pmrlhf._lock.run_lock`) and folders; an absent folder has no outputs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))


def remove_stale_temp_files(folder) -> list[Path]:
    """Delete the temporary files that interrupted writes left directly in ``folder``.

    Call it only while holding the folder's :func:`pmrlhf._lock.run_lock`: another process
    writing there would lose its file. Returns the paths removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if is_temp_file(path) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return sorted(removed)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_ready(value):
    """``value`` with every float that is not finite replaced by ``None`` (JSON ``null``).

    Recurses into dicts, lists and tuples; numpy scalars and arrays become Python numbers and
    lists, paths become strings. Other values are returned unchanged.
    """
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def atomic_write_json(path, payload) -> Path:
    """Write ``payload`` as strict JSON; a float that is not finite is written as ``null``.

    Objects that JSON does not know and that convert to ``float`` are written as numbers
    (as before); a float in them that is not finite is still ``null``.

    Raises
    ------
    TypeError
        Something in ``payload`` that is neither JSON nor convertible to ``float``.
    """
    text = json.dumps(
        json_ready(payload), indent=2, sort_keys=False, allow_nan=False, default=_finite_float
    )
    return atomic_write_text(path, text + "\n")


def _finite_float(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{type(value).__name__} is not JSON serializable: {value!r}") from None
    return number if math.isfinite(number) else None


def atomic_write_csv(path, frame) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


def atomic_copy_file(source, target) -> Path:
    """Copy ``source`` to ``target`` atomically (``target`` is never half-written)."""
    return atomic_write_bytes(target, Path(source).read_bytes())


def atomic_save_figure(path, figure, *, pdf: bool = True, **kwargs) -> Path:
    """Save ``figure`` as the PNG ``path`` and, with ``pdf``, as a vector PDF beside it
    (same name, ``.pdf``: for a paper); each file atomically. Returns the PNG's path."""
    if not isinstance(pdf, bool):
        raise TypeError(f"pdf must be True or False, got {pdf!r}")
    path = Path(path)
    dpi = kwargs.pop("dpi", 120)
    formats = [("png", path)] + ([("pdf", path.with_suffix(".pdf"))] if pdf else [])
    for kind, target in formats:
        buffer = io.BytesIO()
        options = {"dpi": dpi} if kind == "png" else {}
        figure.savefig(buffer, format=kind, bbox_inches="tight", **options, **kwargs)
        atomic_write_bytes(target, buffer.getvalue())
    return path


def atomic_save_folder(target, save) -> Path:
    """Run ``save(tmp_folder)`` (e.g. ``save_pretrained``) in a hidden folder beside
    ``target``, then move it into place: the folder is whole or absent."""
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        save(tmp)
        # mkdtemp (and some savers) make them private; results and caches are for everyone.
        for path in (tmp, *tmp.rglob("*")):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~_umask())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
