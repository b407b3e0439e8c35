"""``pmrlhf lm paper``: preference pairs -> SFT -> reward model -> RL (KL / cPM) -> audit,
each stage a TRL trainer, on a tiny random Llama and a few short pairs written here."""

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from importlib import resources

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("datasets")

from pmrlhf.lm_experiments.commands.paper_config import (  # noqa: E402
    PaperAudit,
    PaperConfig,
    PaperReward,
    PaperRL,
    PaperSFT,
    check_stages,
)
from pmrlhf.lm_experiments.data.pair_splits import load_pairs_dataset  # noqa: E402

PROMPTS = ["Name a colour.", "Name a fruit.", "Say hello.", "Count to two."]
ANSWERS = [("Blue.", "Banana."), ("Apple.", "Blue."), ("Hello!", "Go away."), ("One, two.", "Ten.")]


def _write_pairs(folder, *, population: bool):
    """A tiny preference data set: train 8 pairs over 4 prompts, test 4 pairs over 2."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, prompts in (("train", range(4)), ("test", range(2))):
        lines = []
        for i in prompts:
            for flip in (False, True) if split == "train" else (False, True):
                good, bad = ANSWERS[i]
                row = {
                    "prompt": [{"role": "user", "content": PROMPTS[i]}],
                    "chosen": [{"role": "assistant", "content": bad if flip else good}],
                    "rejected": [{"role": "assistant", "content": good if flip else bad}],
                }
                if population:
                    row["population_preference"] = 0.3 if flip else 0.7
                lines.append(json.dumps(row))
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _tiny(data, **changes) -> PaperConfig:
    config = PaperConfig(
        data=str(data),
        model="tiny-llama",
        seeds=(0, 1),
        methods=("kl:0.1", "cpm:1:0.1"),
        sft=PaperSFT(steps=2, batch_size=4, lr=1e-3, max_length=64),
        reward=PaperReward(steps=2, batch_size=4, lr=1e-3, max_length=64),
        rl=PaperRL(
            steps=1, prompts_per_step=2, samples_per_prompt=2, max_completion_length=4, lr=1e-2
        ),
        audit=PaperAudit(pairs=4, prompts=2, samples=2, max_new_tokens=4),
    )
    return replace(config, **changes).validate()


def _run_ids(out) -> dict:
    return {
        str(p.parent.relative_to(out)): json.loads(p.read_text())["run"]
        for p in sorted(out.rglob("done.json"))
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(config, out): the whole pipeline run once on the tiny model."""
    from pmrlhf.trl.paper import run_paper

    root = tmp_path_factory.mktemp("paper")
    config = _tiny(_write_pairs(root / "data", population=True))
    out = root / "out"
    run_paper(config, out, progress=False)
    return config, out


def test_config_is_read_strictly_naming_the_key(tmp_path):
    data = _write_pairs(tmp_path / "data", population=False)
    base = {"data": str(data), "model": "tiny-llama"}
    assert PaperConfig.from_dict(base).parsed_methods()[2].name == "cPM b=1 a=0.1"
    with pytest.raises(ValueError, match=r"unknown key 'sefds'.*did you mean 'seeds'"):
        PaperConfig.from_dict({**base, "sefds": [0]})
    with pytest.raises(ValueError, match=r"unknown key 'stesp'.*'steps'"):
        PaperConfig.from_dict({**base, "rl": {"stesp": 3}})
    with pytest.raises(TypeError, match=r"sft.lr must be a number"):
        PaperConfig.from_dict({**base, "sft": {"lr": "fast"}})
    with pytest.raises(ValueError, match=r"cpm needs an alpha"):
        PaperConfig.from_dict({**base, "methods": ["cpm:1"]})
    with pytest.raises(ValueError, match=r"data must name a folder"):
        PaperConfig.from_dict({"model": "tiny-llama"})
    with pytest.raises(ValueError, match=r"save_steps must be an int >= 0, got -1"):
        PaperConfig.from_dict({**base, "save_steps": -1})
    with pytest.raises(ValueError, match=r"unknown stage 'ppo'"):
        check_stages(["sft", "ppo"])
    assert check_stages(["audit", "sft"]) == ("sft", "audit")


def test_pair_folders_with_and_without_the_population_column(tmp_path):
    known = load_pairs_dataset(str(_write_pairs(tmp_path / "a", population=True)))
    assert (len(known.train), len(known.test)) == (8, 4)
    assert known.population["test"] == [0.7, 0.3, 0.7, 0.3]
    unknown = load_pairs_dataset(str(_write_pairs(tmp_path / "b", population=False)), test_limit=2)
    assert unknown.population == {"train": None, "test": None} and len(unknown.test) == 2
    bad = tmp_path / "a" / "test.jsonl"
    lines = bad.read_text().splitlines()
    row = json.loads(lines[1])
    row["population_preference"] = 1.5
    bad.write_text("\n".join([lines[0], json.dumps(row)]) + "\n")
    with pytest.raises(ValueError, match=r"\[test\] row 2: population_preference"):
        load_pairs_dataset(str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"unknown preference data set 'no-such-folder'"):
        load_pairs_dataset("no-such-folder")
    shipped = load_pairs_dataset("pmrlhf/free-text", train_limit=5, test_limit=3)
    assert (len(shipped.train), len(shipped.test), len(shipped.population["test"])) == (5, 3, 3)


def test_the_whole_pipeline_writes_every_stage_and_the_audit(finished):
    config, out = finished
    for name in ("sft", "reward"):
        assert (out / name / "config.json").exists() and (out / name / "done.json").exists()
    reward = json.loads((out / "reward" / "done.json").read_text())
    assert reward["trainer"] == "trl.RewardTrainer" and 0 <= reward["test_accuracy"] <= 1
    assert 0 < reward["pairs_trained_on"] <= reward["pairs"]
    saved = json.loads((out / "reward" / "config.json").read_text())
    assert saved["architectures"] == ["LlamaForSequenceClassification"]
    assert len(saved["id2label"]) == 1  # one output: the reward
    for method in ("KL_b=0.1", "cPM_b=1_a=0.1"):
        for seed in (0, 1):
            assert (out / "rl" / method / f"seed{seed}" / "model.safetensors").exists()
    summary = json.loads((out / "audit" / "summary.json").read_text())
    assert set(summary["policies"]) == {"reference (SFT)", "KL b=0.1", "cPM b=1 a=0.1"}
    kl = summary["policies"]["KL b=0.1"]
    metrics = ["pairs_pmd_vs_reward", "pairs_pmd_vs_population", "mean_reward"]
    metrics += ["kl_to_reference_per_token", "plausible_share", "distinct_1", "distinct_2"]
    for metric in metrics:
        assert len(kl[metric]["seeds"]) == 2 and kl[metric]["low"] <= kl[metric]["mean"], metric
    reference = summary["policies"]["reference (SFT)"]
    assert reference["kl_to_reference_per_token"]["mean"] == pytest.approx(0.0, abs=1e-6)
    paired = {(p["a"], p["b"], p["metric"]) for p in summary["paired"]}
    assert ("KL b=0.1", "cPM b=1 a=0.1", "plausible_share") in paired
    assert summary["reward_model"]["pairs"] == 4 and summary["population_known"]
    for name in ("summary.csv", "pairs.csv", "implied_preferences.png", "implied_preferences.pdf"):
        assert (out / "audit" / name).exists(), name
    assert (out / "audit" / "training_curves.png").exists()
    pairs = (out / "audit" / "pairs.csv").read_text().splitlines()
    assert pairs[0] == "policy,seed,pair,p_policy,p_optimum,p_reward,p_population"
    # 4 test pairs: the reference at both seeds, 2 methods x 2 seeds.
    assert len(pairs) == 1 + 4 * (2 + 2 * 2)
    # The reference is audited at every seed, so each method - reference is paired per seed.
    assert len(reference["plausible_share"]["seeds"]) == 2
    assert ("cPM b=1 a=0.1", "reference (SFT)", "pairs_pmd_vs_population") in paired
    # The theory's prediction: each method's optimum, and each policy's distance to its own.
    optima = summary["optima"]
    assert set(optima) == {"KL b=0.1", "cPM b=1 a=0.1"}
    for name, optimum in optima.items():
        assert 0 <= optimum["pairs_gap_vs_population"] <= 1
        assert 0 <= optimum["reference_pairs_gap_vs_optimum"] <= 1
        assert len(summary["policies"][name]["pairs_gap_vs_optimum"]["seeds"]) == 2
    tokens = summary["reference_tokens"]
    assert {"0.01", "0.1", "0.5"} <= set(tokens)
    shares = [tokens[a]["plausible_tokens"] for a in sorted(tokens, key=float)]
    assert shares == sorted(shares, reverse=True)  # a higher threshold makes fewer plausible
    curves = summary["training"]["KL b=0.1"]
    assert set(curves) == {"0", "1"} and curves["0"]["step"] == [1]
    assert all(math.isfinite(v) for v in curves["0"]["penalty"] + curves["0"]["reward"])


def test_finished_stages_are_skipped_and_a_changed_setting_reruns_what_follows(finished, tmp_path):
    from pmrlhf.trl.paper import run_paper

    config, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    before = _run_ids(out)
    run_paper(config, out, progress=False)
    assert _run_ids(out) == before  # nothing rerun
    # --restart reruns the given stages and what is made from them, nothing before them.
    from pmrlhf.trl.paper import _units, plan

    units = _units(config, out, load_pairs_dataset(config.data).identity)
    assert plan(units, ("sft", "reward", "rl", "audit"), restart=False) == []
    assert plan(units, ("reward", "rl", "audit"), restart=True) == [n for n in units if n != "sft"]
    with pytest.raises(ValueError, match=r"stage rl needs the reward stage"):
        plan(units, ("sft", "rl"), restart=True)  # a new SFT model leaves the reward model stale
    changed = replace(config, rl=replace(config.rl, lr=2e-6), seeds=(0,))
    # The audit alone cannot run on RL runs made with other settings; nothing is written.
    with pytest.raises(ValueError, match=r"stage audit needs the rl stage"):
        run_paper(changed, out, stages=["audit"], progress=False)
    assert _run_ids(out) == before
    run_paper(changed, out, stages=["rl", "audit"], progress=False)
    after = _run_ids(out)
    assert after["sft"] == before["sft"] and after["reward"] == before["reward"]
    assert after["rl/KL_b=0.1/seed0"] != before["rl/KL_b=0.1/seed0"]
    assert after["audit"] != before["audit"]
    summary = json.loads((out / "audit" / "summary.json").read_text())
    assert summary["seeds"] == [0]


def test_a_stopped_stage_resumes_from_its_trl_checkpoint(finished, tmp_path, monkeypatch):
    """save_steps: TRL checkpoints the RL stage; a run stopped after step 1 keeps them, and
    the next run with the same settings continues at step 2 instead of starting again."""
    from pmrlhf.trl.paper import run_paper
    from pmrlhf.trl.rloo import PMRLOOTrainer

    config, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    shutil.rmtree(out / "rl")
    config = replace(config, seeds=(0,), methods=("kl:0.1",), save_steps=1)
    config = replace(config, rl=replace(config.rl, steps=2))
    step = PMRLOOTrainer.training_step

    def stop_at_step_two(self, *args, **kwargs):
        if self.state.global_step == 1:
            raise KeyboardInterrupt("stopped")
        return step(self, *args, **kwargs)

    monkeypatch.setattr(PMRLOOTrainer, "training_step", stop_at_step_two)
    with pytest.raises(KeyboardInterrupt):
        run_paper(config, out, stages=["rl"], progress=False)
    scratch = out / ".trainer" / "rl-KL_b=0.1-seed0"
    assert (scratch / "checkpoint-1").is_dir() and not (out / "rl" / "KL_b=0.1" / "seed0").exists()
    monkeypatch.setattr(PMRLOOTrainer, "training_step", step)
    run_paper(config, out, stages=["rl"], progress=False)
    marker = json.loads((out / "rl" / "KL_b=0.1" / "seed0" / "done.json").read_text())
    assert marker["resumed_from"] == "checkpoint-1"
    assert [e["step"] for e in marker["log_history"] if "reward" in e] == [1, 2]
    assert not scratch.exists()
    # Other settings: a stopped unit's checkpoints are not reused.
    monkeypatch.setattr(PMRLOOTrainer, "training_step", stop_at_step_two)
    other = replace(config, rl=replace(config.rl, lr=5e-3))
    with pytest.raises(KeyboardInterrupt):
        run_paper(other, out, stages=["rl"], progress=False)
    monkeypatch.setattr(PMRLOOTrainer, "training_step", step)
    run_paper(replace(other, rl=replace(other.rl, lr=4e-3)), out, stages=["rl"], progress=False)
    marker = json.loads((out / "rl" / "KL_b=0.1" / "seed0" / "done.json").read_text())
    assert "resumed_from" not in marker


def test_a_stage_too_large_is_refused_before_its_folder_is_written(finished, tmp_path, monkeypatch):
    """The memory guard: an RL step over the model's positions, or any step over the
    machine's memory by estimate, is refused in one line; the stage leaves no folder."""
    from pmrlhf.trl.paper import run_paper

    config, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    shutil.rmtree(out / "rl")
    shutil.rmtree(out / "audit")
    long = replace(config, rl=replace(config.rl, max_completion_length=600))  # 512 positions
    with pytest.raises(ValueError, match=r"rl.max_completion_length .* exceed the model's 512"):
        run_paper(long, out, stages=["rl"], progress=False)
    assert not (out / "rl" / "KL_b=0.1").exists()
    monkeypatch.setattr("pmrlhf._memory.memory_limit_bytes", lambda: 1 << 20)  # 1 MiB
    with pytest.raises(ValueError, match=r"an RL step \(2 prompts x 2 samples.*GiB of memory"):
        run_paper(config, out, stages=["rl"], progress=False)
    assert not (out / "rl" / "KL_b=0.1").exists()
    with pytest.raises(ValueError, match=r"an SFT step \(4 rows of 64 tokens\) needs at least"):
        run_paper(config, tmp_path / "fresh", stages=["sft"], progress=False)
    assert not (tmp_path / "fresh" / "sft").exists()


def test_cli_refuses_bad_input_in_one_line_before_writing(tmp_path, pmrlhf_here):
    data = _write_pairs(tmp_path / "data", population=False)
    config = tmp_path / "paper.yaml"
    config.write_text(f"data: {data}\nmodel: tiny-llama\nrl: {{stesp: 2}}\n")
    status, err = pmrlhf_here("lm", "paper", "--config", config, "--out", tmp_path / "out")
    assert status == 2 and "unknown key 'stesp'" in err and len(err.strip().splitlines()) == 1
    config.write_text(f"data: {data}\nmodel: tiny-llama\n")
    status, err = pmrlhf_here(
        "lm", "paper", "--config", config, "--out", tmp_path / "out", "--stages", "rl"
    )
    assert status == 2 and "stage rl needs the sft stage" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["paper-opt-1.3b", "paper-llama-2-7b"])
def test_shipped_paper_configs_parse_and_run_with_tiny_swaps(name, finished, tmp_path):
    from pmrlhf.trl.paper import run_paper

    path = resources.files("pmrlhf.lm_experiments").joinpath("configs", f"{name}.yaml")
    shipped = PaperConfig.from_file(path)
    assert shipped.data == "Anthropic/hh-rlhf" and shipped.bf16 and shipped.gradient_checkpointing
    assert [m.name for m in shipped.parsed_methods()] == ["KL b=0.1", "KL b=1", "cPM b=1 a=0.1"]
    assert (shipped.lora is not None) == ("llama" in name)
    config, _ = finished
    # The same code path (dtype, bf16 autocast, LoRA merged into each saved model, gradient
    # checkpointing) on the tiny model and the pairs written here: one seed, one method, a
    # step per stage; OPT's (fp32 weights, no LoRA) up to the reward model, Llama's (bf16
    # weights, LoRA) to the audit.
    tiny = replace(
        shipped,
        model="tiny-llama",
        data=config.data,
        seeds=(0,),
        methods=shipped.methods[-1:],
        train_pairs=None,
        test_pairs=None,
        sft=replace(config.sft, steps=1),
        reward=replace(config.reward, steps=1),
        rl=config.rl,
        audit=config.audit,
    ).validate()
    stages = ["sft", "reward"] if "opt" in name else ["sft", "reward", "rl", "audit"]
    result = run_paper(tiny, tmp_path / "out", stages=stages, progress=False)
    assert result["reward"]["trainer"] == "trl.RewardTrainer"
    if "llama" in name:
        policies = result["audit"]["policies"]
        assert policies.keys() == {"reference (SFT)", "cPM b=1 a=0.1"}
        saved = json.loads((tmp_path / "out" / "sft" / "config.json").read_text())
        assert (
            saved["dtype"] == "bfloat16"
            and not (tmp_path / "out" / "sft" / "adapter_config.json").exists()
        )


def test_two_processes_run_the_rl_stage_and_write_once(finished, tmp_path):
    """The RL stage under torchrun (two CPU processes, gloo), as under accelerate launch."""
    config, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    shutil.rmtree(out / "rl")
    settings = config.settings() | {"seeds": [0], "methods": ["kl:0.1"]}
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(settings))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "-m", "pmrlhf.cli", "lm", "paper", "--config", str(path), "--out", str(out),
         "--stages", "rl"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 0, "\n".join(
        line for line in run.stderr.splitlines() if "error" in line.lower()
    )[-3000:]
    marker = json.loads((out / "rl" / "KL_b=0.1" / "seed0" / "done.json").read_text())
    logged = [r for r in marker["log_history"] if "loss" in r]
    assert len(logged) == config.rl.steps  # one process logged each step once
    assert (out / "rl" / "KL_b=0.1" / "seed0" / "model.safetensors").exists()
    assert not (out / ".trainer").exists() or not any((out / ".trainer").iterdir())


def test_a_hub_name_reads_hh_rlhf_transcripts_and_skips_rows_that_are_no_pair(monkeypatch):
    import datasets

    def hh(human, chosen, rejected):
        prompt = f"\n\nHuman: {human}\n\nAssistant:"
        return {"chosen": f"{prompt} {chosen}", "rejected": f"{prompt} {rejected}"}

    rows = [hh("Hi?", "Hello.", "Go."), hh("Sky?", "Blue.", "Red.")]
    broken = {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"}
    loaded = datasets.DatasetDict(
        train=datasets.Dataset.from_list([rows[0], broken, rows[1]]),
        test=datasets.Dataset.from_list(rows),
    )
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name: asked.append(name) or loaded)
    data = load_pairs_dataset("Anthropic/hh-rlhf", test_limit=1)
    assert asked == ["Anthropic/hh-rlhf"] and data.skipped == 1
    assert [p.chosen for p in data.train] == ["Hello.", "Blue."] and len(data.test) == 1
    assert data.train[1].messages == ({"role": "user", "content": "Sky?"},)
    assert data.population == {"train": None, "test": None}
    assert data.identity["limits"] == {"train": None, "test": 1}

    def offline(name):
        raise ConnectionError("Couldn't reach 'no/such' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match=r"could not load 'no/such' from the hub.*Couldn't reach"):
        load_pairs_dataset("no/such")


def test_the_cpu_smoke_config_reads_the_shipped_data_with_smollm2():
    """README's first command of the free-text pipeline: SmolLM2 on pmrlhf/free-text (its
    whole run is measured by hand: about 4 minutes on 2 CPU cores)."""
    path = resources.files("pmrlhf.lm_experiments").joinpath("configs", "paper-smollm2-smoke.yaml")
    config = PaperConfig.from_file(path)
    assert config.model == "smollm2-135m" and config.data == "pmrlhf/free-text"
    data = load_pairs_dataset(config.data)
    assert len(data.train) == 430 and len(data.test) == 145
    assert data.population["test"] is not None and len(data.population["test"]) == 145
