"""The theory's prediction in ``lm paper``'s audit: each method's optimum on preference
pairs (pmrlhf.trl.paper_optima, pmrlhf.lm_experiments.evaluate.pairs.pair_log_weights),
checked against the closed forms and against a second, per-pair forward route."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pmrlhf.lm_experiments.data.preference_pairs import PreferencePair
from pmrlhf.lm_experiments.evaluate.pairs import pair_log_weights, pair_logprobs
from pmrlhf.lm_experiments.models.loading import load_model
from pmrlhf.lm_experiments.models.sequences import (
    encode_prompt,
    encode_response,
    left_pad,
    right_pad,
    token_logprobs,
)
from pmrlhf.theory.closed_forms import optimal_policy
from pmrlhf.trl.paper_optima import distance_to_optimum, optimum_logodds, pair_scores

PAIRS = [
    PreferencePair(
        ({"role": "user", "content": "Name a fruit."},), "An apple.", "A pear, I think."
    ),
    PreferencePair(({"role": "user", "content": "Why rest?"},), "Because sleep helps.", "Rest."),
    PreferencePair(({"role": "user", "content": "Name a fruit."},), "Plums", "Grapes are sweet."),
]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("tiny-llama", seed=0)


def _one_pair_token_logprobs(model, tokenizer, pair) -> list[np.ndarray]:
    """Each response's token log-probabilities, one response at a time (no shared prompt)."""
    out = []
    for response in (pair.chosen, pair.rejected):
        p_ids, p_mask = left_pad([encode_prompt(tokenizer, pair.messages)], tokenizer.pad_token_id)
        c_ids, c_mask = right_pad([encode_response(tokenizer, response)], tokenizer.pad_token_id)
        with torch.no_grad():
            lp = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)[0]
        out.append(lp[c_mask[0].bool()].double().numpy())
    return out


def test_log_weights_are_the_reference_log_probabilities_summed_as_each_regularizer_says(tiny):
    model, tokenizer = tiny
    tokens = [_one_pair_token_logprobs(model, tokenizer, pair) for pair in PAIRS]
    alpha = float(np.exp(np.median(np.concatenate([t for pair in tokens for t in pair]))))
    methods = {"kl": ("kl", None), "pm": ("pm", None), "cpm": ("cpm", alpha)}
    methods |= {"cpm_high": ("cpm", 0.999999), "cpm_low": ("cpm", 1e-12)}
    got = pair_log_weights(model, tokenizer, PAIRS, methods=methods, alphas=(alpha, 0.5))
    log_w = got["log_w"]
    # KL: log pi_ref of each response, as the audit's own pair_logprobs gives it.
    np.testing.assert_allclose(log_w["kl"], pair_logprobs(model, tokenizer, PAIRS), rtol=1e-5)
    np.testing.assert_array_equal(got["log_ref"], log_w["kl"])
    np.testing.assert_array_equal(log_w["pm"], 0.0)
    # cPM: the implausible tokens' log-probabilities only, by a per-response forward.
    expected = [[t[t <= np.log(alpha)].sum() for t in pair] for pair in tokens]
    np.testing.assert_allclose(log_w["cpm"], expected, rtol=1e-4, atol=1e-4)
    # At the ends of (0, 1) cPM is KL (nothing plausible) and PM (everything plausible).
    np.testing.assert_allclose(log_w["cpm_high"], log_w["kl"])
    np.testing.assert_array_equal(log_w["cpm_low"], 0.0)
    described = got["tokens"][alpha]
    share = np.mean(np.concatenate([t for pair in tokens for t in pair]) > np.log(alpha))
    assert described["plausible_tokens"] == pytest.approx(share)
    # Not bounded by 1: cPM can widen a pair's odds (the cliff of docs/theory.md §4).
    w, ref = log_w["cpm"], log_w["kl"]
    kept = np.abs(w[:, 0] - w[:, 1]).mean() / np.abs(ref[:, 0] - ref[:, 1]).mean()
    assert described["reference_odds_kept"] == pytest.approx(kept)
    assert got["tokens"][0.5]["plausible_tokens"] <= described["plausible_tokens"]


@given(
    reward=st.lists(st.floats(-5, 5), min_size=2, max_size=2),
    ref=st.floats(0.01, 0.99),
    beta=st.floats(0.05, 5),
    regularizer=st.sampled_from(["kl", "pm", "cpm"]),
)
def test_optimum_log_odds_are_those_of_the_closed_form_optimum_on_two_responses(
    reward, ref, beta, regularizer
):
    """On a space of two responses the closed form's pairwise log-odds are the formula's."""
    ref = np.array([ref, 1 - ref])
    alpha = 0.3 if regularizer == "cpm" else None
    policy = optimal_policy(
        np.array(reward), regularizer=regularizer, beta=beta, ref=ref, alpha=alpha
    )
    log_w = np.log(ref) if regularizer == "kl" else np.zeros(2)
    if regularizer == "cpm":
        log_w = np.where(ref > alpha, 0.0, np.log(ref))
    got = optimum_logodds(np.array([reward[0] - reward[1]]), log_w[None, :], beta=beta)
    assert got[0] == pytest.approx(np.log(policy[0]) - np.log(policy[1]), abs=1e-6)


def test_pm_at_beta_one_matches_the_reward_model_and_kl_keeps_the_reference_odds():
    rng = np.random.default_rng(0)
    margins = rng.normal(size=50)
    log_ref = -rng.uniform(5, 60, size=(50, 2))
    targets = {"reward": margins, "population": None}
    pm = pair_scores(optimum_logodds(margins, np.zeros((50, 2)), beta=1.0), targets)
    assert pm["pairs_pmd_vs_reward"] == pytest.approx(0.0, abs=1e-12)
    assert pm["pairs_gap_vs_reward"] == pytest.approx(0.0, abs=1e-12)
    kl = optimum_logodds(margins, log_ref, beta=1.0)
    np.testing.assert_allclose(kl - margins, log_ref[:, 0] - log_ref[:, 1])
    # A policy at its optimum is at distance 0; the reference is not, unless r is flat.
    assert distance_to_optimum(kl, kl)["pairs_gap_vs_optimum"] == pytest.approx(0.0)
    assert distance_to_optimum(log_ref[:, 0] - log_ref[:, 1], kl)["pairs_gap_vs_optimum"] > 0


def test_optimum_log_odds_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="log_w must have shape"):
        optimum_logodds(np.zeros(3), np.zeros((2, 2)), beta=1.0)


def test_the_histogram_refuses_a_bad_column_count():
    from pmrlhf.lm_experiments.evaluate.freeform import implied_preference_figure

    view = {"implied": {"policy": [0.5], "reward": [0.5]}, "pairwise_pmd": 0.0}
    with pytest.raises(ValueError, match=r"columns must be a positive int, got 0"):
        implied_preference_figure({"a": view}, columns=0)
