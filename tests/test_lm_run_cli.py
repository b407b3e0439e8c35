"""``pmrlhf lm run`` / ``lm compare`` from the command line: runs, resume, restart, one-line
errors, a busy folder, two processes; tiny random models."""

import json
import subprocess
import sys

import pytest


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "lm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_run_with_config_then_resume(tmp_path, pmrlhf_here):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: tiny-llama\ntask: two_answers\nsft: {steps: 2}\n"
        "rl: {steps: 2, lr: 0.001, regularizer: cpm, alpha: 0.2, checkpoint_every: 1}\n"
    )
    out = tmp_path / "run"
    first, stderr = pmrlhf_here("lm", "run", "--config", str(config), "--out", str(out))
    assert first == 0, stderr[-2000:]
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "checkpoint"):
        assert (out / name).exists(), name
    args = ("run", "--config", str(config), "--out", str(out), "--steps", "3", "--resume")
    again, stderr = pmrlhf_here("lm", *args)
    assert again == 0, stderr[-2000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


CLI_ERRORS = [
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
]


@pytest.mark.parametrize("args,match", CLI_ERRORS)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch, pmrlhf_here, args, match):
    monkeypatch.chdir(tmp_path)  # where a default or relative --out would write
    status, stderr = pmrlhf_here("lm", *args)
    assert status == 2
    assert "Traceback" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert match in last
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_error_of_a_real_process_is_one_line(tmp_path):
    """A case of CLI_ERRORS as a user meets it: ``python -m pmrlhf.cli`` in a process of its
    own, its exit status and its stderr."""
    args = ("run", "--model", "tiny-llama", "--resume", "--out", "/nonexistent/run")
    result = subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "lm", *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "--resume: no checkpoint in /nonexistent/run" in last
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_config_file_errors_name_the_field(tmp_path, pmrlhf_here):
    config = tmp_path / "run.yaml"
    for text, match in (
        ('model: tiny-llama\nrl: {beta: "abc"}\n', "rl.beta must be a number"),
        ("model: tiny-llama\nrl: {checkpoint_minutes: .nan}\n", "rl.checkpoint_minutes"),
    ):
        config.write_text(text)
        status, stderr = pmrlhf_here(
            "lm", "run", "--config", str(config), "--out", str(tmp_path / "run")
        )
        assert status == 2 and "Traceback" not in stderr, stderr
        assert match in stderr.strip().splitlines()[-1]
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
    from pmrlhf.lm_experiments.commands.run_config import RunConfig
    from pmrlhf.lm_experiments.commands.single_run import run_one

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


def _small_reward_model(tmp_path) -> str:
    """A config file for a reward model fitted in 5 steps to 20 pairs per prompt (the
    default: 100 steps, 200 pairs): where a test checks what lands in the run folder."""
    path = tmp_path / "small_rm.yaml"
    path.write_text("rm_pairs_per_prompt: 20\nrm: {steps: 5}\n")
    return str(path)


def test_cli_run_restart_discards_the_previous_run(tmp_path, pmrlhf_here):
    out = tmp_path / "run"
    args = ["--config", _small_reward_model(tmp_path), "--model", "tiny-llama", "--task"]
    args += ["two_answers", "--sft-steps", "0", "--out", str(out)]
    first, stderr = pmrlhf_here("lm", "run", *args, "--steps", "2", "--reward", "rm")
    assert first == 0, stderr[-2000:]
    again, stderr = pmrlhf_here("lm", "run", *args, "--steps", "1", "--restart")
    assert again == 0, stderr[-2000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (out / "reward_model.json").exists()


def test_cli_run_flags_reach_the_run(tmp_path, pmrlhf_here):
    out = tmp_path / "run"
    status, stderr = pmrlhf_here(
        "lm", "run", "--config", _small_reward_model(tmp_path), "--model", "tiny-llama",
        "--task", "two_answers", "--regularizer", "kl", "--beta", "0.5", "--steps", "1",
        "--sft-steps", "1", "--seed", "3", "--reward", "rm", "--penalty-gradient", "sampled",
        "--out", str(out),
    )  # fmt: skip
    assert status == 0, stderr[-2000:]
    import yaml

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["seed"], config["reward"], config["sft"]["steps"]) == (3, "rm", 1)
    assert (config["rl"]["regularizer"], config["rl"]["beta"], config["rl"]["steps"]) == (
        "kl", 0.5, 1,
    )  # fmt: skip
    assert config["rl"]["penalty_gradient"] == "sampled"
    assert (out / "reward_model.json").exists()


def test_cli_run_samples_per_prompt_reaches_the_rl_config(tmp_path, settings_reaching, pmrlhf_here):
    import pmrlhf.lm_experiments.commands.single_run as runs

    seen = settings_reaching(runs, "run_one")
    args = ["lm", "run", "--model", "tiny-llama", "--task", "two_answers"]
    with pytest.raises(settings_reaching.stop):
        pmrlhf_here(*args, "--samples-per-prompt", "7", "--steps", "5", "--out", tmp_path / "a")
    assert (seen[0].rl.samples_per_prompt, seen[0].rl.steps) == (7, 5)
    status, stderr = pmrlhf_here(*args, "--samples-per-prompt", "1", "--out", tmp_path / "b")
    assert status == 2 and "samples_per_prompt" in stderr.strip().splitlines()[-1], stderr
    assert len(seen) == 1 and not (tmp_path / "b").exists()


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


def test_lm_run_defaults_to_conditional_pm_everywhere_a_method_is_left_unnamed(tmp_path):
    # Plain PM spreads over text that is not an answer, so lm run's default is cPM at alpha
    # 0.1; a config file that names no regularizer gets the same default as no config, and
    # naming another regularizer drops the default's alpha.
    from pmrlhf.lm_experiments.commands.run_config import RunConfig

    assert (RunConfig().rl.regularizer, RunConfig().rl.alpha) == ("cpm", 0.1)
    assert RunConfig.from_dict({"rl": {"steps": 3}}).rl == RunConfig().rl.__class__(
        regularizer="cpm", alpha=0.1, steps=3
    )
    kl = RunConfig.from_dict({"rl": {"regularizer": "kl"}}).rl
    assert (kl.regularizer, kl.alpha) == ("kl", None)
    assert RunConfig().with_overrides({}, {"regularizer": "pm"}).rl.alpha is None
    with pytest.raises(ValueError, match="alpha"):
        RunConfig.from_dict({"rl": {"regularizer": "pm", "alpha": 0.2}}).rl.validate()
