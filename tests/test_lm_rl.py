"""The RL loop and checkpoint/resume, with tiny random models (the ``pmrlhf lm run`` CLI:
test_lm_run_cli.py)."""

import copy
import json

import pytest
import torch

from pmrlhf.lm_experiments import OracleReward, RLConfig, load_model, load_task, train_rl
from pmrlhf.lm_experiments.models.sequences import (
    completion_mask,
    encode_prompt,
    left_pad,
    pick,
    prompt_prefix,
    sample_shared,
    sample_with_logits,
    shared_prompt_logits,
    shared_prompt_logprobs,
    token_logprobs,
)
from pmrlhf.lm_experiments.train import rl, rl_plumbing

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


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-opt"])
def test_sampling_pass_logits_are_the_gradient_pass_logits(model_name):
    # The RL step reuses the sampling pass (one token at a time, with its graph) as its
    # first gradient pass: same completions, same log pi, same gradients as running the
    # policy again on the sampled completions.
    model, tok = load_model(model_name, seed=3)
    task = load_task("three_answers")
    prompts = [encode_prompt(tok, p.messages) for p in task.prompts]
    p_ids, p_mask = left_pad(prompts, tok.pad_token_id)
    options = dict(
        samples=3, max_new_tokens=4, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
        temperature=0.7,
    )  # fmt: skip
    plain = sample_shared(
        model, p_ids, p_mask, generator=torch.Generator().manual_seed(0), **options
    )
    completion, logits = sample_with_logits(
        model, p_ids, p_mask, generator=torch.Generator().manual_seed(0), **options
    )
    assert torch.equal(completion, plain)  # the same draws
    c_mask, _ = completion_mask(completion, tok.eos_token_id)
    kept = pick(logits, completion, c_mask)
    kept.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    again = shared_prompt_logprobs(model, p_ids, p_mask, completion, c_mask)
    again.sum().backward()
    torch.testing.assert_close(kept, again, rtol=1e-5, atol=1e-5)
    for a, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-5)


def test_rl_step_with_the_sampling_pass_reused_trains_as_with_a_second_pass(monkeypatch):
    first, reused = _train("cpm", steps=1)
    monkeypatch.setattr(rl_plumbing, "checkpointing_on", lambda model: True)  # the second-pass path
    second, again = _train("cpm", steps=1)
    for key in ("loss", "penalty", "expected_penalty", "kl_to_ref"):
        assert first[0][key] == pytest.approx(second[0][key], rel=1e-5, abs=1e-6)
    # Adam's first step moves each weight by about lr = 1e-3 times the sign of its
    # gradient, so weights whose gradient is rounding noise may differ by part of a step;
    # the gradients themselves agree to 1e-5 (the test above).
    for a, b in zip(reused.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_sample_with_logits_refuses_a_model_without_cache():
    model, tok = load_model("tiny-llama", seed=3)
    model.gradient_checkpointing_enable()
    model.train()
    with pytest.raises(ValueError, match="model"):
        sample_with_logits(
            model, torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.long), samples=2,
            max_new_tokens=2, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
            generator=torch.Generator(),
        )  # fmt: skip


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
    from pmrlhf.lm_experiments.train.rloo_estimators import lr_factor

    config = RLConfig(steps=10, lr=1.0, warmup_steps=3, lr_final=0.1)
    factors = [lr_factor(config, s) for s in range(10)]
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
    clock = iter(range(0, 10_000, 40))  # each reading of the clock: 40 s later
    monkeypatch.setattr(rl_plumbing, "_clock", lambda: next(clock))
    steps, save = [], rl_plumbing.save_checkpoint
    monkeypatch.setattr(
        rl_plumbing,
        "save_checkpoint",
        lambda folder, step, *a, **k: steps.append(step) or save(folder, step, *a, **k),
    )
    _train("pm", run_dir=tmp_path, steps=3, checkpoint_minutes=minutes)
    assert steps == saved


def test_checkpoint_staging_left_by_a_kill_is_cleaned_up(tmp_path):
    from pmrlhf.lm_experiments.train.checkpoint import remove_checkpoint_staging

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


def test_an_rl_step_runs_the_policy_twice_less_when_the_sampling_pass_is_reused(monkeypatch):
    # The second pass is a prefill and one call over the completions: two forward calls.
    def calls():
        model, tok = load_model("tiny-llama", seed=0)
        ref = copy.deepcopy(model).eval()
        task = load_task("three_answers")
        count = [0]
        model.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
        config = RLConfig(**{**FAST, "steps": 1, "regularizer": "pm", "max_new_tokens": 3})
        train_rl(model, ref, tok, task, OracleReward(task, tok), config, seed=0, progress=False)
        return count[0]

    reused = calls()
    monkeypatch.setattr(rl_plumbing, "checkpointing_on", lambda model: True)
    assert calls() == reused + 2


@pytest.mark.parametrize("model_name", ["tiny-llama", "tiny-opt"])
def test_a_stored_prompt_prefix_gives_the_same_logits_and_stays_unchanged(model_name):
    model, tok = load_model(model_name, seed=2)
    model.eval()
    task = load_task("three_answers")
    p_ids, p_mask = left_pad([encode_prompt(tok, p.messages) for p in task.prompts], 0)
    prefix = prompt_prefix(model, p_ids, p_mask)
    for seed in (0, 1):  # the same prefix serves two batches of completions
        completion = sample_shared(
            model, p_ids, p_mask, samples=3, max_new_tokens=4, eos_id=tok.eos_token_id,
            pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        c_mask, _ = completion_mask(completion, tok.eos_token_id)
        with torch.no_grad():
            fresh = shared_prompt_logits(model, p_ids, p_mask, completion, c_mask)
            stored = shared_prompt_logits(model, p_ids, p_mask, completion, c_mask, prefix=prefix)
        torch.testing.assert_close(stored, fresh, rtol=0, atol=0)


def test_the_reference_runs_its_prompts_once_per_run_not_once_per_step():
    def reference_calls(steps):
        model, tok = load_model("tiny-llama", seed=0)
        ref = copy.deepcopy(model).eval()
        task = load_task("three_answers")
        count = [0]
        ref.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
        config = RLConfig(**{**FAST, "steps": steps, "regularizer": "kl", "max_new_tokens": 3})
        train_rl(model, ref, tok, task, OracleReward(task, tok), config, seed=0, progress=False)
        return count[0]

    # One prefill in all, then one call over each step's completions.
    assert reference_calls(3) - reference_calls(1) == 2


def test_a_run_with_prompts_drawn_per_step_matches_the_reference_pass_without_prefix(
    monkeypatch,
):
    # Steps that draw other prompts recompute the reference's prompt pass: the run is the
    # run it was when every step recomputed it.
    def run():
        history, model = _train("kl", steps=3, prompts_per_step=2, max_new_tokens=3)
        return history, [p.detach().clone() for p in model.parameters()]

    history, weights = run()
    monkeypatch.setattr(rl, "prompt_prefix", lambda *a: None)  # prefix=None: recompute
    history_again, weights_again = run()
    assert [r["kl_to_ref"] for r in history] == [r["kl_to_ref"] for r in history_again]
    for a, b in zip(weights, weights_again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
