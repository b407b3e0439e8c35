"""The figures README shows: where each comes from, and the function that draws it.

``pmrlhf reproduce --publish`` (full runs only) copies each from its run folder into
``figures/`` at the top of the repository; a test checks that every figure README references
is listed here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_copy_file


@dataclass(frozen=True)
class ReadmeFigure:
    name: str  # file name under figures/
    source: str  # path relative to the results folder
    producer: str  # "module:function" that draws it

    def resolve_producer(self):
        module, function = self.producer.split(":")
        return getattr(importlib.import_module(module), function)


README_FIGURES = (
    ReadmeFigure(
        "matched_beta_paired.png",
        "lm_biased_reference/lm_paired.png",
        "pmrlhf.lm_experiments.commands.compare:run_compare",
    ),
    ReadmeFigure(
        "matched_beta_compare.png",
        "lm_biased_reference/lm_compare.png",
        "pmrlhf.lm_experiments.commands.compare:run_compare",
    ),
    ReadmeFigure(
        "lm_compare.png", "lm/lm_compare.png", "pmrlhf.lm_experiments.commands.compare:run_compare"
    ),
    ReadmeFigure(
        "collapse.png", "simulate/collapse.png", "pmrlhf.simulate.experiments.collapse:run_collapse"
    ),
    ReadmeFigure(
        "lm_convergence.png",
        "lm/lm_convergence.png",
        "pmrlhf.lm_experiments.commands.compare:run_compare",
    ),
    ReadmeFigure(
        "lm_implied_preferences.png",
        "lm/lm_implied_preferences.png",
        "pmrlhf.lm_experiments.commands.compare:run_compare",
    ),
    ReadmeFigure(
        "biased_reference.png",
        "simulate/biased_reference.png",
        "pmrlhf.simulate.experiments.biased_reference:run_biased_reference",
    ),
    ReadmeFigure(
        "implied_preferences.png",
        "simulate/implied_preferences.png",
        "pmrlhf.simulate.experiments.implied_preferences:run_implied_preferences",
    ),
    ReadmeFigure(
        "beta_alpha_grid.png",
        "simulate/beta_alpha_grid.png",
        "pmrlhf.simulate.experiments.beta_alpha_grid:run_beta_alpha_grid",
    ),
    ReadmeFigure(
        "token_tree.png",
        "simulate/token_tree.png",
        "pmrlhf.simulate.experiments.token_tree:run_token_tree",
    ),
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
