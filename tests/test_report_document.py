"""Report rendering: tables format numbers once, for Markdown and HTML alike."""

from pathlib import Path

import numpy as np
import pandas as pd

from pmrlhf.report.document import (
    MathStep,
    Section,
    inline_html,
    markdown_table,
    render_html,
    render_markdown,
)


def test_tables_show_four_digits_and_a_dash_for_not_applicable():
    frame = pd.DataFrame({"method": ["KL", "PM"], "alpha": [np.nan, 0.1], "pmd": [1 / 3, 2.0]})
    table = markdown_table(frame)
    assert table.splitlines()[2] == "| KL | – | 0.3333 |"
    assert table.splitlines()[3] == "| PM | 0.1 | 2 |"
    assert "nan" not in render_html("t", [Section("s", tables=[("c", frame)])])


def test_markdown_links_figures_relative_to_the_report(tmp_path):
    figure = tmp_path / "simulate" / "x.png"
    section = Section("s", paragraphs=["p"], figures=[("cap", figure)])
    text = render_markdown("T", [section], base=tmp_path)
    assert "![cap](simulate/x.png)" in text and text.startswith("# T")


def test_lm_prose_reads_null_numbers_as_not_available():
    from pmrlhf.report.lm_texts import lm_paragraphs

    def method(regularizer, beta, **mean):
        return {"regularizer": regularizer, "beta": beta, "alpha": None, "mean": mean,
                "ci95": {k: [None, None] for k in mean}, "prompts": []}  # fmt: skip

    summary = {
        "methods": {
            "KL b=0.1": method(
                "kl",
                0.1,
                minority_mass=None,
                target_minority_mass=0.4,
                pairwise_pmd=None,
                tv_to_optimum=0.05,
            ),  # fmt: skip
            "PM b=1": method("pm", 1.0, pairwise_pmd=0.1, coverage=None, tv_to_optimum=None),
        },
    }
    text = " ".join(lm_paragraphs(summary))
    assert "n/a" in text and "nan" not in text


def test_lm_prose_compares_tv_to_target_at_matched_beta_and_names_the_estimator():
    from pmrlhf.report.lm_texts import lm_paragraphs

    def method(regularizer, beta, alpha=None, **ci):
        return {"regularizer": regularizer, "beta": beta, "alpha": alpha, "prompts": [],
                "mean": {k: (lo + hi) / 2 for k, (lo, hi) in ci.items()},
                "ci95": {k: [lo, hi] for k, (lo, hi) in ci.items()}}  # fmt: skip

    def summary(cpm_tv, estimator):
        return {
            "config": {"rl": {"penalty_gradient": estimator}},
            "methods": {
                "KL b=1": method("kl", 1.0, tv_to_target=(0.2, 0.3)),
                "cPM b=1 a=0.1": method("cpm", 1.0, 0.1, tv_to_target=cpm_tv),
            },
        }

    below = " ".join(lm_paragraphs(summary((0.01, 0.05), "expected")))
    assert "lies entirely below" in below and "exact expectation over the vocabulary" in below
    overlap = " ".join(lm_paragraphs(summary((0.1, 0.25), "sampled")))
    assert "intervals overlap" in overlap and "lies entirely below" not in overlap
    assert "as TRL does" in overlap
    above = " ".join(lm_paragraphs(summary((0.31, 0.4), "expected")))  # KL b=1 clearly closer
    assert "KL b=1's interval lies entirely below" in above and "overlap" not in above


def test_code_spans_become_code_and_the_rest_is_escaped():
    assert inline_html("run `make test` & <wait>") == (
        "run <code>make test</code> &amp; <wait>".replace("<wait>", "&lt;wait&gt;")
    )
    assert inline_html("`a<b`") == "<code>a&lt;b</code>"
    assert inline_html("no code") == "no code"


def test_math_steps_are_latex_in_markdown_and_mathml_in_html():
    mathml = '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"><mi>x</mi></math>'
    section = Section(
        "Derivation",
        paragraphs=["See `derive`."],
        math=[MathStep("First", r"\frac{1}{x}", mathml), MathStep("Second", r"x^{2}")],
    )
    md = render_markdown("T", [section], base=Path("."))
    assert "1. First" in md and r"$$ \frac{1}{x} $$" in md and "2. Second" in md
    page = render_html("T", [section])
    assert mathml in page and "<code>derive</code>" in page
    assert r"\frac" not in page  # the step with MathML shows no LaTeX
    assert "<pre><code>x^{2}</code></pre>" in page  # without MathML: its LaTeX, as code


def test_lm_prose_says_the_reference_is_closer_only_where_an_interval_clears_it():
    from pmrlhf.report.lm_texts import lm_paragraphs

    def method(regularizer, beta, **ci):
        return {"regularizer": regularizer, "beta": beta, "alpha": None, "prompts": [],
                "mean": {k: (lo + hi) / 2 for k, (lo, hi) in ci.items()},
                "ci95": {k: [lo, hi] for k, (lo, hi) in ci.items()}}  # fmt: skip

    reference = {"regularizer": None, "mean": {"pairwise_pmd": 0.14, "pairwise_abs_gap": 0.3}}
    summary = {
        "methods": {
            "reference (SFT)": reference,
            "KL b=0.1": method(
                "kl",
                0.1,
                pairwise_pmd=(1.5, 3.9),
                pairwise_abs_gap=(0.2, 0.3),
                minority_mass=(0, 4.4e-6),
                target_minority_mass=(0.4, 0.4),
            ),  # fmt: skip
            "KL b=1": method("kl", 1.0, pairwise_pmd=(-0.29, 0.81)),
            "cPM b=1 a=0.1": method("cpm", 1.0, pairwise_pmd=(-0.12, 0.23)),
        },
    }
    text = " ".join(lm_paragraphs(summary))
    assert "on pairwise PMD (ours) (0.14) than KL b=0.1 (" in text  # KL b=1 is not claimed
    assert "inside its 95% interval, so no result: KL b=1 on pairwise PMD (ours)" in text
    assert "cPM b=1 a=0.1 on" not in text  # its mean is below the reference's
    assert "(0.00055% of it): preference collapse" in text  # 2.2e-6 / 0.4, not "0.0%"
    # KL b=0.1: clearly worse than the reference on the PMD, better on the bounded gap
    assert "The unbounded PMD and the bounded gap disagree here" in text
    summary["methods"]["KL b=0.1"]["mean"]["pairwise_abs_gap"] = 0.31  # worse on both
    assert "disagree" not in " ".join(lm_paragraphs(summary))
