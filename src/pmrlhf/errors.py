"""Exceptions for mistakes a user can make (a bad argument, a damaged file, a busy folder).

The command line prints these as one line on stderr and exits with status 2; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class PmrlhfUserError(ValueError):
    """A value, file or folder given by the user is unusable; the message says which and why.

    A subclass of ``ValueError`` so that ``except ValueError`` keeps catching it.
    """


class PmrlhfTypeError(PmrlhfUserError, TypeError):
    """A user-supplied value has the wrong type (also a ``TypeError``)."""


class FolderBusyError(PmrlhfUserError):
    """Another process holds the :func:`pmrlhf._lock.run_lock` of an output folder."""
