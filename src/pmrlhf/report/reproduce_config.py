"""The options of ``pmrlhf reproduce`` (:class:`ReproduceConfig`), apart from the pipeline
that runs them (:mod:`.pipeline`) and its stages (:mod:`.stages`), which both read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._validation import DEFAULT_SEED


@dataclass(frozen=True)
class ReproduceConfig:
    """Options of the main job."""

    out: Path = Path("results")
    quick: bool = False
    seed: int = DEFAULT_SEED
    force: bool = False
    lm_model: str | None = None  # default: smollm2-135m, or tiny-llama with quick
    stages: tuple[str, ...] | None = None  # None: all
    progress: bool = True
    # Publishing (full runs only): copy README's figures here and rewrite the results block of
    # this README. None: leave them alone (the default; `pmrlhf reproduce --publish` sets both).
    figures_dir: Path | None = None
    readme: Path | None = None


PUBLISH = {"figures_dir": Path("figures"), "readme": Path("README.md")}
"""What ``pmrlhf reproduce --publish`` sets: the repository's figures and README, relative
to the current folder (the repository root)."""
