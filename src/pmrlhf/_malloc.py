"""Keep freed memory in the process: fewer page faults in the RL step on glibc systems.

A language-model step allocates and frees tensors of tens of megabytes many times (the
logits over the vocabulary, their softmax, their gradients). glibc's ``malloc`` serves
such blocks with ``mmap`` and returns them to the kernel on ``free``, and trims the heap
whenever its free top exceeds 128 KiB, so the next step faults the same pages in again,
zero-filled by the kernel. On 2 CPU cores that kernel time was a fifth of an RL step
(BENCHMARKS.md). :func:`keep_freed_memory` raises glibc's thresholds (``mallopt``) so
freed blocks stay in the process for reuse, at the cost of a somewhat higher resident
size (about 4% for SmolLM2's RL step). Process-wide; called by the ``pmrlhf`` command
before anything else is imported; a library user calls it at the start of a script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# Blocks up to glibc's largest mmap threshold (32 MiB on 64-bit) come from the heap; the
# heap top is never trimmed below 16 GiB and grows in 1 GiB steps of address space.
_SETTINGS = ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 16 << 30), (_M_TOP_PAD, 1 << 30))
OPT_OUT = "PMRLHF_KEEP_FREED_MEMORY"  # set to 0 to leave glibc's defaults


def keep_freed_memory() -> bool:
    """Raise glibc's ``mmap`` and trim thresholds so freed blocks are reused, not
    returned to the kernel; returns whether the settings took effect.

    Does nothing (returns False) off glibc, or when the environment variable
    ``PMRLHF_KEEP_FREED_MEMORY`` is ``0``, or when glibc's own ``MALLOC_*_`` variables
    are set (the user's settings win). Changes no number a computation returns.
    """
    if os.environ.get(OPT_OUT, "1").strip() == "0" or platform.libc_ver()[0] != "glibc":
        return False
    if any(
        os.environ.get(v) is not None
        for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
    ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return all(libc.mallopt(option, value) == 1 for option, value in _SETTINGS)
    except (OSError, AttributeError):  # no loadable C library, or no mallopt in it
        return False
