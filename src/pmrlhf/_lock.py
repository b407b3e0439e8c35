"""One process at a time per output folder: ``with run_lock(folder): ...``; and the
opening every command makes in its folder, ``with run_folder(out, ...): ...``.

Two runs writing one folder would mix their files (a ``summary.json`` of seed 1 beside the
CSVs of seed 2). :func:`run_lock` takes an exclusive, non-blocking ``fcntl.flock`` on
``folder/.lock``; a second process fails at once with :class:`~pmrlhf.errors.FolderBusyError`
instead of waiting. The kernel drops the lock when its holder exits, however it exits, so a
killed run never leaves a folder locked; the ``.lock`` file is removed on a normal exit. On a
system without ``fcntl`` (Windows) the lock does nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import FolderBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

LOCK_NAME = ".lock"
"""Name of the lock file inside a locked folder."""

_HELD: dict[Path, int] = {}  # folders this process holds, with their nesting depth


@contextlib.contextmanager
def run_lock(folder) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block; create ``folder`` if needed.

    Re-entrant within one process: a function that locks a folder can be called by one that
    already holds it.

    Parameters
    ----------
    folder : str or os.PathLike

    Yields
    ------
    Path
        ``folder``.

    Raises
    ------
    FolderBusyError
        Another process holds the lock (a ``PmrlhfUserError``, so a ``ValueError``); the
        message names the folder and, where known, that process's id.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _HELD or fcntl is None:
        _HELD[key] = _HELD.get(key, 0) + 1
        try:
            yield folder
        finally:
            _release_depth(key)
        return
    fd = _acquire(folder / LOCK_NAME, folder)
    _HELD[key] = 1
    try:
        yield folder
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            (folder / LOCK_NAME).unlink()  # still locked here: a waiter re-checks the inode
        os.close(fd)


@contextlib.contextmanager
def run_folder(
    out: Path,
    *,
    check: Callable[[], object] | None = None,
    cleanup: Iterable[Callable[[Path], object]] = (),
    discard: Callable[[Path], object] | None = None,
    lock: bool = True,
) -> Iterator[object]:
    """A command's opening in its output folder ``out``: take the folder's lock
    (:func:`run_lock`), run ``check()`` again under it (the command runs it once before, to
    refuse before it loads anything), remove the temporary files that interrupted writes
    left (:func:`pmrlhf._io.remove_stale_temp_files`) and what each ``cleanup(out)``
    removes, then ``discard(out)`` (a ``--restart``). Yields what ``check`` returned.
    ``lock=False`` (a process of ``accelerate launch`` other than the main one) does none
    of it.

    Raises
    ------
    FolderBusyError
        Another process holds the lock; or what ``check`` raises.
    """
    if not lock:
        yield None
        return
    from ._io import remove_stale_temp_files

    with run_lock(out):
        checked = check() if check is not None else None
        remove_stale_temp_files(out)
        for clean in cleanup:
            clean(out)
        if discard is not None:
            discard(out)
        yield checked


def _release_depth(key: Path) -> None:
    _HELD[key] -= 1
    if not _HELD[key]:
        del _HELD[key]


def _acquire(path: Path, folder: Path) -> int:
    """Lock ``path``, retrying if its holder removed it between our open and our lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderBusyError(busy_message(folder, holder)) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # we locked a file its holder had just removed: take the new one


def busy_message(folder: Path, holder: str = "") -> str:
    """What to do about a folder another process holds: wait or choose another folder.
    ``--restart`` cannot help (it needs the lock too), and there is no stale lock to
    remove: the kernel releases it when its holder exits, even if killed."""
    return (
        f"another pmrlhf process{holder} is using {folder}; wait for it to finish (its lock "
        "goes when it exits, even if killed; --restart does not override it) or choose "
        "another output folder"
    )


def check_not_busy(folder) -> None:
    """Refuse ``folder`` now if another process holds its lock, without taking it: for the
    checks made before :func:`run_lock`, so that they do not advise ``--restart`` on a run
    that is still going. A folder this process holds, or one without a ``.lock``, passes.

    Raises
    ------
    FolderBusyError
        Another process holds the lock; the message names the folder and its process.
    """
    folder = Path(folder)
    if fcntl is None or not folder.is_dir() or folder.resolve() in _HELD:
        return
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:  # no lock file (or unreadable): nobody to wait for
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(busy_message(folder, _read_holder(fd))) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
