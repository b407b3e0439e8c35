"""Input checks shared by every public function.

Each check names the argument and the bad value in a
:class:`~pmrlhf.errors.PmrlhfUserError` (a ``ValueError``), or a
:class:`~pmrlhf.errors.PmrlhfTypeError` (a ``TypeError`` too) for a wrong type; inner
functions trust what passed through here.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import PmrlhfTypeError, PmrlhfUserError

SIMPLEX_ATOL = 1e-6


def as_float_array(value, name: str, *, ndim_min: int = 1) -> np.ndarray:
    """Return ``value`` as a finite float64 array with at least ``ndim_min`` dimensions."""
    if isinstance(value, str | bytes):
        raise PmrlhfTypeError(f"{name} must be an array of numbers, got {type(value).__name__}")
    array = as_array(value, name, dtype=np.float64)
    if array.ndim < ndim_min:
        raise PmrlhfUserError(
            f"{name} must have at least {ndim_min} dimension(s), got shape {array.shape}"
        )
    if array.size == 0 or 0 in array.shape:
        raise PmrlhfUserError(f"{name} must not be empty, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)].ravel()[0]
        raise PmrlhfUserError(f"{name} must be finite, found {bad}")
    return array


def check_axis(axis: int, ndim: int, name: str = "axis") -> int:
    if not isinstance(axis, int | np.integer) or isinstance(axis, bool):
        raise PmrlhfTypeError(f"{name} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise PmrlhfUserError(
            f"{name}={axis} is out of range for an array with {ndim} dimension(s)"
        )
    return int(axis) % ndim


def check_beta(beta, name: str = "beta") -> float:
    beta = check_real(beta, name)
    if beta <= 0:
        raise PmrlhfUserError(f"{name} must be > 0, got {beta}")
    return beta


def check_alpha(alpha, name: str = "alpha") -> float:
    alpha = check_real(alpha, name)
    if not 0.0 < alpha < 1.0:
        raise PmrlhfUserError(f"{name} must lie in the open interval (0, 1), got {alpha}")
    return alpha


def check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise PmrlhfTypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise PmrlhfUserError(f"{name} must be finite, got {value}")
    return value


def check_count(value, name: str, minimum: int = 1, *, why: str = "") -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else a
    :class:`PmrlhfUserError` naming ``name``: "must be a positive int" (``minimum`` 1) or
    "must be an int >= minimum", followed by ``why``. The check of every count of a config
    (steps, batch sizes, samples, intervals; 0 where it means "off")."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise PmrlhfUserError(f"{name} must be {kind}{why}, got {value!r}")
    return value


def check_number(value, name: str, *, zero: bool = False, why: str = ""):
    """``value`` if it is a finite real number (not a bool) above 0, or at least 0 with
    ``zero``; else a :class:`PmrlhfUserError` naming ``name`` ("must be a number", "must be
    finite and > 0", followed by ``why``). The check of every rate, weight and time of a
    config (learning rates, ``beta``, temperatures, minutes)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise PmrlhfUserError(f"{name} must be a number, got {value!r}")
    if not (0 <= value if zero else 0 < value) or not value < float("inf"):
        raise PmrlhfUserError(
            f"{name} must be finite and {'>=' if zero else '>'} 0{why}, got {value!r}"
        )
    return value


def check_probability(value, name: str, *, open_interval: bool = False) -> float:
    value = check_real(value, name)
    if open_interval and not 0.0 < value < 1.0:
        raise PmrlhfUserError(f"{name} must lie in (0, 1), got {value}")
    if not 0.0 <= value <= 1.0:
        raise PmrlhfUserError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PmrlhfTypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise PmrlhfUserError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_simplex(value, name: str, *, axis: int = -1, atol: float = SIMPLEX_ATOL) -> np.ndarray:
    """Return ``value`` as an array of probability vectors along ``axis``."""
    array = as_float_array(value, name)
    if np.any(array < 0):
        raise PmrlhfUserError(f"{name} must be non-negative, found {array[array < 0].ravel()[0]}")
    totals = array.sum(axis=axis)
    worst = float(np.max(np.abs(totals - 1.0)))
    if worst > atol:
        raise PmrlhfUserError(f"{name} must sum to 1 along axis {axis}, off by {worst:.3g}")
    return array


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise PmrlhfUserError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}"
        )
    return value


def as_array(value, name: str, *, dtype=None) -> np.ndarray:
    """``np.asarray(value, dtype)`` whose failure names ``name``.

    Raises
    ------
    PmrlhfTypeError
        ``value`` holds something that is not a number (``"a"``), or is ragged
        (``[[0, 1], [1]]``); the message names ``name`` and numpy's reason.
    """
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "inhomogeneous" in reason:
            reason = "rows of different lengths"
        raise PmrlhfTypeError(
            f"{name} must be a rectangular array of numbers, got {_short(value)} ({reason})"
        ) from None


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


DEFAULT_SEED = 0
"""Every seed's default: of a run, a comparison's first seed aside, a simulation, a check."""


def check_seed(value, name: str = "seed") -> int:
    """Return ``value`` as a non-negative int (a numpy seed).

    Raises
    ------
    PmrlhfTypeError
        Not an int (``bool`` included).
    PmrlhfUserError
        Negative.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PmrlhfTypeError(f"{name} must be a non-negative int, got {value!r}")
    if value < 0:
        raise PmrlhfUserError(f"{name} must be a non-negative int, got {value}")
    return int(value)


def check_rng(rng, name: str = "rng") -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from ``rng``.

    ``rng`` may be ``None`` (fresh entropy), a non-negative int seed, a ``Generator``, a
    ``BitGenerator`` or a ``SeedSequence``.

    Raises
    ------
    PmrlhfTypeError
        Any other type.
    PmrlhfUserError
        A negative seed.
    """
    if rng is None or isinstance(rng, np.random.Generator | np.random.BitGenerator):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, bool) or not isinstance(rng, int | np.integer):
        raise PmrlhfTypeError(
            f"{name} must be None, a non-negative int seed or a numpy Generator, got {rng!r}"
        )
    return np.random.default_rng(check_seed(rng, name))


def check_out_dir(value, name: str = "--out") -> Path:
    """Return ``value`` as the path of an output folder, refusing values that misplace files.

    For command-line handlers and library entry points that write a folder of results. The
    command line should pass the raw string (``type=str`` in argparse): ``Path("")`` is
    ``Path(".")`` and an empty ``--out`` would otherwise write into the current folder.

    Parameters
    ----------
    value : str or os.PathLike
    name : str
        How the caller calls it in messages (``"--out"``, ``"out_dir"``).

    Raises
    ------
    PmrlhfTypeError
        Not a string or path.
    PmrlhfUserError
        An empty or blank string, a NUL character, a path that exists and is not a folder,
        or one where no folder can be created (``/proc/x``, a read-only disk, no
        permission): the nearest existing folder on its path is probed by creating and
        removing an empty folder in it, so nothing is left behind.
    """
    if not isinstance(value, str | os.PathLike):
        raise PmrlhfTypeError(f"{name} must be a folder path, got {value!r}")
    text = os.fspath(value)
    if isinstance(text, bytes):
        raise PmrlhfTypeError(f"{name} must be a str path, got bytes {text!r}")
    if not text.strip():
        raise PmrlhfUserError(f"{name} must name a folder, got an empty value {text!r}")
    if "\0" in text:
        raise PmrlhfUserError(f"{name} must not contain a NUL character, got {text!r}")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise PmrlhfUserError(f"{name} must be a folder, but {text} is an existing file")
    check_writable_folder(path, name)
    return path


def check_writable_folder(path: Path, name: str) -> None:
    """Refuse ``path`` if a folder cannot be created there: probe its nearest existing
    ancestor with a temporary empty folder, removed at once.

    Raises
    ------
    PmrlhfUserError
        An ancestor that is a file, or a probe the system refuses; one line naming
        ``name`` and the reason.
    """
    import tempfile

    parent = path.absolute()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PmrlhfUserError(f"{name} {path}: {parent} is a file, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=".pmrlhf-probe-", dir=parent)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise PmrlhfUserError(
            f"{name} {path} is not writable: no folder can be created in {parent} ({reason})"
        ) from None
    with contextlib.suppress(OSError):
        os.rmdir(probe)


def check_known_keys(data: dict, known, *, where: str) -> None:
    """Refuse a key of the mapping ``data`` (read from a file) that is not in ``known``.

    Raises
    ------
    PmrlhfUserError
        The first unknown key, in one line naming ``where`` and the nearest known name
        (``difflib.get_close_matches``): ``unknown key 'sft_weigths' in FILE (did you mean
        'sft_weights'?)``.
    """
    known = [str(name) for name in known]
    for key in data:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
        raise PmrlhfUserError(f"unknown key {key!r} in {where}{hint}")


def check_field_types(values: dict, cls, *, where: str, prefix: str = "") -> None:
    """Refuse values of the wrong type for the dataclass ``cls``'s fields, as read from a
    file: a string, list or mapping where a number is expected (``lr: x``, ``clip: [0.2]``),
    a non-bool where a bool is (``gradient_checkpointing: maybe``), a non-string where a
    string is. ``int`` fields take ints only, ``float`` fields ints or floats (never bools),
    ``X | None`` also ``None``; fields of other types are left to the class's own checks.

    Raises
    ------
    PmrlhfTypeError
        One line naming ``where``, the key (after ``prefix``: ``rl.``), the expected type
        and the value.
    """
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        expected = hints.get(key)
        if expected is None:
            continue
        options = typing.get_args(expected) if _is_union(expected) else (expected,)
        if not any(_has_type(value, option) for option in options):
            names = " or ".join(_type_name(option) for option in options)
            raise PmrlhfTypeError(f"{where}: {prefix}{key} must be {names}, got {_short(value)}")


def _is_union(hint) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _has_type(value, hint) -> bool:
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (str, dict, list):
        return isinstance(value, hint)
    return True  # another type: the class checks it


def _type_name(hint) -> str:
    names = {type(None): "null", bool: "true or false", int: "an int", float: "a number"}
    names.update({str: "a string", dict: "a mapping", list: "a list"})
    return names.get(hint, getattr(hint, "__name__", str(hint)))
