"""Shared figure conventions: Agg backend, one palette per regularizer, and the package's
print style (:mod:`pmrlhf._figure_style`: at most 7 in wide, text at least 7 pt)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..._figure_style import WIDTH  # noqa: E402

COLORS = {"kl": "#d62728", "pm": "#1f77b4", "cpm": "#2ca02c", "target": "black", "rm": "#9467bd"}


def subplots(ncols: int = 1, *, nrows: int = 1, width: float = WIDTH, height: float = 3.0, **kw):
    """A figure ``width`` x ``height`` inches in all (constrained layout) with ``nrows x
    ncols`` axes, returned as a flat list (row by row). Call it under
    :func:`pmrlhf._figure_style.print_style`."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained", **kw
    )
    return fig, list(axes.ravel())


def legend_below(fig, ax, *, ncol: int = 2):
    """One legend for the figure, below its panels (where it hides no data): ``ax``'s."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)


def finish(fig, title: str):
    fig.suptitle(title)
    return fig
