"""A report as a list of sections, rendered once to Markdown and once to self-contained HTML."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    """One heading with prose, optional display math, tables and figures (paths)."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    latex: str | None = None
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


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
        if section.latex:
            out += ["```latex", section.latex.strip(), "```", ""]
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
        "img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.latex:
            parts.append(f"<pre>{html.escape(section.latex.strip())}</pre>")
        for caption, frame in section.tables:
            parts.append(f"<p><em>{html.escape(caption)}</em></p>")
            parts.append(_fmt(frame).to_html(index=False, border=0))
        for caption, path in section.figures:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
