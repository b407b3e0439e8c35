"""``pmrlhf reproduce``: stages run, up-to-date stages are skipped, ``--force`` reruns."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pmrlhf.report import ReproduceConfig, reproduce
from pmrlhf.report.readme import END, START, results_block, update_readme
from pmrlhf.report.reproduce_config import PUBLISH

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "reproduce", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_theory_stage_and_report_then_skip_then_force(tmp_path):
    out = tmp_path / "results"
    first = run("--out", str(out), "--stages", "theory", "report", "--quick")
    assert first.returncode == 0, first.stderr
    assert "PM-property check (20 rewards each)" in first.stderr  # the theory stage's progress
    for name in ("derivation.md", "derivation.tex", "derivation.json", "pm_check.csv"):
        assert (out / "theory" / name).stat().st_size > 0
    report = (out / "REPORT.md").read_text()
    assert "dsolve" in report and "C_{1}" in report
    assert "data:image/png" not in report and (out / "REPORT.html").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["theory"]["pm_check_ok"] is True

    second = run("--out", str(out), "--stages", "theory", "--quick")
    assert "up to date" in second.stdout
    forced = run("--out", str(out), "--stages", "theory", "--quick", "--force")
    assert "up to date" not in forced.stdout and forced.returncode == 0


def test_changed_options_make_a_stage_stale(tmp_path):
    out = tmp_path / "r"
    assert run("--out", str(out), "--stages", "theory", "--quick").returncode == 0
    again = run("--out", str(out), "--stages", "theory", "--quick", "--seed", "1")
    assert "up to date" not in again.stdout


def test_unknown_stage_is_a_one_line_error(tmp_path):
    result = run("--out", str(tmp_path), "--stages", "nope")
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_quick_main_job_runs_every_stage_and_reports_them(tmp_path, monkeypatch):
    out = tmp_path / "results"
    result = run("--out", str(out), "--quick")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["theory", "simulate", "lm", "report"]
    report = (out / "REPORT.md").read_text()
    for stage in ("theory", "simulate", "lm"):  # provenance table: when each result was made
        finished = manifest["stages"][stage]["finished_at"]
        assert f"| {stage} | {finished} |" in report
    for heading in ("derived by sympy", "Simulation: preference collapse", "Language model"):
        assert heading in report
    for image in ("simulate/collapse.png", "lm/lm_compare.png"):
        assert f"]({image})" in report and (out / image).exists()
    html = (out / "REPORT.html").read_text()
    assert html.count("data:image/png;base64") >= 6
    for heading in ("biased reference", "implied pairwise preferences", "beta x alpha"):
        assert heading in report

    # README's results block is written from these outputs, numbers as the CSV has them.
    block = results_block(out, command="pmrlhf reproduce --quick", date="2026-01-01")
    assert block.startswith(START) and block.endswith(END)
    assert "*Produced by `pmrlhf reproduce --quick` on 2026-01-01.*" in block
    for value in pd.read_csv(out / "lm" / "summary.csv").pairwise_pmd:
        assert f"{value:.3g}" in block
    grid = pd.read_csv(out / "simulate" / "beta_alpha_grid.csv")
    for value in grid.pairwise_pmd:
        assert f"{value:.3g}" in block
    assert "Further tasks" not in block
    # One RL run's time per method and seed, beside the total (a slowed run stands out).
    runs = json.loads((out / "lm" / "summary.json").read_text())["run_seconds"]
    rl_runs = [t for name, times in runs.items() if name != "reference (SFT)" for t in times]
    assert len(rl_runs) == 4 * 2 and f"(min-max {min(rl_runs):.0f}-{max(rl_runs):.0f} s)" in block
    # A further comparison stored beside it (lm compare --out results/lm_NAME) gets its table.
    (out / "lm_other").mkdir()
    summary = json.loads((out / "lm" / "summary.json").read_text())
    summary["task"] = "other_task"
    (out / "lm_other" / "summary.json").write_text(json.dumps(summary))
    block = results_block(out, command="c", date="2026-01-01")
    assert "Further tasks" in block and "**`lm_other`.**" in block and "`other_task`" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{START}\nstale numbers\n{END}\ntail\n")
    update_readme(readme, out, command="c")
    text = readme.read_text()
    assert text.startswith("head\n" + START) and text.endswith(END + "\ntail\n")
    assert "stale numbers" not in text and text.count(START) == 1
    # The matched-beta block, from results/lm_biased_reference where README has its markers.
    from pmrlhf.report import matched_beta

    shutil.copytree(out / "lm", out / matched_beta.FOLDER)
    assert f"**`{matched_beta.FOLDER}`.**" not in results_block(out, command="c", date="d")
    stale = f"{matched_beta.START}\nSTALE\n{matched_beta.END}\n{START}\nSTALE\n{END}\n"
    readme.write_text(stale)
    update_readme(readme, out, command="c")
    text = readme.read_text()
    assert "STALE" not in text and text.count(matched_beta.START) == 1
    assert "The theory's call, before training" in text and "Paired differences" in text
    paired = json.loads((out / matched_beta.FOLDER / "summary.json").read_text())["paired"]
    for entry in (e for e in paired if e["matched_beta"]):
        assert f"{entry['a']} - {entry['b']}" in text and f"{entry['predicted']:+.3g}" in text
    # A held-out check of the same design joins the matched-beta block, not "Further tasks".
    shutil.copytree(out / matched_beta.FOLDER, out / "lm_matched_beta_small")
    assert "lm_matched_beta_small" not in results_block(out, command="c", date="d")
    assert "Held-out check: `" in matched_beta.matched_beta_block(out)
    shutil.rmtree(out / "lm_matched_beta_small")
    shutil.rmtree(out / matched_beta.FOLDER)  # no results: its block stays as it was
    readme.write_text(f"{matched_beta.START}\nKEPT\n{matched_beta.END}\n{START}\nSTALE\n{END}\n")
    update_readme(readme, out, command="c")
    assert "KEPT" in readme.read_text() and "STALE" not in readme.read_text()
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="results block"):
        update_readme(readme, out, command="c")

    # Publishing is explicit: a (non-quick) report stage run from a checkout's root leaves
    # its README and figures/ alone by default, and refreshes them when asked to.
    checkout = tmp_path / "checkout"
    (checkout / "figures").mkdir(parents=True)
    (checkout / "README.md").write_text(f"head\n{START}\nSTALE\n{END}\n")
    (checkout / "figures" / "collapse.png").write_bytes(b"old")
    monkeypatch.chdir(checkout)
    reproduce(ReproduceConfig(out=out, stages=("report",), progress=False), log=lambda _: None)
    assert (checkout / "README.md").read_text() == f"head\n{START}\nSTALE\n{END}\n"
    assert sorted(p.name for p in (checkout / "figures").iterdir()) == ["collapse.png"]
    assert (checkout / "figures" / "collapse.png").read_bytes() == b"old"
    manifest = reproduce(
        ReproduceConfig(out=out, stages=("report",), progress=False, **PUBLISH),
        log=lambda _: None,
    )
    assert manifest["stages"]["report"]["readme_updated"] == "README.md"
    assert "STALE" not in (checkout / "README.md").read_text()
    published = (checkout / "figures" / "collapse.png").read_bytes()
    assert published == (out / "simulate" / "collapse.png").read_bytes()
    assert (checkout / "figures" / "lm_compare.png").exists()


def test_readme_has_a_results_block_written_by_a_full_run():
    text = (ROOT / "README.md").read_text()
    start, end = text.index(START), text.index(END)
    block = text[start:end]
    assert "*Produced by `pmrlhf reproduce --out results` on " in block
    assert "| method |" in block and "| beta |" in block


@pytest.mark.parametrize("damage", ['{"stages": {"theory": {"fingerp', "[]", '{"stages": []}'])
def test_damaged_manifest_names_the_file_and_force_replaces_it(tmp_path, damage):
    out = tmp_path / "r"
    out.mkdir()
    (out / "manifest.json").write_text(damage)
    refused = run("--out", str(out), "--stages", "theory", "--quick")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    assert "manifest.json" in refused.stderr and "--force" in refused.stderr
    assert not (out / "theory").exists()
    forced = run("--out", str(out), "--stages", "theory", "--quick", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "theory" in json.loads((out / "manifest.json").read_text())["stages"]


@pytest.mark.parametrize(
    "args,match",
    [
        (("--seed", "-1"), "seed"),
        (("--lm-model", "nonsense"), "unknown model"),
        (("--stages", "theory", "--lm-model", "nonsense"), "unknown model"),
        (("--stages", "theory", "--publish"), "needs a full run"),
    ],
)
def test_bad_options_fail_before_anything_is_written(tmp_path, pmrlhf_here, args, match):
    out = tmp_path / "r"
    status, stderr = pmrlhf_here("reproduce", "--out", str(out), "--quick", *args)
    assert status == 2 and "Traceback" not in stderr
    assert stderr.strip().count("\n") == 0 and match in stderr
    assert not out.exists()


@pytest.mark.parametrize("command", [("reproduce",), ("simulate", "collapse", "--quick")])
def test_empty_out_is_refused_and_nothing_lands_in_the_current_folder(tmp_path, command):
    result = subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", *command, "--out", ""],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--out must name a folder" in result.stderr
    assert not any(tmp_path.iterdir())


def test_reproduce_config_is_checked_in_the_library(tmp_path):
    from pmrlhf.report.pipeline import check_reproduce_config

    for kwargs, match in (
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"stages": ("nope",)}, "stages"),
        ({"quick": "yes"}, "quick"),
        ({"out": ""}, "out"),
        ({"quick": True, **PUBLISH}, "needs a full run"),
        ({"readme": tmp_path / "missing.md"}, "readme"),
    ):
        with pytest.raises(ValueError, match=match):
            check_reproduce_config(ReproduceConfig(**{"out": tmp_path, **kwargs}))
    config = check_reproduce_config(ReproduceConfig(out=str(tmp_path), stages=["theory"]))
    assert config.out == tmp_path and config.stages == ("theory",)


def test_each_stage_run_shows_its_position_elapsed_time_and_eta(tmp_path, monkeypatch):
    from pmrlhf.report import pipeline
    from pmrlhf.report.stages import Stage

    ran = []

    def fake(name):  # no theory, simulation or LM work: only the pipeline's bookkeeping
        return Stage(name, lambda out, config: ran.append(name) or {"outputs": []}, lambda c: {})

    monkeypatch.setattr(pipeline, "STAGES", (fake("theory"), fake("simulate"), fake("report")))
    config = ReproduceConfig(out=tmp_path / "r", quick=True, stages=("theory", "simulate"))
    lines = []
    reproduce(config, log=lines.append)
    assert ran == ["theory", "simulate"]
    positions = [line for line in lines if line.startswith("stage ")]
    assert positions == [
        "stage 1/2: theory · elapsed 0.0 min",
        "stage 2/2: simulate · elapsed 0.0 min",
    ]

    # Forced again: the manifest has both stages' times under the same options, so an ETA.
    lines.clear()
    reproduce(replace(config, force=True), log=lines.append)
    positions = [line for line in lines if line.startswith("stage ")]
    assert len(positions) == 2 and all("min left (last run's timings)" in p for p in positions)

    # Unforced, theory and simulate are up to date: nothing is counted as a stage to run.
    lines.clear()
    reproduce(config, log=lines.append)
    assert not [line for line in lines if line.startswith("stage ")]
    assert sum("up to date" in line for line in lines) == 2


def test_stage_position_line_and_its_checks():
    from pmrlhf.errors import PmrlhfTypeError, PmrlhfUserError
    from pmrlhf.report.pipeline import stage_position

    assert stage_position(2, 4, "simulate", 186.0) == "stage 2/4: simulate · elapsed 3.1 min"
    assert stage_position(3, 4, "lm", 60.0, 300.0).endswith(
        "elapsed 1.0 min · about 5.0 min left (last run's timings)"
    )
    with pytest.raises(PmrlhfUserError, match="index"):
        stage_position(5, 4, "lm", 0.0)
    with pytest.raises(PmrlhfUserError, match="elapsed_s"):
        stage_position(1, 4, "lm", float("nan"))
    with pytest.raises(PmrlhfTypeError, match="left_s"):
        stage_position(1, 4, "lm", 0.0, "soon")
