"""``pmrlhf lm audit`` and ``lm pairs``: preference pairs from a synthetic task as HH-RLHF
JSONL, a reward model fitted, saved and loaded back, the implied-preference audit."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from pmrlhf.errors import PmrlhfUserError
from pmrlhf.lm_experiments import audit, load_model, load_task
from pmrlhf.lm_experiments.data.preference_pairs import (
    PreferencePair,
    load_preference_pairs,
    synthetic_pairs,
    write_preference_pairs,
)
from pmrlhf.lm_experiments.train.reward_config import RewardConfig
from pmrlhf.lm_experiments.train.reward_model import (
    load_reward_model,
    pair_margins,
    train_reward_model,
)

FAST = {"prompts": 2, "samples": 3, "max_new_tokens": 4, "progress": False}


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pmrlhf.cli", "lm", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "pairs"  # a folder, as every --out
    result = cli("pairs", "--task", "two_answers", "--per-prompt", "12", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["pairs.jsonl"]
    assert str(out / "pairs.jsonl") in result.stdout
    return out / "pairs.jsonl"


@pytest.fixture(scope="module")
def fitted(pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("fitted")
    rm = RewardConfig(steps=5, batch_size=4, lr=1e-3)
    return out, audit("tiny-llama", pairs_file, out, fit_reward_model=True, rm=rm, **FAST)


def test_pairs_file_is_trl_conversational_of_the_task(pairs_file):
    task = load_task("two_answers")
    lines = pairs_file.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 24 and all(r.keys() == {"prompt", "chosen", "rejected"} for r in rows)
    assert rows[0]["prompt"][-1]["role"] == "user"
    assert rows[0]["chosen"][0]["role"] == "assistant"
    assert load_preference_pairs(pairs_file) == synthetic_pairs(task, 12, rng=0)


@pytest.mark.parametrize(
    ("chosen", "rejected"),
    [("Sure", " Sure"), ("Yes\n\nAssistant: no", "No\n\nHuman: why"), ("  a  ", "a")],
)
def test_written_pairs_read_back_exactly(tmp_path, chosen, rejected):
    pairs = [PreferencePair(({"role": "user", "content": " Hi?"},), chosen, rejected)]
    path = write_preference_pairs(tmp_path / "p.jsonl", pairs)
    assert load_preference_pairs(path) == pairs


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": [], "chosen": [], "rejected": []},
        {"prompt": [{"role": "assistant", "content": "x"}], "chosen": [], "rejected": []},
        {"prompt": [{"role": "user", "content": "x"}], "chosen": "a", "rejected": "b"},
        {
            "prompt": [{"role": "user", "content": "x"}],
            "chosen": [{"role": "user", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        },
    ],
)
def test_malformed_conversational_rows_are_one_line_errors(tmp_path, row):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(PmrlhfUserError, match=r"p.jsonl:1"):
        load_preference_pairs(path)


def test_pairs_out_is_a_folder_not_a_file(pairs_file):
    result = cli("pairs", "--task", "two_answers", "--out", str(pairs_file))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--out" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_loaded_pairs_train_a_reward_model(pairs_file):
    backbone, tokenizer = load_model("tiny-llama", seed=1)
    pairs = load_preference_pairs(pairs_file)  # once a TypeError: cannot unpack
    model, stats = train_reward_model(
        backbone, tokenizer, pairs, RewardConfig(steps=2, batch_size=4), progress=False
    )
    assert stats["heldout_pairs"] == 5 and np.isfinite(stats["train_loss"])
    assert type(model).__name__ == "LlamaForSequenceClassification"
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        train_reward_model(backbone, tokenizer, [("a", "b")] * 2, RewardConfig(), progress=False)


def test_audit_writes_metrics_pairs_and_histogram(fitted):
    out, result = fitted
    data, sampled = result["preference_pairs"], result["sampled_pairs"]
    assert data["pairs"] == 24 and sampled["prompts"] == 2
    for view in (data, sampled):
        assert view["pairwise_pmd"] >= 0 and np.isfinite(view["abs_logodds_gap"])
    assert 0 <= data["abs_preference_gap"] <= 1 and 0 <= data["policy_prefers_chosen"] <= 1
    assert json.loads((out / "audit.json").read_text()) == json.loads(json.dumps(result))
    table = pd.read_csv(out / "audit_pairs.csv")
    assert table.pairs.value_counts().to_dict() == {"preference_pairs": 24, "sampled_pairs": 6}
    assert table.p_policy.between(0, 1).all() and table.p_reward.between(0, 1).all()
    # The table's columns are the metrics' inputs: PMD = mean KL(Bern(p_r) || Bern(p_pi)).
    rows = table[table.pairs == "preference_pairs"]
    p, q = rows.p_reward.to_numpy(), rows.p_policy.to_numpy()
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert kl.mean() == pytest.approx(data["pairwise_pmd"], rel=1e-6)
    assert (out / "audit_implied_preferences.png").stat().st_size > 10_000
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # nothing left over


def test_saved_reward_model_loads_as_a_sequence_classifier(fitted, pairs_file, tmp_path):
    from transformers import AutoModelForSequenceClassification

    out, result = fitted
    folder = out / "reward_model"
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_labels == 1
    model, tokenizer = load_reward_model(folder)
    pairs = load_preference_pairs(pairs_file)
    with torch.no_grad():
        margins = pair_margins(model, tokenizer, pairs).double().numpy()
    implied = 1 / (1 + np.exp(-margins))
    table = pd.read_csv(out / "audit_pairs.csv")
    result_pairs = table[table.pairs == "preference_pairs"].p_reward.to_numpy()
    np.testing.assert_allclose(implied, result_pairs, rtol=1e-6)
    again = audit("tiny-llama", pairs_file, tmp_path, reward_model=folder, **FAST)
    assert again["preference_pairs"] == pytest.approx(result["preference_pairs"], rel=1e-6)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--fit-reward-model", "--reward-model", "x"], "not allowed with"),
        (["--pairs", "{pairs}"], "one of the arguments --reward-model --fit-reward-model"),
        (["--fit-reward-model", "--samples", "1"], "samples must be an int >= 2"),
        (["--reward-model", "/nonexistent"], "no saved model"),
        (["--fit-reward-model", "--model", "gpt-17"], "unknown model"),
        (["--fit-reward-model", "--pairs", "/nonexistent.jsonl"], "does not exist"),
    ],
)
def test_audit_errors_are_one_line_and_write_nothing(
    pairs_file, tmp_path, monkeypatch, pmrlhf_here, args, match
):
    options = {"--model": "tiny-llama", "--pairs": str(pairs_file), "--out": str(tmp_path / "o")}
    flags = []
    for arg, value in zip(args, [*args[1:], None], strict=True):
        if arg in options:
            options[arg] = value.format(pairs=pairs_file)
        elif arg.startswith("--") and (value is None or value.startswith("--")):
            flags.append(arg)
        elif arg.startswith("--"):
            flags += [arg, value]
    monkeypatch.chdir(tmp_path)
    status, stderr = pmrlhf_here("lm", "audit", *[x for kv in options.items() for x in kv], *flags)
    assert status == 2
    assert "Traceback" not in stderr, stderr[-2000:]
    assert match in stderr.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()


def test_audit_needs_exactly_one_reward_model(pairs_file, tmp_path):
    with pytest.raises(ValueError, match="--reward-model DIR.*or --fit-reward-model"):
        audit("tiny-llama", pairs_file, tmp_path / "o", **FAST)
    assert not (tmp_path / "o").exists()


def test_a_causal_lm_folder_is_not_a_reward_model(tmp_path, pairs_file):
    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    with pytest.raises(ValueError, match="not a sequence-classification model"):
        audit("tiny-llama", pairs_file, tmp_path / "o", reward_model=tmp_path / "lm", **FAST)
    assert not (tmp_path / "o").exists()  # refused before anything is written
