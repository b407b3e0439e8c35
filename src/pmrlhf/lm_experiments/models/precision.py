"""The arithmetic of a training step: float32 throughout, or bfloat16 matmuls (autocast).

``precision`` in :class:`~pmrlhf.lm_experiments.train.rl.RLConfig` and
:class:`~pmrlhf.lm_experiments.train.sft.SFTConfig`:

* ``"fp32"`` (the default): every operation in float32.
* ``"bf16"``: the model's forward passes under ``torch.autocast(dtype=bfloat16)``, so its
  matrix products run in bfloat16; the weights, gradients and AdamW's moments stay float32
  (mixed precision), and the logits are cast back to float32 before the log-softmax, the
  penalties, the advantages and the loss. The exact evaluation and the exact optima never
  run under it: they are the measurement.
* ``"auto"``: ``"bf16"`` where the device computes bfloat16 natively (a CPU with
  AVX-512 BF16 or AMX, a CUDA device that supports it), ``"fp32"`` elsewhere. A CPU without
  those instructions emulates bfloat16 and runs it several times slower than float32.

Not yet the default: on the CPU this project was last measured on (an AVX2-only EPYC),
bfloat16 is not native, so the paired fp32-vs-bf16 comparison of the default task that
would justify it has not been run (README, "Language models").
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from ...errors import PmrlhfUserError

PRECISIONS = ("fp32", "bf16", "auto")
_NATIVE_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def check_precision(precision, name: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; otherwise a one-line error."""
    if precision not in PRECISIONS:
        raise PmrlhfUserError(f"{name} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@functools.cache
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first CPU listed in ``path`` (empty where the
    file does not exist or lists none, e.g. off Linux)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (see module docs)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(cpu_flags() & _NATIVE_CPU_FLAGS)
    return False


def resolve_precision(precision: str, device) -> str:
    """``"fp32"`` or ``"bf16"``: ``precision`` with ``"auto"`` decided for ``device``."""
    check_precision(precision)
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def compute_context(precision: str, device):
    """A context for a forward pass at ``precision`` (already resolved): autocast to
    bfloat16 on ``device``'s type for ``"bf16"``, nothing for ``"fp32"``."""
    import torch

    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
