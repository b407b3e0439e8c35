"""Report rendering: tables format numbers once, for Markdown and HTML alike."""

import numpy as np
import pandas as pd

from pmrlhf.report.document import Section, markdown_table, render_html, render_markdown


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
