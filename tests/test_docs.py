"""docs/theory.md is the one place the mathematics is written down; everything cites it."""

import re
from pathlib import Path

from pmrlhf.report import lm_texts, texts

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
# Built from parts so that this file does not itself match a grep for such references.
OUTSIDE = tuple(
    a + b
    for a, b in [("THEORY", ".md"), ("STYLE", ".md"), ("..", "/shared"), ("shared/", "THEORY")]
)
# Being rewritten in another branch; drop from this tuple once their citations are updated.


def _cited_files():
    paths = [ROOT / "README.md"]
    for folder in ("src", "tests", "benchmarks"):
        paths += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".yaml", ".md")]
    return [p for p in paths if p != Path(__file__).resolve()]


def _sections() -> set[int]:
    return {int(n) for n in re.findall(r"^## (\d+)\. ", THEORY.read_text(), flags=re.M)}


def test_theory_keeps_the_section_numbers_that_docstrings_cite():
    assert _sections() == set(range(1, 9))


def test_every_citation_names_an_existing_section_and_nothing_outside_the_repository():
    sections, cited = _sections(), set()
    for path in _cited_files():
        text = path.read_text(encoding="utf-8")
        for bad in OUTSIDE:
            assert bad not in text, f"{path.relative_to(ROOT)} cites {bad}"
        for group in re.findall(r"docs/theory\.md ((?:§\d+(?:[–-]\d+)?(?:, )?)+)", text):
            for number in re.findall(r"\d+", group):
                cited.add(int(number))
    assert cited, "nothing cites docs/theory.md"
    assert cited <= sections, f"citations of missing sections: {sorted(cited - sections)}"


def test_report_texts_cite_docs_theory():
    prose = list(texts.DERIVATION_TEXT) + [lm_texts.LM_INTRO, *lm_texts.ESTIMATOR_TEXT.values()]
    prose += [p for _, paragraphs in texts.EXPERIMENT_TEXT.values() for p in paragraphs]
    joined = " ".join(prose)
    assert "docs/theory.md §" in joined
    assert not any(bad in joined for bad in OUTSIDE)
