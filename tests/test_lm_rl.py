"""The RL loop, checkpoint/resume, and the ``pmrlhf lm`` CLI, with tiny random models."""

import copy
import json
import subprocess
import sys

import pytest
import torch

from pmrlhf.lm_experiments import OracleReward, RLConfig, load_model, load_task, rl, train_rl
from pmrlhf.lm_experiments.sequences import (
    completion_mask,
    encode_prompt,
    left_pad,
    sample_shared,
    shared_prompt_logprobs,
    token_logprobs,
)

FAST = {"steps": 2, "lr": 1e-3, "samples_per_prompt": 2}


def _train(regularizer, run_dir=None, resume=False, seed=0, **overrides):
    model, tok = load_model("tiny-llama", seed=0)
    ref = copy.deepcopy(model).eval()
    task = load_task("three_answers")
    kwargs = {**FAST, **overrides, "regularizer": regularizer}
    if regularizer == "cpm":
        kwargs.setdefault("alpha", 0.1)
    history = train_rl(
        model, ref, tok, task, OracleReward(task, tok), RLConfig(**kwargs), seed=seed,
        run_dir=run_dir, resume=resume, progress=False,
    )  # fmt: skip
    return history, model


@pytest.mark.parametrize("regularizer", ["kl", "pm", "cpm"])
def test_rl_loop_runs_for_every_regularizer(regularizer):
    history, _ = _train(regularizer)
    assert [r["step"] for r in history] == [1, 2]
    assert all(set(r) >= {"reward", "penalty", "entropy", "lr"} for r in history)
    # Plain PM needs no reference forward pass, so it logs no KL to the reference.
    assert ("kl_to_ref" in history[0]) == (regularizer != "pm")


def test_first_step_penalties_follow_theory_table():
    # At step 1 the policy is the reference: KL's penalty is 0, PM's is log pi = -entropy.
    kl, _ = _train("kl", steps=1)
    assert kl[0]["penalty"] == pytest.approx(0.0, abs=1e-5)
    pm, _ = _train("pm", steps=1)
    assert pm[0]["penalty"] == pytest.approx(-pm[0]["entropy"], abs=1e-5)


def test_shared_prompt_forward_equals_one_forward_per_row_with_gradients():
    model, tok = load_model("tiny-llama", seed=3)
    task = load_task("three_answers")
    prompts = [encode_prompt(tok, p.messages) for p in task.prompts]
    p_ids, p_mask = left_pad(prompts, tok.pad_token_id)  # prompts of different lengths
    k = 3
    completion = sample_shared(
        model, p_ids, p_mask, samples=k, max_new_tokens=4, eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    c_mask, _ = completion_mask(completion, tok.eos_token_id)
    shared = shared_prompt_logprobs(model, p_ids, p_mask, completion, c_mask)
    shared.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    rows, rows_mask = left_pad([p for p in prompts for _ in range(k)], tok.pad_token_id)
    plain = token_logprobs(model, rows, rows_mask, completion, c_mask)
    plain.sum().backward()
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-5)
    for a, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-5)


def test_dropout_is_off_in_every_loaded_model():
    model, _ = load_model("tiny-opt")  # OPT's config asks for dropout 0.1
    model.train()
    ids = torch.tensor([[1, 5, 9, 13]])
    torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=ids).logits)
    assert model.config.dropout == 0.0


def test_gradients_are_freed_after_training():
    _, model = _train("pm", steps=1)
    assert all(p.grad is None for p in model.parameters())


def test_same_seed_same_run_other_seed_other_samples():
    first, model_a = _train("cpm", steps=3, seed=4)
    second, model_b = _train("cpm", steps=3, seed=4)
    assert first == second
    for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(a, b)
    other, _ = _train("cpm", steps=3, seed=5)
    assert [r["entropy"] for r in other] != [r["entropy"] for r in first]


def test_learning_rate_decays_linearly_to_its_final_fraction():
    history, _ = _train("pm", steps=4, lr=1e-3, lr_final=0.2, warmup_steps=0)
    assert [r["lr"] for r in history] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])


def test_learning_rate_warms_up_then_decays():
    config = RLConfig(steps=10, lr=1.0, warmup_steps=3, lr_final=0.1)
    factors = [rl.lr_factor(config, s) for s in range(10)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[-1] == pytest.approx(1 - 0.9 * 6 / 7)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))  # then decays


def test_resume_continues_exactly_and_logs_each_step_once(tmp_path):
    full, _ = _train("pm", steps=4)
    first = tmp_path / "run"
    first.mkdir()
    _train("pm", run_dir=first, steps=4, checkpoint_every=2)
    # As if killed after step 3: the log holds a step the checkpoint (step 2) does not.
    import shutil

    shutil.rmtree(first)
    first.mkdir()
    _train("pm", run_dir=first, steps=2, checkpoint_every=2)
    with open(first / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"step": 3, "reward": 0.0}) + "\n")
    resumed, _ = _train("pm", run_dir=first, resume=True, steps=4)
    assert [r["reward"] for r in resumed] == pytest.approx([r["reward"] for r in full])
    lines = (first / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert not [p for p in first.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize("minutes,saved", [(1.0, [2, 3]), (0.0, [3]), (5.0, [3])])
def test_checkpoint_minutes_checkpoint_after_that_much_work(tmp_path, monkeypatch, minutes, saved):
    from pmrlhf.lm_experiments import rl

    clock = iter(range(0, 10_000, 40))  # each reading of the clock: 40 s later
    monkeypatch.setattr(rl, "_clock", lambda: next(clock))
    steps, save = [], rl.save_checkpoint
    monkeypatch.setattr(
        rl,
        "save_checkpoint",
        lambda folder, step, *a, **k: steps.append(step) or save(folder, step, *a, **k),
    )
    _train("pm", run_dir=tmp_path, steps=3, checkpoint_minutes=minutes)
    assert steps == saved


def test_checkpoint_staging_left_by_a_kill_is_cleaned_up(tmp_path):
    from pmrlhf.lm_experiments.checkpoint import remove_checkpoint_staging

    _train("pm", run_dir=tmp_path, steps=1)
    checkpoint = tmp_path / "checkpoint"
    # Killed while staging: an incomplete staging folder; removed, the checkpoint kept.
    (tmp_path / ".checkpoint.abcd1234.tmp").mkdir()
    (tmp_path / ".checkpoint.abcd1234.tmp" / "model.safetensors").write_bytes(b"half")
    assert len(remove_checkpoint_staging(checkpoint)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "metrics.jsonl"]
    # Killed between the two renames: the previous checkpoint aside, none in place.
    checkpoint.rename(tmp_path / ".checkpoint.efgh5678.tmp.old")
    (tmp_path / ".checkpoint.efgh5678.tmp").mkdir()
    remove_checkpoint_staging(checkpoint)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "metrics.jsonl"]
    _train("pm", run_dir=tmp_path, resume=True, steps=2)  # the restored checkpoint works


def test_resume_without_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        _train("pm", run_dir=tmp_path, resume=True)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"regularizer": "cpm", "alpha": 1.5}, "alpha"),
        ({"regularizer": "kl", "beta": 0.0}, "rl.beta"),
        ({"regularizer": "kl", "beta": float("inf")}, "rl.beta"),
        ({"regularizer": "kl", "beta": "abc"}, "rl.beta"),
        ({"regularizer": "pm", "lr": float("nan")}, "rl.lr"),
        ({"regularizer": "pm", "samples_per_prompt": 1}, "samples_per_prompt"),
        ({"regularizer": "pm", "steps": 0}, "rl.steps"),
        ({"regularizer": "pm", "lr_final": 2.0}, "rl.lr_final"),
        ({"regularizer": "ppo"}, "regularizer"),
        ({"regularizer": "pm", "checkpoint_minutes": -1.0}, "rl.checkpoint_minutes"),
        ({"regularizer": "pm", "checkpoint_minutes": float("nan")}, "rl.checkpoint_minutes"),
        ({"regularizer": "pm", "checkpoint_minutes": float("inf")}, "rl.checkpoint_minutes"),
        ({"regularizer": "pm", "checkpoint_minutes": "5"}, "rl.checkpoint_minutes"),
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


def test_cli_run_with_config_then_resume(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: tiny-llama\ntask: two_answers\nsft: {steps: 2}\n"
        "rl: {steps: 2, lr: 0.001, regularizer: cpm, alpha: 0.2, checkpoint_every: 1}\n"
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
        (("compare", "--quick", "--seeds", "-1"), "seeds"),
        (("compare", "--quick", "--seeds", "1", "1"), "seeds"),
        (("run", "--model", "tiny-llama", "--regularizer", "cpm", "--alpha", "1.5"), "alpha"),
        (("run", "--model", "tiny-llama", "--beta", "inf"), "rl.beta"),
        (("run", "--model", "tiny-llama", "--seed", "-1"), "seed"),
        (("run", "--model", "tiny-llama", "--sft-steps", "-1"), "sft.steps"),
        (("run", "--model", "tiny-llama", "--resume", "--out", "/nonexistent/run"), "checkpoint"),
        (("run", "--config", "/nonexistent.yaml"), "does not exist"),
        (("run", "--model", "tiny-llama", "--out", ""), "--out must name a folder"),
        (("compare", "--quick", "--model", "tiny-llama", "--out", " "), "--out must name"),
        (("run", "--model", "tiny-llama", "--resume", "--restart"), "not allowed with"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, args, match):
    result = subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "lm", *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert match in last
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_config_file_errors_name_the_field(tmp_path):
    config = tmp_path / "run.yaml"
    for text, match in (
        ('model: tiny-llama\nrl: {beta: "abc"}\n', "rl.beta must be a number"),
        ("model: tiny-llama\nrl: {checkpoint_minutes: .nan}\n", "rl.checkpoint_minutes"),
    ):
        config.write_text(text)
        result = cli("run", "--config", str(config), "--out", str(tmp_path / "run"))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert match in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_second_process_on_a_folder_fails_at_once(tmp_path, command):
    from pmrlhf._lock import run_lock

    out = tmp_path / "busy"
    args = ["--model", "tiny-llama", "--task", "two_answers", "--out", str(out)]
    args += ["--quick"] if command == "compare" else ["--steps", "1", "--sft-steps", "0"]
    with run_lock(out):
        result = cli(command, *args, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "another pmrlhf process" in last and str(out) in last
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written, lock released


def test_run_folder_without_checkpoint_says_restart_and_restart_starts_again(tmp_path):
    from pmrlhf.lm_experiments.runs import RunConfig, run_one

    config = RunConfig(model="tiny-llama", task="two_answers")
    config = config.with_overrides({}, {"steps": 1, "samples_per_prompt": 2}, {"steps": 0})
    out = tmp_path / "run"
    out.mkdir()
    # As if killed before the first checkpoint: a log and a config, no checkpoint.
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "config.yaml").write_text("old: true\n")
    (out / ".metrics.jsonl.abc.pmrlhf-tmp").write_text("half")
    (out / ".checkpoint.abcd1234.tmp").mkdir()
    with pytest.raises(ValueError, match="already holds a run.*--restart"):
        run_one(config, out, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint.*--restart"):
        run_one(config, out, resume=True, progress=False)
    with pytest.raises(ValueError, match="exclude each other"):
        run_one(config, out, resume=True, restart=True, progress=False)
    run_one(config, out, restart=True, progress=False)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()] == [1]
    assert "old" not in (out / "config.yaml").read_text()
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint", "config.yaml", "eval.json", "metrics.jsonl",
    ]  # fmt: skip
    # Now with a checkpoint: a plain rerun is told about --resume too.
    with pytest.raises(ValueError, match="--resume to continue it"):
        run_one(config, out, progress=False)
    # Killed mid-swap: the checkpoint moved aside is restored, and --resume works.
    (out / "checkpoint").rename(out / ".checkpoint.abcd1234.tmp.old")
    run_one(config, out, resume=True, progress=False)
    assert (out / "checkpoint" / "trainer_state.pt").exists() and not list(out.glob(".*"))


def test_cli_run_restart_discards_the_previous_run(tmp_path):
    out = tmp_path / "run"
    args = ["--model", "tiny-llama", "--task", "two_answers", "--sft-steps", "0", "--out"]
    first = cli("run", *args, str(out), "--steps", "2", "--reward", "rm")
    assert first.returncode == 0, first.stderr[-2000:]
    again = cli("run", *args, str(out), "--steps", "1", "--restart")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (out / "reward_model.json").exists()


def test_cli_run_flags_reach_the_run(tmp_path):
    out = tmp_path / "run"
    result = cli(
        "run", "--model", "tiny-llama", "--task", "two_answers", "--regularizer", "kl",
        "--beta", "0.5", "--steps", "1", "--sft-steps", "1", "--seed", "3", "--reward", "rm",
        "--penalty-gradient", "sampled", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import yaml

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["seed"], config["reward"], config["sft"]["steps"]) == (3, "rm", 1)
    assert (config["rl"]["regularizer"], config["rl"]["beta"], config["rl"]["steps"]) == (
        "kl", 0.5, 1,
    )  # fmt: skip
    assert config["rl"]["penalty_gradient"] == "sampled"
    assert (out / "reward_model.json").exists()


def _launch_two(config, out, *args):
    """``pmrlhf lm run`` in two CPU processes (torchrun; ``accelerate launch --cpu`` starts
    one), the Accelerator of run_one set up by the environment as under accelerate."""
    return subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "-m", "pmrlhf.cli", "lm", "run", "--config", str(config), "--out", str(out), *args,
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_two_processes_write_once_and_resume_exactly(tmp_path):
    config = tmp_path / "run.yaml"  # a flat learning rate: the schedule ignores rl.steps
    config.write_text(
        "model: tiny-llama\ntask: two_answers\nsft: {steps: 1}\n"
        "rl: {regularizer: kl, lr: 0.01, warmup_steps: 0, lr_final: 1.0, samples_per_prompt: 2}\n"
    )
    first = _launch_two(config, tmp_path / "cut", "--steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = tmp_path / "cut" / "checkpoint"
    # Two processes: accelerate's state, each process's generators, the model and tokenizer.
    for name in ("accelerate/optimizer.bin", "sampling_rank0.pt", "sampling_rank1.pt",
                 "model.safetensors", "tokenizer_config.json", "trainer_state.pt"):  # fmt: skip
        assert (checkpoint / name).exists(), name
    resumed = _launch_two(config, tmp_path / "cut", "--steps", "3", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = _launch_two(config, tmp_path / "whole", "--steps", "3")
    assert whole.returncode == 0, whole.stderr[-3000:]
    # One process writes: three steps, not six; the resumed run is the uninterrupted one.
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    for name in ("eval.json", "metrics.jsonl"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text()
