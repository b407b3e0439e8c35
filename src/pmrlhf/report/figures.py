"""The figures README shows, and the file of a results folder each is copied from.

``pmrlhf reproduce --publish`` (full runs only) copies each from its run folder into
``figures/`` at the top of the repository; a test checks that every figure README references
is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_copy_file


@dataclass(frozen=True)
class ReadmeFigure:
    name: str  # file name under figures/
    source: str  # path relative to the results folder


README_FIGURES = (
    ReadmeFigure("matched_beta_paired.png", "lm_biased_reference/lm_paired.png"),
    ReadmeFigure("matched_beta_compare.png", "lm_biased_reference/lm_compare.png"),
    ReadmeFigure("lm_compare.png", "lm/lm_compare.png"),
    ReadmeFigure("collapse.png", "simulate/collapse.png"),
    ReadmeFigure("lm_convergence.png", "lm/lm_convergence.png"),
    ReadmeFigure("lm_implied_preferences.png", "lm/lm_implied_preferences.png"),
    ReadmeFigure("biased_reference.png", "simulate/biased_reference.png"),
    ReadmeFigure("implied_preferences.png", "simulate/implied_preferences.png"),
    ReadmeFigure("beta_alpha_grid.png", "simulate/beta_alpha_grid.png"),
    ReadmeFigure("token_tree.png", "simulate/token_tree.png"),
    # The free-text block's (``pmrlhf lm paper --out results/paper_cpu``); copied when it exists.
    ReadmeFigure("free_text_implied_preferences.png", "paper_cpu/audit/implied_preferences.png"),
    ReadmeFigure("free_text_training_curves.png", "paper_cpu/audit/training_curves.png"),
)


def publish_figures(results: Path, figures_dir: Path) -> list[str]:
    """Copy the README's figures that this run produced into ``figures_dir`` (atomically)."""
    copied = []
    for figure in README_FIGURES:
        source = Path(results) / figure.source
        if source.exists():
            atomic_copy_file(source, Path(figures_dir) / figure.name)
            copied.append(str(Path(figures_dir) / figure.name))
    return copied
