"""REPORT.html as a browser shows it: the derivation rendered as mathematics (MathML), code
spans as code, checked on a headless-chromium screenshot.

``make install`` installs chromium where apt-get can; without a chromium binary the
screenshot test is skipped (the HTML checks still run).
"""

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from pmrlhf.report.writer import write_report
from pmrlhf.theory import derive_pm_regularizer

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    (out / "theory").mkdir()
    derivation = derive_pm_regularizer()
    (out / "theory" / "derivation.json").write_text(derivation.to_json())
    write_report(out, quick=True)
    return out / "REPORT.html", derivation


def _text_outside_code(page: str) -> str:
    page = re.sub(r"<code>.*?</code>", "", page, flags=re.S)
    page = re.sub(r"<math\b.*?</math>", "", page, flags=re.S)
    return re.sub(r"<[^>]+>", " ", page)


def test_html_has_mathml_and_no_raw_latex_or_backticks(report):
    path, derivation = report
    page = path.read_text(encoding="utf-8")
    assert page.count("<math ") == len(derivation.steps)
    assert 'display="block"' in page and "<mfrac>" in page
    assert "\\begin{" not in page and "\\frac" not in page and "$$" not in page
    assert "<code>pmrlhf reproduce --quick</code>" in page  # the intro's code span
    assert "`" not in _text_outside_code(page)


def _screenshot(browser: str, url: str, png, tmp_path, size=(900, 1400)) -> np.ndarray:
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={size[0]},{size[1]}",
         f"--screenshot={png}", url],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert png.exists() and png.stat().st_size > 0, "chromium wrote no screenshot"
    return np.asarray(Image.open(png).convert("L"), dtype=float)


@pytest.mark.skipif(BROWSER is None, reason="no chromium binary (make install adds it via apt)")
def test_a_browser_renders_the_derivation_as_mathematics(report, tmp_path):
    path, derivation = report
    page = path.read_text(encoding="utf-8")
    shot = _screenshot(BROWSER, path.as_uri(), tmp_path / "report.png", tmp_path)
    assert shot.shape == (1400, 900)
    assert shot.std() > 10 and (shot < 128).mean() > 0.005, "the screenshot is blank"

    # One page, two columns: the derivation as laid out, and as a browser without MathML
    # would show it (each equation's text inline after its title). Display mathematics takes
    # lines of its own and stacks fractions, sums and exponents: the left column is taller.
    steps = re.search(r"<ol class='derivation'>.*?</ol>", page, flags=re.S).group(0)
    flat = re.sub(r"<math\b[^>]*>", "<span>", steps).replace("</math>", "</span>")
    flat = re.sub(r"</?(mrow|mi|mo|mn|mfrac|msub|msup|munderover)>", " ", flat)
    column = "<div style='position:absolute;top:0;width:440px;left:{}px'>{}</div>"
    head = page[: page.index("<body>") + len("<body>")]
    both = tmp_path / "both.html"
    both.write_text(
        head + column.format(0, steps) + column.format(460, flat) + "</body></html>",
        encoding="utf-8",
    )
    ink = _screenshot(BROWSER, both.as_uri(), tmp_path / "both.png", tmp_path) < 128
    height = {}
    for name, half in (("math", ink[:, :450]), ("flat", ink[:, 450:])):
        rows = np.flatnonzero(half.any(axis=1))
        assert len(rows), f"{name}: nothing rendered"
        height[name] = rows.max() - rows.min()
    assert height["math"] > 2 * height["flat"], height
