"""Tasks, models and exact evaluation of the LM layer, with tiny random models."""

import json

import numpy as np
import pytest
import torch

from pmrlhf.lm_experiments import evaluate_candidates, load_model, load_task
from pmrlhf.lm_experiments.data.task_files import BUILTIN_TASKS
from pmrlhf.lm_experiments.models.sequences import (
    candidate_logprobs,
    completion_mask,
    encode_prompt,
    encode_response,
    left_pad,
    right_pad,
    token_logprobs,
)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama", seed=0)


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_builtin_tasks_load_and_targets_sum_to_one(name):
    task = load_task(name)
    assert task.prompts
    for prompt, reward in zip(task.prompts, task.oracle_rewards(), strict=True):
        np.testing.assert_allclose(prompt.target.sum(), 1.0)
        np.testing.assert_allclose(np.exp(reward) / np.exp(reward).sum(), prompt.target)
        assert task.off_candidate_reward(0) < reward.min()


def test_default_task_is_60_30_10():
    np.testing.assert_allclose(
        load_task("three_answers").prompts[0].target, [0.6, 0.3, 0.1], atol=1e-5
    )


def _write(tmp_path, data, name="task.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


GOOD = {
    "name": "t",
    "prompts": [
        {
            "messages": [{"role": "user", "content": "A or B?"}],
            "candidates": ["A", "B"],
            "population": {"weights": [1.0], "utilities": [[0.0, 1.0]]},
        }
    ],
}


def test_task_file_roundtrip(tmp_path):
    task = load_task(_write(tmp_path, GOOD))
    assert task.prompts[0].candidates == ("A", "B")
    assert load_task(_write(tmp_path, task.to_dict(), "again.json")).to_dict() == task.to_dict()


@pytest.mark.parametrize(
    "mutate,match",
    [
        (
            lambda d: d["prompts"][0]["population"].update(utilities=[[0.0, 1.0, 2.0]]),
            "3 items but there are 2",
        ),
        (lambda d: d.update(prompts=[]), "prompts"),
        (lambda d: d["prompts"][0].update(candidates=["A"]), "candidates"),
        (lambda d: d["prompts"][0].update(candidates=["A", "A"]), "duplicates"),
        (lambda d: d["prompts"][0]["population"].update(weights=[0.5]), "weights"),
        (lambda d: d["prompts"][0].update(messages=[{"text": "hi"}]), "messages"),
        (
            lambda d: d["prompts"][0]["messages"][0].update(role=7),
            r"prompts\[0\]\.messages\[0\]\.role must be a string",
        ),
        (
            lambda d: d["prompts"][0]["messages"][0].update(content=None),
            r"prompts\[0\]\.messages\[0\]\.content must be a string",
        ),
        (
            lambda d: d["prompts"][0]["population"].update(weights=["a"]),
            r"prompts\[0\]\.population\.weights must be",
        ),
        (
            lambda d: d["prompts"][0]["population"].update(utilities=[[0.0, float("nan")]]),
            r"prompts\[0\]\.population\.utilities must be finite",
        ),
        (lambda d: d["prompts"][0].pop("population"), r"prompts\[0\]\.population must be"),
        (lambda d: d.update(off_candidate_margin=float("nan")), "off_candidate_margin"),
        (lambda d: d.update(off_candidate_margin=float("inf")), "off_candidate_margin"),
    ],
)
def test_malformed_task_files_raise_naming_the_problem(tmp_path, mutate, match):
    data = json.loads(json.dumps(GOOD))
    mutate(data)
    with pytest.raises(ValueError, match=match):
        load_task(_write(tmp_path, data))


@pytest.mark.parametrize("margin", [".nan", ".inf", "-.inf", "0"])
def test_yaml_task_refuses_a_margin_that_is_not_positive_and_finite(tmp_path, margin):
    import yaml

    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(GOOD) + f"off_candidate_margin: {margin}\n")
    with pytest.raises(ValueError, match="off_candidate_margin must be a positive finite"):
        load_task(path)


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        load_task("no_such_task")
    with pytest.raises(FileNotFoundError):
        load_task(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompts: [unclosed")
    with pytest.raises(ValueError, match="could not be parsed"):
        load_task(bad)


def test_unknown_model_name_raises():
    with pytest.raises(ValueError, match="unknown model"):
        load_model("gpt-17-turbo")
    with pytest.raises(ValueError, match="dtype"):
        load_model("tiny-llama", dtype="float8")


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
def test_tiny_models_are_deterministic_given_the_seed(name):
    a, _ = load_model(name, seed=3)
    b, _ = load_model(name, seed=3)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka


def test_completion_mask_keeps_the_first_end_token():
    completion = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]])
    mask, finished = completion_mask(completion, 2)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]] and finished.tolist() == [True, False]


def test_token_logprobs_ignore_left_padding(tiny):
    model, tok = tiny
    prompt = encode_prompt(tok, [{"role": "user", "content": "Hello there"}])
    response = encode_response(tok, "Hi")
    alone = token_logprobs(
        model, *left_pad([prompt], tok.pad_token_id), *right_pad([response], tok.pad_token_id)
    )
    longer = encode_prompt(tok, [{"role": "user", "content": "A much longer question, padded"}])
    p_ids, p_mask = left_pad([prompt, longer], tok.pad_token_id)
    c_ids, c_mask = right_pad([response, response], tok.pad_token_id)
    batched = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-opt"])
def test_token_logprobs_match_the_textbook_chain_rule(name):
    """Against the plain definition: full logits, log_softmax, gather, token by token."""
    model, tok = load_model(name, seed=1)
    model.eval()
    p_ids, p_mask = left_pad(
        [encode_prompt(tok, [{"role": "user", "content": t}]) for t in ("Hi", "Why is it so?")],
        tok.pad_token_id,
    )
    c_ids, c_mask = right_pad(
        [encode_response(tok, "Fine thanks"), encode_response(tok, "No")], tok.pad_token_id
    )
    fast = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    for row in range(2):
        prompt = p_ids[row][p_mask[row].bool()]
        completion = c_ids[row][c_mask[row].bool()]
        ids = torch.cat([prompt, completion])[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        expected = [logp[len(prompt) - 1 + t, completion[t]] for t in range(len(completion))]
        torch.testing.assert_close(
            fast[row, : len(completion)].double(), torch.stack(expected), atol=1e-4, rtol=1e-4
        )
        assert (fast[row, len(completion) :] == 0).all()


def test_candidate_logprobs_match_one_by_one_scoring(tiny):
    model, tok = tiny
    task = load_task("three_answers")
    scores = candidate_logprobs(model, tok, task.prompts[:2])
    prompt = task.prompts[1]
    one = token_logprobs(
        model,
        *left_pad([encode_prompt(tok, prompt.messages)], tok.pad_token_id),
        *right_pad([encode_response(tok, prompt.candidates[2])], tok.pad_token_id),
    ).sum()
    assert float(scores[1][2]) == pytest.approx(float(one.detach()), abs=1e-4)


def test_evaluation_metrics_are_consistent(tiny):
    model, tok = tiny
    result = evaluate_candidates(model, tok, load_task("two_answers"))
    assert 0 <= result["coverage"] <= 1
    for prompt in result["prompts"]:
        assert sum(prompt["distribution"]) == pytest.approx(1.0)
        assert sum(prompt["mass"]) == pytest.approx(prompt["coverage"])
    assert 0 <= result["pairwise_abs_gap"] <= 1
    assert result["target_minority_mass"] == pytest.approx(0.45)
    assert result["pairwise_pmd"] >= 0 and result["kl_to_target"] >= 0


def test_preference_loaders_read_both_layouts():
    from pathlib import Path

    from pmrlhf.lm_experiments.data.preference_pairs import load_preference_pairs

    fixtures = Path(__file__).parent / "fixtures"
    hh = load_preference_pairs(fixtures / "hh_rlhf.jsonl")
    assert hh[1].messages[-1] == {"role": "user", "content": "Tell me a fruit."}
    assert [m["role"] for m in hh[1].messages] == ["user", "assistant", "user"]
    assert (hh[1].chosen, hh[1].rejected) == ("An apple.", "No.")
    tldr = load_preference_pairs(fixtures / "tldr.jsonl", limit=1)
    assert len(tldr) == 1 and tldr[0].rejected == "cats"


@pytest.mark.parametrize(
    "content,match",
    [
        ("", "holds no pairs"),
        ("{not json}\n", ":1: not valid JSON"),
        ('{"chosen": "a"}\n', "string 'chosen' and 'rejected'"),
        ('{"chosen": "\\n\\nHuman: x\\n\\nAssistant: a", "rejected": "other"}\n', "share a prompt"),
    ],
)
def test_preference_loader_rejects_malformed_files(tmp_path, content, match):
    from pmrlhf.lm_experiments.data.preference_pairs import load_preference_pairs

    path = tmp_path / "pairs.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_preference_pairs(path)
    with pytest.raises(FileNotFoundError):
        load_preference_pairs(tmp_path / "missing.jsonl")


def test_reward_model_learns_the_population_order(tiny):
    from pmrlhf.lm_experiments.data.preference_pairs import synthetic_pairs
    from pmrlhf.lm_experiments.train.reward_config import RewardConfig
    from pmrlhf.lm_experiments.train.reward_model import (
        score_responses,
        train_reward_model,
    )

    model, tok = load_model("tiny-llama", seed=1)
    task = load_task("two_answers")
    pairs = synthetic_pairs(task, 200, rng=0)
    rm, stats = train_reward_model(
        model, tok, pairs, RewardConfig(steps=40, lr=3e-3, batch_size=16), progress=False
    )
    assert stats["heldout_pairs"] == 80 and stats["train_loss"] < 0.75
    scores = score_responses(rm, tok, task.prompts[0].messages, list(task.prompts[0].candidates))
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    with pytest.raises(ValueError, match="pairs"):
        train_reward_model(model, tok, pairs[:1], RewardConfig())


def test_freeform_evaluation_on_sampled_pairs(tiny):
    from pmrlhf.lm_experiments.evaluate.freeform import (
        distinct_n,
        evaluate_freeform,
        implied_preference_figure,
    )

    model, tok = tiny
    prompts = [[{"role": "user", "content": "Say something."}], [{"role": "user", "content": "Hi"}]]
    result = evaluate_freeform(
        model, tok, prompts, lambda i, text: float(len(text)), samples=3, max_new_tokens=4
    )
    assert len(result["implied"]["policy"]) == 2 * 3  # 3 pairs per prompt
    assert result["pairwise_pmd"] >= 0 and result["entropy_per_token"] > 0
    assert 0 <= result["distinct_1"] <= 1
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert implied_preference_figure({"policy": result}).axes
    with pytest.raises(ValueError, match="samples"):
        evaluate_freeform(model, tok, prompts, lambda i, t: 0.0, samples=1)
