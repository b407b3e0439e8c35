"""One print style for every figure of the package (simulate and the LM layer alike).

A figure is laid out for a two-column paper at 100 %: at most :data:`MAX_WIDTH` (7 in, the
full text width) as saved, a single panel about a column or a little more, and no text
under :data:`MIN_FONT` points there. :func:`print_style` draws a figure under :data:`STYLE`;
:func:`print_problems` says what keeps a figure from printing so (the tests ask it).
"""

from __future__ import annotations

import functools

MAX_WIDTH = 7.0  # in: a two-column paper's text width; a figure is at most this, as saved
WIDTH = 6.8  # in: a full-width figure, savefig's 0.1 in pad on each side still within 7 in
SINGLE = 4.6  # in: a figure of one panel
MIN_FONT = 7.0  # pt at that size

TICK = 7.0
STYLE = {
    "font.size": 7.5,
    "axes.titlesize": 8.0,
    "axes.labelsize": 7.5,
    "xtick.labelsize": TICK,
    "ytick.labelsize": TICK,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.5,
    "figure.titlesize": 8.5,
    "axes.linewidth": 0.7,
    "lines.linewidth": 1.3,
    "lines.markersize": 4.5,
    "patch.linewidth": 0.7,
    "xtick.major.width": 0.7,
    "ytick.major.width": 0.7,
    "legend.handlelength": 1.8,
    "legend.borderaxespad": 0.3,
    "figure.constrained_layout.use": True,
}


def print_style(draw):
    """Decorate a function that returns a figure: draw it under :data:`STYLE`, constrained
    layout included. Tick labels are sized on every axes too, since ticks made later (when
    the figure is saved) would take the global sizes instead."""

    @functools.wraps(draw)
    def styled(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            fig = draw(*args, **kwargs)
            for ax in fig.axes:
                ax.tick_params(labelsize=TICK)
        return fig

    return styled


def print_problems(fig) -> list[str]:
    """Why ``fig`` would not print at 100 % in a two-column paper: a width over
    :data:`MAX_WIDTH` (set, or as saved with ``bbox_inches="tight"`` and its pad), or a
    visible text under :data:`MIN_FONT` points. Empty when it prints."""
    import matplotlib
    from matplotlib.text import Text

    fig.draw_without_rendering()
    saved = fig.get_tightbbox().width + 2 * matplotlib.rcParams["savefig.pad_inches"]
    problems = [
        f"{name} width {width:.2f} in > {MAX_WIDTH} in"
        for name, width in (("set", fig.get_figwidth()), ("saved", saved))
        if width > MAX_WIDTH + 1e-6
    ]
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT:
            problems.append(f"{text.get_text()[:40]!r} at {text.get_fontsize():g} pt")
    return problems
