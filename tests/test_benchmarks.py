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
            "--rl-settings",
            "new",
            "--out",
            str(tmp_path / "B.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "unknown --rl-settings" in run.stderr
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


def _tiny_llama(vocab: int = 100, *, tied: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("tied", [True, False])
def test_flops_estimate_matches_a_hand_count(tied):
    from benchmarks.flops import model_dims, rl_step_passes, step_flops

    dims = model_dims(_tiny_llama(tied=tied))
    # Per layer: q 32x32, k and v 32x16 (2 of 4 heads' width), o 32x32, MLP 3 x 32x64, two
    # norms of 32; plus the final norm. Embedding and output layer excluded, tied or not.
    per_layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32
    n = 2 * per_layer + 32
    assert dims["non_embedding_params"] == n == 18592
    assert (dims["head_in"], dims["vocab"]) == (32, 100)
    dv = 32 * 100
    work = {"prompt_lengths": [5, 7], "rows_prompt": [0, 0, 1, 1]}
    completions = [3, 2, 4, 1]  # 10 completion tokens
    # pmrlhf: each prompt once (12) + completions (10) = 22 tokens per pass, logits at the
    # 10 completion positions; sampling and reference forward (2), the update trained (6).
    ours = rl_step_passes("pmrlhf", completion_lengths=completions, **work)
    assert [(p["tokens"], p["logits"], p["trained"]) for p in ours] == [
        (22, 10, False),
        (22, 10, False),
        (22, 10, True),
    ]
    assert step_flops(dims, ours) == (2 + 2 + 6) * (n * 22 + dv * 10)
    # TRL: each row's prompt (5 + 5 + 7 + 7) + completions = 34 tokens per pass; generate
    # has 10 logit rows, the other passes score every position but each row's last (30).
    theirs = rl_step_passes("trl", completion_lengths=completions, **work)
    assert step_flops(dims, theirs) == 2 * (n * 34 + dv * 10) + (2 + 2 + 6) * (n * 34 + dv * 30)
    on_gpu = rl_step_passes(
        "trl", completion_lengths=completions, trl_head_all_positions=False, **work
    )
    assert step_flops(dims, on_gpu) == (2 + 2 + 2 + 6) * (n * 34 + dv * 10)


def test_matmul_rate_is_positive_and_finite():
    import math

    from benchmarks.flops import matmul_rate

    rate = matmul_rate(64, repeats=3)
    assert math.isfinite(rate["gflops"]) and rate["gflops"] > 0
    assert rate["shape"] == [64, 64] and rate["threads"] >= 1


def _fake_worker_result(side: str, round_index: int, seconds: list[float]) -> dict:
    steps = len(seconds)
    work = {"prompts": [0, 1], "prompt_lengths": [5, 7], "rows_prompt": [0, 0, 1, 1]}
    return {
        "ok": True,
        "side": side,
        "setting": "long",
        "round": round_index,
        "prompts_per_step": 2,
        "samples_per_prompt": 2,
        "max_new_tokens": 4,
        "lr": 2e-5,
        "beta": 0.05,
        "dims": {"non_embedding_params": 1000, "head_in": 8, "vocab": 50, "total_params": 1400},
        "trl_head_all_positions": True if side == "trl" else None,
        "warmup": 1,
        "steps_recorded": steps,
        "step_seconds": seconds,
        "step_tokens": [10] * steps,
        "step_work": [work | {"completion_lengths": [3, 2, 4, 1]}] * (steps + 2),
        "peak_rss_mib": 100.0 if side == "pmrlhf" else 120.0,
    }


def test_rl_step_summary_counts_cycles_and_reports_mfu(tmp_path):
    from benchmarks import rl_step
    from benchmarks.flops import rl_step_passes, step_flops
    from benchmarks.report_rl import rl_step_section

    runs = [
        _fake_worker_result("pmrlhf", 0, [1.0, 1.0]),
        _fake_worker_result("trl", 0, [2.0, 2.0]),
    ]
    result = rl_step._summarize_setting("long", runs, rate_gflops=1e-3)  # 1 MFLOP/s
    dims = runs[0]["dims"]
    work = runs[0]["step_work"][0]
    passes = rl_step_passes("pmrlhf", **{k: v for k, v in work.items() if k != "prompts"})
    # Identical steps: a cycle (update of s, sampling of s + 1) costs one step's FLOPs.
    assert rl_step.cycle_flops(runs[0]) == [step_flops(dims, passes)] * 2
    ours = result["summary"]["pmrlhf"]
    assert ours["mfu"]["median"] == pytest.approx(step_flops(dims, passes) / 1.0 / 1e6)
    assert ours["work"]["completion_tokens_mean"] == 2.5
    assert result["trl_over_pmrlhf_seconds_per_step"]["median"] == 2.0
    data = {
        "config": {
            "model": "tiny-llama",
            "dtype": "float32",
            "device": "cpu",
            "beta_kl": 0.05,
            "rounds": 1,
            "warmup_steps": 1,
            "steps_per_round": 2,
            "trl_trainer": "trl",
            "pmrlhf_trainer": "pmrlhf",
        },
        "matmul": {
            "best": {"gflops": 0.001, "shape": [64, 64], "repeats": 3, "threads": 2},
            "measurements": [{"gflops": 0.001}],
        },
        "settings": [result],
    }
    text = "\n".join(rl_step_section(data))
    assert "fp32 matmul rate of this machine: 0.001 GFLOP/s" in text
    assert "### Setting `long`" in text and "MFU" in text and "Same work on both sides" in text
    assert "pmrlhf MFU / TRL MFU" in text and "N = 1,000" in text


def test_trl_penalty_summary_reports_overhead_against_the_stock_trainer():
    from benchmarks import trl_penalty
    from benchmarks.report_rl import trl_penalty_section

    runs = [
        _fake_worker_result("trl", 0, [2.0, 2.0]),
        _fake_worker_result("pmtrl-kl", 0, [2.0, 2.04]),  # median 2.02: +1%
        _fake_worker_result("pmtrl-cpm", 0, [2.2, 2.2]),  # +10%
        _fake_worker_result("pmtrl-pm", 0, [1.5, 1.5]),  # -25%: no reference pass
    ]
    summary = trl_penalty.summarize_runs(runs)
    assert summary["pmtrl-kl"]["seconds_ratio_to_stock"]["median"] == pytest.approx(1.01)
    assert summary["pmtrl-kl"]["goal_met"] and summary["pmtrl-pm"]["goal_met"]
    assert not summary["pmtrl-cpm"]["goal_met"]
    assert summary["pmtrl-cpm"]["peak_rss_ratio_to_stock"]["median"] == pytest.approx(1.0)
    config = {
        "model": "tiny-llama",
        "dtype": "float32",
        "device": "cpu",
        "setting": "default",
        "beta": 0.05,
        "rounds": 1,
        "warmup_steps": 1,
        "steps_per_round": 2,
        "goal": trl_penalty.GOAL,
    }
    text = "\n".join(trl_penalty_section({"config": config, "summary": summary}))
    assert "regularizer='cpm', cpm_alpha=0.1: step time +10.0%" in text
    assert text.count("**not met**") == 1 and "1.1× (1.1–1.1)" in text
    failed = trl_penalty.summarize_runs(
        [*runs[:3], {"side": "pmtrl-pm", "ok": False, "log_tail": "boom"}]
    )
    assert not failed["pmtrl-pm"]["available"]
    assert "pmtrl-pm failed" in "\n".join(
        trl_penalty_section({"config": config, "summary": failed})
    )


def test_report_ends_with_the_hand_kept_timings_of_the_two_commands(tmp_path, monkeypatch):
    from benchmarks import report

    log = tmp_path / "command_timings.md"
    log.write_text("## Timings of README's two commands\n\n| date | command |\n|---|---|\n")
    monkeypatch.setattr(report, "COMMAND_TIMINGS", log)
    text = report.write_report(tmp_path / "none", out=tmp_path / "B.md", figure=tmp_path / "b.png")
    assert text.rstrip().endswith("| date | command |\n|---|---|")
    monkeypatch.setattr(report, "COMMAND_TIMINGS", tmp_path / "missing.md")
    text = report.write_report(tmp_path / "none", out=tmp_path / "B.md", figure=tmp_path / "b.png")
    assert "two commands" not in text
    # The shipped log exists and is what README's first code block points to.
    assert (ROOT / "benchmarks" / "command_timings.md").is_file()
