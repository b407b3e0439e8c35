"""Smoke tests of the benchmark harness (``python -m benchmarks``): tiny sizes, seconds.

The numbers a smoke run produces mean nothing; these tests check that the harness runs,
writes raw results atomically, and builds BENCHMARKS.md and its figure from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pmrlhf.theory import optimal_policy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `benchmarks` is a top-level folder, not an installed package

from benchmarks import closed_forms, reward_fitting  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks._common import (  # noqa: E402
    loglog_exponent,
    ratio_summary,
    time_interleaved_in_children,
)


def test_loglog_exponent_recovers_power_law():
    sizes = np.array([10, 100, 1000])
    assert loglog_exponent(sizes, 3e-6 * sizes**2) == pytest.approx(2.0)


def test_ratio_summary_pairs_interleaved_rounds():
    assert ratio_summary([4.0, 6.0], [2.0, 2.0]) == {"median": 2.5, "min": 2.0, "max": 3.0}


def test_slow_baseline_is_killed_at_the_limit_and_not_repeated():
    import time

    samples, results = time_interleaved_in_children(
        {"fast": lambda: 42, "slow": lambda: time.sleep(30)},
        repeats=2,
        limit_seconds=0.5,
        repeat_below_seconds=10.0,
    )
    assert results["fast"] == 42 and len(samples["fast"]) == 2
    assert isinstance(results["slow"], TimeoutError) and samples["slow"] == [0.5]


def test_benchmark_log_likelihoods_match_pmrlhf():
    from pmrlhf.simulate import btl_log_likelihood, pl_log_likelihood

    u = np.random.default_rng(0).standard_normal(6)
    winners, losers = reward_fitting.make_pairwise(6, 40, seed=1)
    rankings = reward_fitting.make_rankings(6, 40, seed=2)
    assert reward_fitting.btl_log_likelihood(u, winners, losers) == pytest.approx(
        btl_log_likelihood(u, winners, losers)
    )
    assert reward_fitting.pl_log_likelihood(u, rankings) == pytest.approx(
        pl_log_likelihood(u, rankings)
    )


def test_objective_gap_is_zero_at_the_optimum_and_positive_elsewhere():
    reward, ref = closed_forms.make_instances(3, 5, seed=0)
    exact = optimal_policy(reward, regularizer="kl", beta=closed_forms.BETA, ref=ref)
    assert closed_forms.objective_gap(exact, exact, reward, ref) == pytest.approx(0, abs=1e-12)
    uniform = np.full_like(exact, 0.2)
    assert closed_forms.objective_gap(uniform, exact, reward, ref) > 1e-3
    # scipy's answer is scored after projection onto the simplex
    assert closed_forms.objective_gap(exact * 1.001, exact, reward, ref) == pytest.approx(
        0, abs=1e-12
    )


def test_generated_data_is_strongly_connected():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    winners, losers = reward_fitting.make_pairwise(50, 60, seed=0)  # too few on their own
    graph = coo_matrix((np.ones(winners.size), (winners, losers)), shape=(50, 50))
    assert connected_components(graph, directed=True, connection="strong")[0] == 1


def test_smoke_run_writes_results_and_report(tmp_path):
    results, report, figure = tmp_path / "results", tmp_path / "B.md", tmp_path / "b.png"
    code = main(
        [
            "--smoke",
            "--parts",
            "closed_forms,reward_fitting",
            "--seed",
            "3",
            "--results-dir",
            str(results),
            "--out",
            str(report),
            "--figure",
            str(figure),
        ]
    )
    assert code == 0
    closed = json.loads((results / "closed_forms.json").read_text())
    assert closed["meta"]["seed"] == 3 and closed["meta"]["size"] == "smoke"
    solved = [r for r in closed["rows"] if r["max_abs_diff"] is not None]
    # trust-constr finds the closed-form optimum; SLSQP may stop short of it while reporting
    # success (a barrier-like log term at the bound), which the objective gap exposes.
    trust = [r["max_abs_diff"] for r in solved if r["method"] == "scipy trust-constr"]
    assert trust and max(trust) < 1e-2
    # No scipy answer beats the closed form, and every disagreement is scipy's shortfall.
    assert min(r["objective_gap"] for r in solved) > -1e-9
    assert all(r["objective_gap"] > 1e-9 for r in solved if r["max_abs_diff"] > 1e-3)
    assert (results / "closed_forms.csv").exists() and (results / "reward_fitting.csv").exists()
    text = report.read_text()
    assert "## Machine" in text and "CPU:" in text
    assert "scipy SLSQP" in text and "choix.ilsr_pairwise" in text
    assert "## 3. One RLOO step" in text and "Not run yet." in text
    assert figure.stat().st_size > 1000
    assert "another machine" not in text  # both parts ran here, in one run

    # A part run later elsewhere (``--parts``) says where it ran.
    from benchmarks.report import write_report

    fitting = json.loads((results / "reward_fitting.json").read_text())
    fitting["meta"]["machine"]["versions"]["numpy"] = "0.0-elsewhere"
    (results / "reward_fitting.json").write_text(json.dumps(fitting))
    text = write_report(results, out=report, figure=figure)
    assert text.count("This part ran on another machine") == 1
    assert "numpy 0.0-elsewhere" in text.split("## 2.")[1]


def test_cli_rejects_unknown_part_and_reports_without_results(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--parts", "nope", "--out", str(tmp_path / "B.md")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "unknown part" in run.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--report-only",
            "--results-dir",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "B.md"),
            "--figure",
            str(tmp_path / "b.png"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "No results yet" in (tmp_path / "B.md").read_text()
