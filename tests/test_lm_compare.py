"""``pmrlhf lm compare``: seeds, the summary.json contract, resume, determinism."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pmrlhf.lm_experiments.commands import compare, compare_config, compare_reference, workflow
from pmrlhf.lm_experiments.data.tasks import load_task
from pmrlhf.lm_experiments.train.method import REFERENCE

METRICS = {
    "pairwise_pmd", "pairwise_abs_gap", "tv_to_target", "kl_to_target", "minority_mass",
    "target_minority_mass", "coverage", "mean_reward",
}  # fmt: skip


def _quick(**changes):
    config = compare_config.quick_config("two_answers", "tiny-llama", seeds=(0, 1))
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """One comparison of _quick() (2 seeds, 4 methods), shared: the tests below read it, or
    copy a seed's stored results (``shutil.copytree``) to start from, instead of training
    that seed again."""
    out = tmp_path_factory.mktemp("fresh")
    return out, compare.run_compare(_quick(), out, progress=False)


@pytest.fixture
def no_figures(monkeypatch):
    """The figures are drawn from the summary alone (test_summary_follows_its_contract checks
    them); tests of what is trained or reused skip the ~1.5 s of drawing per comparison."""
    from pmrlhf.lm_experiments.evaluate import plots

    monkeypatch.setattr(plots, "save_figures", lambda out, summary: [])


def test_summary_follows_its_contract(fresh):
    out, summary = fresh
    assert summary["seeds"] == [0, 1]
    assert list(summary["methods"]) == [
        REFERENCE,
        *(m.name for m in compare_config.DEFAULT_METHODS),
    ]
    for name, values in summary["methods"].items():
        rl = name != REFERENCE
        assert values["regularizer"] == (None if not rl else values["regularizer"])
        keys = METRICS | ({"tv_to_optimum", "optimum_pairwise_pmd", "optimum_coverage"} if rl
                          else set())  # fmt: skip
        assert keys <= set(values["mean"]) and keys <= set(values["ci95"])
        assert len(values["per_seed"]) == 2 and [r["seed"] for r in values["per_seed"]] == [0, 1]
        for key in keys:
            seeds = [r[key] for r in values["per_seed"]]
            assert values["mean"][key] == pytest.approx(sum(seeds) / 2)
            lo, hi = values["ci95"][key]
            assert lo <= values["mean"][key] <= hi
        assert 0 <= values["mean"]["pairwise_abs_gap"] <= 1
    json.loads((out / "summary.json").read_text())  # strict JSON
    table = pd.read_csv(out / "summary.csv")
    assert {"pairwise_pmd_lo", "pairwise_pmd_hi", "tv_to_optimum"} <= set(table.columns)
    for name in ("lm_compare.png", "lm_convergence.png", "lm_implied_preferences.png"):
        assert (out / name).stat().st_size > 0


# summary.json of _quick() as the code before issue 24's rearrangement wrote it, less what
# varies from run to run (timings, the git commit, the torch thread count), with the torch
# version and the processor family that computed it, on one thread.
GOLDEN = Path(__file__).parent / "fixtures" / "golden_compare_summary.json"
VARYING = ("code", "compute_seconds", "wall_seconds", "run_seconds", "torch_threads")


def _assert_close(actual, expected, numbers: bool, where="summary"):
    """Equal structure, strings, ints and flags; floats equal up to 1e-6 (relative, 1e-9
    absolute) where ``numbers``, else only floats."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), where
        for key in expected:
            _assert_close(actual[key], expected[key], numbers, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_close(a, e, numbers, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, int | float), where
        if not numbers:
            return
        if math.isnan(expected):
            assert math.isnan(actual), where
        else:
            assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9), where
    else:
        assert actual == expected, where


def test_summary_is_the_one_the_code_wrote_before_the_rearrangement(tmp_path):
    """Same keys in the same order, same settings, and on the torch version and processor
    family that recorded it, the same numbers (issue 24). On one thread, as recorded: the
    thread count changes float rounding, and the sampled tokens turn rounding into other
    numbers after a few steps (so do another BLAS or torch)."""
    import platform

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = compare.run_compare(_quick(), tmp_path, progress=False)
    finally:
        torch.set_num_threads(threads)
    actual = json.loads(json.dumps({k: v for k, v in summary.items() if k not in VARYING}))
    expected = json.loads(GOLDEN.read_text())
    recorded = expected.pop("recorded_with")
    here = {"torch": torch.__version__, "machine": platform.machine()}
    _assert_close(actual, expected, numbers=recorded == here)


def test_convergence_curves_start_at_step_0_and_end_at_the_evaluation(fresh):
    _, summary = fresh
    for name, values in summary["methods"].items():
        if name == REFERENCE:
            continue
        for curve, row in zip(values["curves"], values["per_seed"], strict=True):
            assert [step for step, _ in curve] == [0, 1, 2, 3]
            assert curve[-1][1] == pytest.approx(row["tv_to_optimum"])


def test_same_seeds_give_bit_identical_results(fresh, tmp_path):
    _, summary = fresh
    again = compare.run_compare(_quick(), tmp_path, progress=False)
    assert again["methods"] == summary["methods"]


def test_interrupted_compare_resumes_with_the_next_method(fresh, tmp_path, monkeypatch, no_figures):
    out, summary = fresh
    # Seed 0 done (as stored by a comparison of the same settings), then seed 1 interrupted.
    shutil.copytree(out / "seed0", tmp_path / "seed0")
    real_train_rl, calls, interrupt = workflow.train_rl, [], [True]

    def interrupted(*args, **kwargs):
        calls.append((kwargs["seed"], args[5].regularizer, args[5].beta))
        if interrupt[0] and len(calls) == 2:  # seed 1's second method
            raise RuntimeError("interrupted")  # as if the process were killed here
        return real_train_rl(*args, **kwargs)

    monkeypatch.setattr(workflow, "train_rl", interrupted)
    with pytest.raises(RuntimeError, match="interrupted"):
        compare.run_compare(_quick(), tmp_path, progress=False)
    assert calls == [(1, "kl", 0.1), (1, "kl", 1.0)]  # seed 0's stored results reused
    calls.clear()
    interrupt[0] = False
    resumed = compare.run_compare(_quick(), tmp_path, progress=False)
    assert calls == [(1, "kl", 1.0), (1, "pm", 1.0), (1, "cpm", 1.0)]  # the rest only
    assert resumed["methods"] == summary["methods"]  # the same numbers as one pass
    # Everything stored: no model is loaded at all.
    monkeypatch.setattr(workflow, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert compare.run_compare(_quick(), tmp_path, progress=False)["methods"] == resumed["methods"]


def test_changed_settings_or_restart_retrain(fresh, tmp_path, monkeypatch, no_figures):
    config = _quick(seeds=(0,), methods=compare_config.DEFAULT_METHODS[:1])
    shutil.copytree(fresh[0] / "seed0", tmp_path / "seed0")  # stored under these settings
    real_train_rl, calls = workflow.train_rl, []

    def counted(*args, **kwargs):
        calls.append(args[5].regularizer)
        return real_train_rl(*args, **kwargs)

    monkeypatch.setattr(workflow, "train_rl", counted)
    compare.run_compare(config, tmp_path, progress=False)
    assert calls == []  # the same settings: the stored result is reused
    config.rl.steps += 1  # another setting: the stored result is stale
    compare.run_compare(config, tmp_path, progress=False)
    compare.run_compare(config, tmp_path, progress=False, resume=False)
    assert calls == ["kl", "kl"]
    path = tmp_path / "seed0" / "runs" / "KL_b=0.1" / "eval.json"
    path.write_text("{cut short")  # malformed: redone
    compare.run_compare(config, tmp_path, progress=False)
    assert calls == ["kl", "kl", "kl"]


def test_grid_has_kl_pm_and_cpm_at_every_beta():
    names = [m.name for m in compare_config.grid_methods([0.5, 1], [0.2])]
    assert names == ["KL b=0.5", "KL b=1", "PM b=0.5", "PM b=1", "cPM b=0.5 a=0.2",
                     "cPM b=1 a=0.2"]  # fmt: skip
    with pytest.raises(ValueError, match="betas"):
        compare_config.grid_methods([0.0], [0.1])
    with pytest.raises(ValueError, match="alphas"):
        compare_config.grid_methods([0.1], [1.5])
    with pytest.raises(ValueError, match="at least one"):
        compare_config.grid_methods([], [0.1])


@pytest.mark.parametrize(
    "seeds,match",
    [((), "at least one"), ((-1,), "non-negative"), ((0, 0), "distinct"), ((0.5,), "ints"),
     (3, "list")],
)  # fmt: skip
def test_bad_seeds_are_refused_before_anything_is_written(tmp_path, seeds, match):
    with pytest.raises(ValueError, match=match):
        compare.run_compare(_quick(seeds=seeds), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_compare_prints_intervals_and_verdicts(fresh, tmp_path):
    # --quick's settings are _quick()'s: seed 1's results, stored, are reused, not retrained.
    shutil.copytree(fresh[0] / "seed1", tmp_path / "seed1")
    result = subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "lm", "compare", "--quick", "--model",
         "tiny-llama", "--task", "two_answers", "--seeds", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[seed 1, cPM b=1 a=0.1] stored result reused" in result.stdout
    assert "means over 1 seed(s) [1]" in result.stdout
    assert json.loads((tmp_path / "summary.json").read_text())["seeds"] == [1]


def test_fingerprints_follow_options_and_release_not_source(monkeypatch):
    from pmrlhf import _fingerprint

    config, task = _quick(), load_task("two_answers")
    key = compare_reference.method_fingerprint(config, task, 0, compare_config.DEFAULT_METHODS[0])
    assert key == compare_reference.method_fingerprint(
        _quick(), task, 0, compare_config.DEFAULT_METHODS[0]
    )
    assert key != compare_reference.method_fingerprint(
        config, task, 1, compare_config.DEFAULT_METHODS[0]
    )
    assert key != compare_reference.method_fingerprint(
        config, task, 0, compare_config.DEFAULT_METHODS[1]
    )
    monkeypatch.setattr(_fingerprint, "__version__", "another release")
    assert key != compare_reference.method_fingerprint(
        config, task, 0, compare_config.DEFAULT_METHODS[0]
    )


def test_finished_methods_keep_no_checkpoint(fresh):
    """A checkpoint only lets an interrupted method resume; each weighs three models."""
    out, _ = fresh
    runs = sorted(out.glob("seed*/runs/*"))
    assert len(runs) == 2 * len(compare_config.DEFAULT_METHODS)
    for run in runs:
        assert (run / "eval.json").exists() and not (run / "checkpoint").exists()


def test_cli_compare_options_reach_the_rl_config(tmp_path, settings_reaching, pmrlhf_here):
    import pmrlhf.lm_experiments as lm

    seen = settings_reaching(lm, "run_compare")
    args = ["lm", "compare", "--quick", "--model", "tiny-llama", "--task", "two_answers"]
    with pytest.raises(settings_reaching.stop):
        pmrlhf_here(*args, "--samples-per-prompt", "7", "--steps", "5", "--out", tmp_path / "a")
    assert (seen[0].rl.samples_per_prompt, seen[0].rl.steps) == (7, 5)
    status, stderr = pmrlhf_here(*args, "--samples-per-prompt", "1", "--out", tmp_path / "b")
    assert status == 2 and "samples_per_prompt" in stderr.strip().splitlines()[-1], stderr
    assert len(seen) == 1 and not (tmp_path / "b").exists()


def test_paired_differences_are_per_seed_with_a_t_interval(fresh):
    import numpy as np
    import scipy.stats

    out, summary = fresh
    names = [m.name for m in compare_config.DEFAULT_METHODS]
    pairs = {(p["a"], p["b"], p["metric"]): p for p in summary["paired"]}
    assert len(pairs) == len(summary["paired"]) == 3 * len(names) * (len(names) - 1) // 2
    for (a, b, metric), entry in pairs.items():
        assert names.index(a) < names.index(b)
        rows_a, rows_b = (summary["methods"][n]["per_seed"] for n in (a, b))
        diff = [x[metric] - y[metric] for x, y in zip(rows_a, rows_b, strict=True)]
        assert entry["per_seed"] == pytest.approx(diff)
        assert entry["mean"] == pytest.approx(np.mean(diff))
        if np.std(diff) > 0:
            expected = scipy.stats.t.interval(
                0.95, len(diff) - 1, loc=np.mean(diff), scale=scipy.stats.sem(diff)
            )
            assert entry["ci95"] == pytest.approx(expected)
        optimum = f"optimum_{metric}"
        predicted = np.mean([x[optimum] - y[optimum] for x, y in zip(rows_a, rows_b, strict=True)])
        assert entry["predicted"] == pytest.approx(predicted)
        assert entry["matched_beta"] == (
            summary["methods"][a]["beta"] == summary["methods"][b]["beta"]
        )
        # per prompt: the seeds' differences average to the overall one
        assert np.mean([p["mean"] for p in entry["prompts"]]) == pytest.approx(entry["mean"])
        assert entry["across_prompts"]["mean"] == pytest.approx(entry["mean"])


def test_the_prediction_is_written_before_rl_and_matches_the_optima(fresh):
    out, summary = fresh
    predictions = json.loads((out / "predictions.json").read_text())
    assert [r["seeds"] for r in predictions["references"]] == [[0], [1]]  # tiny: seeded init
    for seed, entry in zip((0, 1), predictions["references"], strict=True):
        for name, predicted in entry["methods"].items():
            row = summary["methods"][name]["per_seed"][seed]
            for key in ("tv_to_target", "pairwise_pmd", "pairwise_abs_gap", "coverage"):
                assert predicted["mean"][key] == pytest.approx(row[f"optimum_{key}"])
            assert predicted["mean"]["optimum_bound"] == pytest.approx(row["optimum_bound"])
    assert summary["code"]["version"] and "commit" in summary["code"]


def test_prediction_exists_when_rl_starts(tmp_path, monkeypatch, no_figures):
    real_train_rl, seen = workflow.train_rl, []

    def check(*args, **kwargs):
        seen.append((tmp_path / "predictions.json").exists())
        return real_train_rl(*args, **kwargs)

    monkeypatch.setattr(workflow, "train_rl", check)
    compare.run_compare(_quick(seeds=(0,), methods=compare_config.DEFAULT_METHODS[:1]), tmp_path,
                        progress=False)  # fmt: skip
    assert seen == [True]


def test_one_reference_serves_every_seed_it_does_not_depend_on(tmp_path, monkeypatch, no_figures):
    config, task = _quick(methods=compare_config.DEFAULT_METHODS[:1]), load_task("two_answers")
    key = compare_reference.reference_fingerprint
    assert key(config, task, 0) != key(config, task, 1)  # a tiny model's init is seeded
    config.model = "smollm2-135m"  # pretrained, full-batch SFT: no seed in the reference
    assert key(config, task, 0) == key(config, task, 1)
    config.sft.batch_size = 2  # SFT batches drawn at random: seeded again
    assert key(config, task, 0) != key(config, task, 1)
    # A seed-independent reference is trained once for two seeds (tiny model, as if pretrained)
    monkeypatch.setattr(compare_reference, "TINY_MODELS", ())
    real, trained = compare_reference.prepare_reference, []

    def counted(config, task, seed, **kwargs):
        trained.append(seed)
        return real(config, task, seed, **kwargs)

    monkeypatch.setattr(compare, "prepare_reference", counted)
    summary = compare.run_compare(_quick(methods=compare_config.DEFAULT_METHODS[:1]), tmp_path,
                                  progress=False)  # fmt: skip
    assert trained == [0]
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert [r["seeds"] for r in predictions["references"]] == [[0, 1]]
    seconds = summary["run_seconds"][REFERENCE]
    assert seconds[0] > 0 and seconds[1] == 0  # SFT's time counted once


def test_each_progress_bar_names_its_seed_method_and_position(tmp_path, monkeypatch, no_figures):
    labels = []
    monkeypatch.setattr(
        workflow, "train_rl", lambda *args, **kwargs: labels.append(kwargs["label"])
    )
    compare.run_compare(
        _quick(methods=compare_config.DEFAULT_METHODS[:2]), tmp_path, progress=False
    )
    assert labels == ["seed 0 · KL b=0.1 (1/4)", "seed 0 · KL b=1 (2/4)",
                      "seed 1 · KL b=0.1 (3/4)", "seed 1 · KL b=1 (4/4)"]  # fmt: skip
