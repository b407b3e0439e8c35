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


def _paired_summary(per_seed, predicted, estimator="expected", across=None):
    """KL b=1 against cPM b=1 a=0.1 with the paired TV differences ``per_seed``."""
    import numpy as np

    from pmrlhf.lm_experiments.evaluate.summary import t_interval

    def method(regularizer, alpha=None):
        return {"regularizer": regularizer, "beta": 1.0, "alpha": alpha, "prompts": [],
                "mean": {}, "ci95": {}}  # fmt: skip

    entry = {"a": "KL b=1", "b": "cPM b=1 a=0.1", "metric": "tv_to_target",
             "matched_beta": True, "per_seed": per_seed, "mean": float(np.mean(per_seed)),
             "ci95": list(t_interval(per_seed)), "predicted": predicted}  # fmt: skip
    if across is not None:
        mean, ci95 = float(np.mean(across)), list(t_interval(across))
        entry["across_prompts"] = {"per_prompt": across, "mean": mean, "ci95": ci95}
    return {
        "config": {"rl": {"penalty_gradient": estimator}},
        "methods": {"KL b=1": method("kl"), "cPM b=1 a=0.1": method("cpm", 0.1)},
        "paired": [entry],
    }


def test_method_vs_method_prose_follows_the_paired_interval_and_names_the_estimator():
    from pmrlhf.report.lm_texts import lm_paragraphs

    above = " ".join(lm_paragraphs(_paired_summary([0.18, 0.2, 0.22], 0.21)))
    assert "KL b=1 minus cPM b=1 a=0.1 in TV to the target: predicted +0.21" in above
    assert "cPM b=1 a=0.1 is closer (the interval lies above 0)" in above
    assert "keeps the reference's odds" in above  # the optima differ: the mechanism is named
    assert "exact expectation over the vocabulary" in above
    contains = " ".join(lm_paragraphs(_paired_summary([-0.1, 0.05, 0.12], 0.21, "sampled")))
    assert "the interval contains 0: no result" in contains and "is closer" not in contains
    assert "as TRL does" in contains
    below = " ".join(lm_paragraphs(_paired_summary([-0.03, -0.02, -0.04], 0.21)))
    assert "KL b=1 is closer (the interval lies below 0)" in below
    one = " ".join(lm_paragraphs(_paired_summary([0.2], 0.21)))
    assert "one seed, no interval: no result" in one


def test_no_difference_is_predicted_where_the_optima_agree():
    from pmrlhf.report.lm_texts import lm_paragraphs

    text = " ".join(lm_paragraphs(_paired_summary([0.01, -0.01, 0.02], 0.004)))
    assert "no difference is predicted" in text and "keeps the reference's odds" not in text


def test_the_interval_over_prompts_is_cited_where_prompts_differ():
    from pmrlhf.report.lm_texts import lm_paragraphs

    text = " ".join(lm_paragraphs(_paired_summary([0.2, 0.21, 0.19], 0.2, across=[0.1, 0.3])))
    assert "over the 2 prompts (each with its own reference odds; seed means) +0.2 [" in text


def test_collapse_names_its_threshold_and_leaves_plain_pm_out():
    from pmrlhf.report.lm_texts import lm_paragraphs

    def method(regularizer, beta, collapsed, **mean):
        return {"regularizer": regularizer, "beta": beta, "alpha": None, "mean": mean,
                "ci95": {}, "prompts": [{"collapsed_seeds": collapsed}]}  # fmt: skip

    summary = {"methods": {
        "KL b=0.1": method("kl", 0.1, 3, minority_mass=0.001, target_minority_mass=0.4),
        "PM b=1": method("pm", 1.0, 2, coverage=2.3e-7, optimum_coverage=1e-12),
    }}  # fmt: skip
    text = " ".join(lm_paragraphs(summary))
    assert "preference collapse by our threshold (the minority keeps less than 50%" in text
    assert "more than 90% of the candidate mass on one answer): KL b=0.1 on prompt 1" in text
    assert "PM b=1 on prompt" not in text and "renormalised from 2.3e-07 of the mass" in text


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


def test_far_prompts_and_the_threshold_mechanism_are_named():
    from pmrlhf.report.lm_texts import lm_paragraphs

    summary = _paired_summary([-0.3, -0.31, -0.29], -0.33)
    summary["methods"]["cPM b=1 a=0.2"] = {"regularizer": "cpm", "beta": 1.0, "alpha": 0.2,
                                          "prompts": [], "mean": {}, "ci95": {}}  # fmt: skip
    entry = summary["paired"][0] | {"a": "cPM b=1 a=0.1", "b": "cPM b=1 a=0.2"}
    summary["paired"] = [entry]
    cells = [{"tv_to_optimum": 0.15}, {"tv_to_optimum": 0.17}]
    summary["methods"]["cPM b=1 a=0.1"]["per_seed_prompts"] = [cells]
    summary["methods"]["cPM b=1 a=0.1"]["prompts"] = [{"optimum": [0.6, 0.3, 0.1, 0.0]}]
    summary["methods"]["reference (SFT)"] = {"regularizer": None, "mean": {}, "ci95": {},
                                             "prompts": [{"mass": [0.2, 0.3, 0.5]}]}  # fmt: skip
    text = " ".join(lm_paragraphs(summary))
    assert "lies between 0.1 and 0.2: matched to the preferences at alpha 0.1" in text
    assert "cPM b=1 a=0.1 on prompt 1 (0.160; the reference starts 0.400 from it)" in text
