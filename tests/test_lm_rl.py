"""The RL loop, checkpoint/resume, and the ``pmrlhf lm`` CLI, with tiny random models."""

import copy
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from pmrlhf.lm_experiments import RLConfig, load_model, load_task, rl, train_rl
from pmrlhf.lm_experiments.compare import grid_methods, implied_preferences, oracle_reward_fn

FAST = {"steps": 2, "max_new_tokens": 3, "lr": 1e-3, "prompts_per_step": 2, "samples_per_prompt": 2}


def _train(regularizer, run_dir=None, resume=False, **overrides):
    model, tok = load_model("tiny-llama", seed=0)
    ref = copy.deepcopy(model).eval()
    task = load_task("three_answers")
    kwargs = {**FAST, **overrides, "regularizer": regularizer}
    if regularizer == "cpm":
        kwargs.setdefault("alpha", 0.1)
    config = RLConfig(**kwargs)
    history = train_rl(
        model,
        ref,
        tok,
        task,
        oracle_reward_fn(task),
        config,
        run_dir=run_dir,
        resume=resume,
        progress=False,
    )
    return history, model


@pytest.mark.parametrize("regularizer", ["kl", "pm", "cpm"])
def test_rl_loop_runs_for_every_regularizer(regularizer):
    history, _ = _train(regularizer)
    assert [r["step"] for r in history] == [1, 2]
    assert all(set(r) >= {"reward", "penalty", "kl_to_ref", "entropy"} for r in history)


def test_first_step_penalties_follow_theory_table():
    # At step 1 the policy is the reference: KL's penalty is 0, PM's is log pi = -entropy.
    kl, _ = _train("kl", steps=1)
    assert kl[0]["penalty"] == pytest.approx(0.0, abs=1e-5)
    pm, _ = _train("pm", steps=1)
    assert pm[0]["penalty"] == pytest.approx(-pm[0]["entropy"], abs=1e-5)


def test_one_forward_pass_trains_exactly_like_two(monkeypatch):
    """Without dropout, reusing the gradient pass for the penalty changes nothing."""
    single, model_single = _train("cpm", steps=3)
    monkeypatch.setattr(rl, "has_dropout", lambda model: True)  # force the two-pass path
    double, model_double = _train("cpm", steps=3)
    for a, b in zip(single, double, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for (name, pa), (_, pb) in zip(
        model_single.named_parameters(), model_double.named_parameters(), strict=True
    ):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)


def test_dropout_is_detected_in_config_or_modules():
    assert not rl.has_dropout(load_model("tiny-llama")[0])
    assert rl.has_dropout(load_model("tiny-opt")[0])  # OPT's config.dropout = 0.1


def test_gradients_are_freed_after_training():
    _, model = _train("pm", steps=1)
    assert all(p.grad is None for p in model.parameters())


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    full, _ = _train("pm", steps=4)
    first = tmp_path / "run"
    first.mkdir()
    _train("pm", run_dir=first, steps=2, checkpoint_every=1)
    resumed, _ = _train("pm", run_dir=first, resume=True, steps=4)
    assert [r["reward"] for r in resumed] == pytest.approx([r["reward"] for r in full])
    lines = (first / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_resume_without_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        _train("pm", run_dir=tmp_path, resume=True)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"regularizer": "cpm", "alpha": 1.5}, "alpha"),
        ({"regularizer": "kl", "beta": 0.0}, "beta"),
        ({"regularizer": "pm", "samples_per_prompt": 1}, "samples_per_prompt"),
        ({"regularizer": "ppo"}, "regularizer"),
    ],
)
def test_bad_rl_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RLConfig(**kwargs).validate()


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "lm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_compare_quick_writes_summary_with_every_key(tmp_path):
    result = cli(
        "compare",
        "--quick",
        "--model",
        "tiny-llama",
        "--task",
        "two_answers",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    keys = {
        "kl_to_target",
        "tv_to_target",
        "minority_mass",
        "target_minority_mass",
        "coverage",
        "pairwise_pmd",
        "mean_reward",
    }
    assert set(summary["methods"]) == {"reference (SFT)", "KL-RLHF", "PM-RLHF", "cPM-RLHF"}
    assert all(keys <= set(v) for v in summary["methods"].values())
    assert (tmp_path / "lm_compare.png").exists() and (tmp_path / "summary.csv").exists()
    assert (tmp_path / "lm_implied_preferences.png").exists()


def test_cli_compare_grid_compares_each_cpm_with_kl_at_its_beta(tmp_path):
    result = cli(
        "compare", "--quick", "--model", "tiny-llama", "--task", "two_answers",
        "--out", str(tmp_path), "--betas", "0.5", "1", "--alphas", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "summary.csv").set_index("method")
    assert list(table.index) == [
        "reference (SFT)", "KL-RLHF b=0.5", "KL-RLHF b=1", "cPM-RLHF b=0.5 a=0.2",
        "cPM-RLHF b=1 a=0.2",
    ]  # fmt: skip
    for beta in ("0.5", "1"):
        cpm, kl = table.loc[f"cPM-RLHF b={beta} a=0.2"], table.loc[f"KL-RLHF b={beta}"]
        expected = 100 * (1 - cpm.pairwise_pmd / kl.pairwise_pmd)
        assert cpm.pmd_improvement_over_kl_pct == pytest.approx(expected)
        assert kl.pmd_improvement_over_kl_pct == pytest.approx(0.0)
    assert math.isnan(table.loc["reference (SFT)"].pmd_improvement_over_kl_pct)


def test_implied_preferences_of_a_summary_are_oriented_and_exact():
    task = load_task("three_answers")
    rewards = task.oracle_rewards()
    target = [np.exp(r) / np.exp(r).sum() for r in rewards]
    summary = {"methods": {"matched": {"distributions": [t.tolist() for t in target]}}}
    p_r, p_pi = implied_preferences(summary, task)["matched"]
    assert (p_r >= 0.5).all() and p_r.size == sum(len(r) * (len(r) - 1) // 2 for r in rewards)
    np.testing.assert_allclose(p_pi, p_r, atol=1e-12)


def test_grid_methods_validate_their_arguments():
    assert len(grid_methods([0.1, 0.5, 1.0], [0.1, 0.3, 0.5])) == 3 + 9
    with pytest.raises(ValueError, match="betas"):
        grid_methods([0.0], [0.1])
    with pytest.raises(ValueError, match="alphas"):
        grid_methods([0.1], [1.5])
    with pytest.raises(ValueError, match="at least one"):
        grid_methods([], [0.1])


def test_cli_run_with_config_then_resume(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: tiny-llama\ntask: two_answers\nsft_steps: 2\n"
        "rl: {steps: 2, max_new_tokens: 3, lr: 0.001, regularizer: cpm, alpha: 0.2, "
        "checkpoint_every: 1}\n"
    )
    out = tmp_path / "run"
    first = cli("run", "--config", str(config), "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "checkpoint"):
        assert (out / name).exists(), name
    again = cli("run", "--config", str(config), "--out", str(out), "--steps", "3", "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    "args,match",
    [
        (("compare", "--model", "gpt-17", "--quick"), "unknown model"),
        (("compare", "--task", "nope", "--quick"), "unknown task"),
        (("compare", "--quick", "--betas", "0.1"), "go together"),
        (("compare", "--quick", "--betas", "-1", "--alphas", "0.1"), "betas"),
        (("run", "--model", "tiny-llama", "--regularizer", "cpm", "--alpha", "1.5"), "alpha"),
        (("run", "--model", "tiny-llama", "--resume", "--out", "/nonexistent/run"), "checkpoint"),
        (("run", "--config", "/nonexistent.yaml"), "does not exist"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, match):
    result = cli(*args, timeout=300)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert match in last


def test_two_cpu_processes_with_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            "2",
            "--cpu",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "pmrlhf.cli",
            "lm",
            "run",
            "--model",
            "tiny-llama",
            "--task",
            "two_answers",
            "--sft-steps",
            "1",
            "--steps",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # One process writes: two steps, not four, and one evaluation.
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "eval.json").read_text())["coverage"] >= 0


def test_interrupted_compare_resumes_with_the_next_method(tmp_path, monkeypatch):
    from pmrlhf.lm_experiments import compare

    config = compare.quick_config("two_answers", "tiny-llama", seed=0)
    fresh = compare.run_compare(config, tmp_path / "fresh", progress=False)

    real_train_rl, calls, interrupt = compare.train_rl, [], [True]

    def interrupted_after_first_method(*args, **kwargs):
        calls.append(args[5].regularizer)
        if interrupt[0] and len(calls) == 2:
            raise RuntimeError("interrupted")  # as if the process were killed here
        return real_train_rl(*args, **kwargs)

    monkeypatch.setattr(compare, "train_rl", interrupted_after_first_method)
    with pytest.raises(RuntimeError, match="interrupted"):
        compare.run_compare(config, tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / "runs" / "KL-RLHF" / "eval.json").exists()

    calls.clear()
    interrupt[0] = False
    resumed = compare.run_compare(config, tmp_path / "resumed", progress=False)
    assert calls == ["pm", "cpm"]  # KL-RLHF was not trained again
    assert resumed["reused"] == ["KL-RLHF"]
    # Each RL run seeds itself and SFT is deterministic: the same numbers as one pass.
    assert resumed["methods"] == fresh["methods"]

    # Everything stored: no model is loaded at all.
    monkeypatch.setattr(compare, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    again = compare.run_compare(config, tmp_path / "resumed", progress=False)
    assert again["methods"] == fresh["methods"] and len(again["reused"]) == 4


def test_compare_retrains_when_settings_change_or_restart_is_asked(tmp_path, monkeypatch):
    from pmrlhf.lm_experiments import compare

    config = compare.quick_config("two_answers", "tiny-llama", seed=0)
    config.methods = config.methods[:1]
    compare.run_compare(config, tmp_path, progress=False)
    real_train_rl, calls = compare.train_rl, []

    def counted(*args, **kwargs):
        calls.append(args[5].regularizer)
        return real_train_rl(*args, **kwargs)

    monkeypatch.setattr(compare, "train_rl", counted)
    config.rl.steps += 1  # another setting: the stored result is stale
    compare.run_compare(config, tmp_path, progress=False)
    compare.run_compare(config, tmp_path, progress=False, resume=False)
    assert calls == ["kl", "kl"]
    (tmp_path / "runs" / "KL-RLHF" / "eval.json").write_text("{cut short")  # malformed: redone
    compare.run_compare(config, tmp_path, progress=False)
    assert calls == ["kl", "kl", "kl"]
