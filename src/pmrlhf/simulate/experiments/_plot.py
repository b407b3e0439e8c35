"""Shared figure conventions: Agg backend, one palette per regularizer."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"kl": "#d62728", "pm": "#1f77b4", "cpm": "#2ca02c", "target": "black", "rm": "#9467bd"}


def subplots(ncols: int = 1, *, width: float = 5.2, height: float = 4.0):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def grid(nrows: int, ncols: int, *, width: float = 4.0, height: float = 3.3):
    """A figure with ``nrows x ncols`` axes, returned as a flat list (row by row)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, list(axes.ravel())


def finish(fig, title: str):
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig
