"""A report as a list of sections, rendered once to Markdown and once to self-contained HTML.

Prose is Markdown-lite: ```code``` spans are the only markup, rendered as ``<code>`` in
HTML. Display mathematics is LaTeX for Markdown (GitHub renders ``$$ ... $$``) and
presentation MathML for HTML, which browsers render natively, with no script or network.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class MathStep:
    """One numbered step of a derivation: a title, and its equation as LaTeX and as a
    ``<math>`` element (``None``: not available, HTML then shows the LaTeX as code)."""

    title: str
    latex: str
    mathml: str | None = None


@dataclass
class Section:
    """One heading with prose, numbered display math, tables and figures (paths)."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    math: list[MathStep] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


_CODE = re.compile(r"`([^`]+)`")


def inline_html(text: str) -> str:
    """``text`` escaped for HTML, with ```code``` spans as ``<code>`` elements."""
    parts = _CODE.split(text)  # even indices: prose, odd: code
    return "".join(
        f"<code>{html.escape(part)}</code>" if k % 2 else html.escape(part)
        for k, part in enumerate(parts)
    )


def _fmt(frame: pd.DataFrame) -> pd.DataFrame:
    def cell(v):
        if isinstance(v, float):
            return "–" if v != v else f"{v:.4g}"  # NaN: not applicable
        return v

    return frame.map(cell)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (floats to 4 significant digits)."""
    frame = _fmt(frame)
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def render_markdown(title: str, sections: list[Section], *, base: Path) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            out += [paragraph, ""]
        for k, step in enumerate(section.math, 1):
            out += [f"{k}. {step.title}", "", f"   $$ {step.latex} $$", ""]
        for caption, frame in section.tables:
            out += [f"*{caption}*", "", markdown_table(frame), ""]
        for caption, path in section.figures:
            rel = os.path.relpath(path, base)
            out += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    return "\n".join(out)


def render_html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}"
        "code{background:#f3f3f3;padding:0 .2em}math[display=block]{margin:.4em 0 .9em;"
        "font-size:115%}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{inline_html(section.title)}</h2>")
        parts += [f"<p>{inline_html(p)}</p>" for p in section.paragraphs]
        if section.math:
            parts.append("<ol class='derivation'>")
            for step in section.math:
                shown = step.mathml or f"<pre><code>{html.escape(step.latex)}</code></pre>"
                parts.append(f"<li>{inline_html(step.title)}{shown}</li>")
            parts.append("</ol>")
        for caption, frame in section.tables:
            parts.append(f"<p><em>{inline_html(caption)}</em></p>")
            parts.append(_fmt(frame).to_html(index=False, border=0))
        for caption, path in section.figures:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            alt = html.escape(caption.replace("`", ""))
            parts.append(
                f"<figure><img alt='{alt}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{inline_html(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
