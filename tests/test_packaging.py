"""Packaging facts a user relies on: one version, a citation file that agrees with it."""

from pathlib import Path

import yaml

import pmrlhf

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_lives_in_one_place_and_the_citation_follows_it():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "pmrlhf.__version__"' in pyproject
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == pmrlhf.__version__
    assert citation["preferred-citation"]["doi"] == "10.1080/01621459.2025.2555067"


def test_readme_and_theory_cite_the_paper():
    for path in ("README.md", "docs/theory.md"):
        text = (ROOT / path).read_text()
        assert "arXiv:2405.16455" in text and "Preference Collapse and" in text, path
