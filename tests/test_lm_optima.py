"""Exact optima given the reference, the token-id reward, seeds and intervals."""

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pmrlhf.lm_experiments import OracleReward, load_model, load_task, t_interval
from pmrlhf.lm_experiments.evaluate.optima import (
    mass_upper_bound,
    optimum,
    reference_tree,
    sequence_count,
)
from pmrlhf.lm_experiments.models.sequences import completion_mask, right_pad
from pmrlhf.lm_experiments.train.sft import candidate_pairs, sft_on_pairs
from pmrlhf.lm_experiments.train.sft_config import SFTConfig
from pmrlhf.theory import reference_log_weight

V, EOS, L = 6, 2, 3
PROMPT = [1, 3, 4]
CANDIDATES = [[3, 2], [4, 5, 2], [5, 2]]
REWARDS = np.array([0.3, -0.4, -1.2])
OFF = -2.5


@pytest.fixture(scope="module")
def tiny_vocab_model():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=V, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, eos_token_id=EOS, pad_token_id=EOS,
        bos_token_id=1,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8)  # peaked next-token distributions: some tokens plausible
    return model


def _all_sequences():
    body = [t for t in range(V) if t != EOS]
    for length in range(1, L + 1):
        for head in itertools.product(body, repeat=length - 1):
            yield (*head, EOS)
    yield from itertools.product(body, repeat=L)  # cut at the length cap


@torch.no_grad()
def _brute_force(model, regularizer, beta, alpha):
    """pi*(y) ∝ exp(r(y)/beta) * prod_t w_t over every sequence, by enumeration."""
    sequences = list(_all_sequences())
    log_w, reward = [], []
    for y in sequences:
        ids = torch.tensor([PROMPT + list(y)])
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        token = np.array([logp[len(PROMPT) - 1 + i, t].item() for i, t in enumerate(y)])
        w = (
            0.0
            if regularizer == "pm"
            else reference_log_weight(token, regularizer=regularizer, alpha=alpha).sum()
        )
        log_w.append(w)
        reward.append(REWARDS[CANDIDATES.index(list(y))] if list(y) in CANDIDATES else OFF)
    a = np.array(log_w) + np.array(reward) / beta
    p = np.exp(a - np.logaddexp.reduce(a))
    on = np.array([p[sequences.index(tuple(c))] for c in CANDIDATES])
    return np.append(on, 1 - on.sum()), len(sequences)


@pytest.mark.parametrize(
    "regularizer,beta,alpha",
    [("kl", 0.5, None), ("kl", 0.1, None), ("pm", 1.0, None), ("pm", 0.3, None),
     ("cpm", 1.0, 0.1), ("cpm", 0.3, 0.25)],
)  # fmt: skip
def test_optimum_given_the_reference_equals_brute_force(tiny_vocab_model, regularizer, beta, alpha):
    exact, _ = _brute_force(tiny_vocab_model, regularizer, beta, alpha)
    options = dict(regularizer=regularizer, beta=beta, vocab_size=V, max_len=L)
    full = reference_tree(
        tiny_vocab_model, PROMPT, CANDIDATES, eos_id=EOS, max_len=L, alpha=alpha, expand_all=True
    )
    np.testing.assert_allclose(optimum(REWARDS, OFF, full, **options), exact, atol=1e-7)
    # The plausible tree alone: KL and PM stay exact, cPM is bracketed by its two bounds.
    tree = reference_tree(tiny_vocab_model, PROMPT, CANDIDATES, eos_id=EOS, max_len=L, alpha=alpha)
    low = optimum(REWARDS, OFF, tree, **options)
    high = optimum(REWARDS, OFF, tree, **options, upper=True)
    if regularizer != "cpm":
        np.testing.assert_allclose(low, exact, atol=1e-7)
        np.testing.assert_allclose(high, exact, atol=1e-7)
    else:
        assert tree.nodes < full.nodes  # fewer forward passes than the full enumeration
        on = slice(0, len(CANDIDATES))
        assert np.all(high[on] <= exact[on] + 1e-9) and np.all(exact[on] <= low[on] + 1e-9)
        assert low[-1] <= exact[-1] + 1e-9 <= high[-1] + 2e-9


def test_sequence_count_matches_enumeration():
    assert math.exp(sequence_count(V, L)) == pytest.approx(len(list(_all_sequences())))


def test_mass_bound_holds_at_the_worst_node():
    # k = ceil(1/alpha) - 1 tokens just above alpha, the rest of the mass implausible.
    alpha = 0.3
    assert mass_upper_bound(alpha, 0) == 1
    assert mass_upper_bound(alpha, 2) == pytest.approx((1 + 3 * 0.7) ** 2)


def test_optima_stay_finite_for_extreme_rewards_and_small_beta(tiny_vocab_model):
    tree = reference_tree(tiny_vocab_model, PROMPT, CANDIDATES, eos_id=EOS, max_len=L, alpha=0.1)
    for regularizer in ("kl", "pm", "cpm"):
        best = optimum(
            np.array([1e4, 0.0, -1e4]),
            -2e4,
            tree,
            regularizer=regularizer,
            beta=1e-6,
            vocab_size=V,
            max_len=L,
        )
        assert np.all(np.isfinite(best)) and best.sum() == pytest.approx(1.0)
        assert best[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama", seed=0)


def test_reward_matches_token_ids_not_text(tiny):
    _, tok = tiny
    task = load_task("three_answers")
    reward = OracleReward(task, tok)
    summer = tok("Summer", add_special_tokens=False).input_ids
    spaced = tok(" Summer", add_special_tokens=False).input_ids
    assert spaced != summer  # another tokenisation of the same answer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    rows = [summer + [eos], spaced + [eos], summer + [17, 18], summer + [eos, 17, 18]]
    ids, _ = right_pad(rows, pad)
    mask, _ = completion_mask(ids, eos)
    got = reward(np.zeros(len(rows), int), ids, mask).tolist()
    r, off = task.oracle_rewards()[0][0], task.off_candidate_reward(0)
    # canonical + end: the candidate; leading space, cut without an end: off-candidate;
    # tokens after the end token do not count.
    assert got == pytest.approx([r, off, off, r])


def test_oracle_rewards_stay_finite_for_extreme_utilities(tmp_path):
    path = tmp_path / "extreme.yaml"
    path.write_text(
        "prompts:\n- messages: [{role: user, content: pick}]\n  candidates: [A, B]\n"
        "  population: {weights: [1.0], utilities: [[1.0e6, -1.0e6]]}\n"
    )
    task = load_task(path)
    rewards = task.oracle_rewards()[0]
    assert np.all(np.isfinite(rewards)) and rewards[0] == pytest.approx(0.0)
    assert math.isfinite(task.off_candidate_reward(0))


@pytest.mark.parametrize(
    "weights,match",
    [("[0.5, 0.5]", "entries"), ("[0.7, 0.7, -0.4]", "non-negative"),
     ("[0.5, 0.2, 0.2]", "sum to 1"), ("[a, b, c]", "sft_weights")],
)  # fmt: skip
def test_sft_weights_are_validated(tmp_path, weights, match):
    path = tmp_path / "task.yaml"
    path.write_text(
        "prompts:\n- messages: [{role: user, content: pick}]\n  candidates: [A, B, C]\n"
        f"  population: {{weights: [1.0], utilities: [[0, 0, 0]]}}\n  sft_weights: {weights}\n"
    )
    with pytest.raises(ValueError, match=match):
        load_task(path)


def test_biased_task_gives_sft_its_weights():
    task = load_task("biased_reference")
    pairs, weights = candidate_pairs(task)
    assert len(pairs) == 12 and weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights[:3] * 4, task.prompts[0].sft_weights)


def test_biased_task_disagrees_with_its_annotators_on_every_prompt():
    """The matched-beta test's design: the SFT weights differ from the preferences on
    every prompt, none below 0.17 (plausible at alpha 0.1), the lowest below 0.2."""
    for prompt in load_task("biased_reference").prompts:
        weights = np.asarray(prompt.sft_weights)
        assert 0.5 * np.abs(weights - prompt.target).sum() > 0.1
        assert weights.min() >= 0.17 and weights.min() < 0.2


def test_the_seed_reaches_sft_batches():
    losses = {}
    for seed in (0, 0, 1):
        model, tok = load_model("tiny-llama", seed=0)
        pairs, weights = candidate_pairs(load_task("three_answers"))
        config = SFTConfig(steps=2, batch_size=4, lr=1e-3)  # 12 pairs > 4: batches drawn
        losses.setdefault(seed, []).append(
            sft_on_pairs(model, tok, pairs, config, seed=seed, weights=weights, progress=False)
        )
    assert losses[0][0] == losses[0][1] and losses[0][0] != losses[1][0]


def test_t_interval_matches_scipy():
    values = [0.31, 0.35, 0.29, 0.4]
    lo, hi = t_interval(values)
    expected = scipy.stats.t.interval(0.95, 3, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert (lo, hi) == pytest.approx(expected)
    assert all(math.isnan(v) for v in t_interval([0.3]))
    with pytest.raises(ValueError, match="values"):
        t_interval([])
    with pytest.raises(ValueError, match="finite"):
        t_interval([0.1, float("nan")])
