"""Steps larger than the machine or the model are refused before any work (pmrlhf._memory)."""

import copy
import time

import pytest

from pmrlhf import _memory
from pmrlhf.errors import PmrlhfUserError
from pmrlhf.lm_experiments import OracleReward, RLConfig, load_model, load_task, train_rl

# SmolLM2-135M's shape (model_shape of the loaded model).
SMOLLM2 = {"params": 134_515_008, "hidden": 576, "layers": 30, "vocab": 49_152, "kv": 192}


def _train(limit=None, monkeypatch=None, **rl):
    model, tok = load_model("tiny-llama", seed=0)
    task = load_task("three_answers")
    if limit is not None:
        monkeypatch.setattr(_memory, "memory_limit_bytes", lambda: limit)
    config = RLConfig(**{"steps": 1, "lr": 1e-3, "samples_per_prompt": 2, **rl})
    started = time.perf_counter()
    with pytest.raises(PmrlhfUserError) as error:
        train_rl(
            model, copy.deepcopy(model), tok, task, OracleReward(task, tok), config, seed=0,
            progress=False,
        )  # fmt: skip
    assert time.perf_counter() - started < 1.0  # refused before any step
    message = str(error.value)
    assert len(message.splitlines()) == 1
    return message


def test_absurd_sample_counts_are_refused_with_estimate_and_limit(monkeypatch):
    with pytest.raises(PmrlhfUserError, match="at most 4096"):
        RLConfig(samples_per_prompt=100_000_000).validate()  # before anything is written
    message = _train(limit=1 << 30, monkeypatch=monkeypatch, samples_per_prompt=4096)
    assert "GiB of memory by estimate" in message and "this machine's 1.0 GiB" in message


def test_a_step_over_a_small_machine_is_refused(monkeypatch):
    message = _train(limit=64 << 20, monkeypatch=monkeypatch, samples_per_prompt=64)
    assert "64 samples" in message and "0.1 GiB" in message


def test_more_new_tokens_than_the_model_has_positions_are_refused():
    message = _train(max_new_tokens=100_000)
    assert "rl.max_new_tokens" in message and "512 positions" in message


def test_the_default_step_is_admitted_and_its_estimate_is_a_lower_bound():
    # The default comparison's step (4 prompts of <= 35 tokens x 24 samples, 3 new tokens)
    # peaked at 4.9 GB of resident memory on the machine the README's results came from.
    estimate = _memory.rl_step_bytes(
        SMOLLM2, rows=96, prompts=4, prompt_tokens=35, new_tokens=3, reference=True
    )
    assert 2.5e9 < estimate < 4.9e9
    _memory.check_fits(estimate, "the default step", limit=8 << 30)


@pytest.mark.parametrize("key", ["rows", "prompts", "prompt_tokens", "new_tokens"])
def test_the_estimate_grows_with_every_size(key):
    sizes = {"rows": 8, "prompts": 2, "prompt_tokens": 30, "new_tokens": 4}
    small = _memory.rl_step_bytes(SMOLLM2, **sizes, reference=False)
    large = _memory.rl_step_bytes(SMOLLM2, **{**sizes, key: sizes[key] * 2}, reference=False)
    assert large > small
    assert _memory.rl_step_bytes(SMOLLM2, **sizes, reference=True) > small


def test_the_memory_limit_is_read():
    limit = _memory.memory_limit_bytes()
    assert limit is None or limit > 1 << 28


def test_a_loss_that_overflows_stops_training_before_the_update(tmp_path):
    model, tok = load_model("tiny-llama", seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    task = load_task("three_answers")
    config = RLConfig(steps=2, lr=1e-3, samples_per_prompt=2, regularizer="kl", beta=1e300)
    with pytest.raises(PmrlhfUserError, match="diverged at step 1.*rl.beta 1e\\+300"):
        train_rl(
            model, copy.deepcopy(model), tok, task, OracleReward(task, tok), config, seed=0,
            run_dir=tmp_path, progress=False,
        )  # fmt: skip
    for a, b in zip(before, model.parameters(), strict=True):
        assert (a == b).all()  # no update happened
    assert not (tmp_path / "checkpoint").exists()  # and no checkpoint of it


def test_a_learning_rate_of_one_or_more_is_refused():
    with pytest.raises(PmrlhfUserError, match="rl.lr must be < 1"):
        RLConfig(lr=1e300).validate()


def test_rewards_that_overflow_float32_are_refused(tmp_path):
    task_file = tmp_path / "big.yaml"
    task_file.write_text(
        "name: big\nprompts:\n  - messages: [{role: user, content: 'Pick one: A or B.'}]\n"
        "    candidates: [A, B]\n    population: {weights: [1.0], utilities: [[1e300, -1e300]]}\n"
    )
    model, tok = load_model("tiny-llama", seed=0)
    task = load_task(str(task_file))
    config = RLConfig(steps=1, lr=1e-3, samples_per_prompt=2, regularizer="kl")
    with pytest.raises(PmrlhfUserError, match="reward is not finite"):
        train_rl(
            model, copy.deepcopy(model), tok, task, OracleReward(task, tok), config, seed=0,
            progress=False,
        )  # fmt: skip
