"""Every figure README shows exists and is one that ``reproduce --publish`` copies."""

import re
from pathlib import Path

from pmrlhf.report.figures import README_FIGURES, publish_figures

ROOT = Path(__file__).resolve().parents[1]


def test_every_readme_figure_exists_and_is_published():
    referenced = set(re.findall(r"figures/([\w.-]+\.png)", (ROOT / "README.md").read_text()))
    assert referenced, "README shows no figure"
    registry = {figure.name: figure for figure in README_FIGURES}
    for name in referenced:
        assert (ROOT / "figures" / name).stat().st_size > 0, name
        assert name in registry, f"{name} is not copied by reproduce --publish"


def test_publish_copies_only_what_the_run_produced(tmp_path):
    (tmp_path / "simulate").mkdir()
    (tmp_path / "simulate" / "collapse.png").write_bytes(b"png")
    copied = publish_figures(tmp_path, tmp_path / "figs")
    assert [Path(p).name for p in copied] == ["collapse.png"]
