"""Closed forms of docs/theory.md §1–4 against the generic numerical maximizer and known numbers."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pmrlhf.theory import (
    collapse_curve,
    maximize_objective,
    objective,
    optimal_policy,
    preference_distribution,
)

N = st.integers(min_value=2, max_value=6)
NAMES = st.sampled_from(["kl", "pm", "cpm"])


@st.composite
def instances(draw, regularizer=NAMES):
    n = draw(N)
    reward = draw(arrays(np.float64, n, elements=st.floats(-4, 4)))
    ref = draw(arrays(np.float64, n, elements=st.floats(0.05, 1.0)))
    ref = ref / ref.sum()
    name = draw(regularizer)
    kwargs = {"beta": draw(st.floats(0.25, 4.0))}
    if name in ("kl", "cpm"):
        kwargs["ref"] = ref
    if name == "cpm":
        kwargs["alpha"] = draw(st.floats(0.05, 0.95))
    return reward, name, kwargs


@given(instances())
def test_closed_form_equals_numerical_maximizer(case):
    reward, name, kwargs = case
    closed = optimal_policy(reward, regularizer=name, **kwargs)
    numerical = maximize_objective(reward, regularizer=name, **kwargs)
    np.testing.assert_allclose(closed, numerical, atol=1e-6)


@given(instances(), st.integers(0, 2**32 - 1))
def test_optimum_beats_random_feasible_policies(case, seed):
    reward, name, kwargs = case
    best = objective(
        optimal_policy(reward, regularizer=name, **kwargs), reward, regularizer=name, **kwargs
    )
    others = np.random.default_rng(seed).dirichlet(np.ones(reward.size), size=50)
    values = objective(others, np.broadcast_to(reward, others.shape), regularizer=name, **kwargs)
    assert np.all(values <= best + 1e-12)


@given(arrays(np.float64, st.integers(2, 8), elements=st.floats(-20, 20)))
def test_kl_with_uniform_ref_and_beta_one_is_softmax(reward):
    uniform = np.full(reward.size, 1.0 / reward.size)
    np.testing.assert_allclose(
        optimal_policy(reward, regularizer="kl", beta=1.0, ref=uniform),
        preference_distribution(reward),
        atol=1e-12,
    )


@given(arrays(np.float64, st.integers(2, 8), elements=st.floats(-20, 20)))
def test_pm_optimum_is_softmax(reward):
    np.testing.assert_allclose(
        optimal_policy(reward, regularizer="pm"), preference_distribution(reward), atol=1e-12
    )


@given(instances(), st.floats(-1e3, 1e3))
def test_every_optimum_is_invariant_to_a_reward_shift(case, shift):
    reward, name, kwargs = case
    np.testing.assert_allclose(
        optimal_policy(reward + shift, regularizer=name, **kwargs),
        optimal_policy(reward, regularizer=name, **kwargs),
        atol=1e-9,
    )


def test_cpm_is_pm_on_plausible_set_and_damped_off_it():
    reward = np.array([1.0, 0.5, 2.0, -1.0])
    ref = np.array([0.5, 0.3, 0.15, 0.05])
    pi = optimal_policy(reward, regularizer="cpm", ref=ref, alpha=0.2)
    weight = np.array([1.0, 1.0, 0.15, 0.05])
    np.testing.assert_allclose(pi, weight * np.exp(reward) / (weight * np.exp(reward)).sum())
    # Odds within M_alpha are the preference odds: PM restricted to M_alpha.
    assert pi[0] / pi[1] == pytest.approx(np.exp(reward[0] - reward[1]))


def test_kl_odds_follow_theory_formula():
    reward = np.log(np.array([0.6, 0.3, 0.1]))
    ref = np.array([0.2, 0.5, 0.3])
    beta = 0.4
    pi = optimal_policy(reward, regularizer="kl", beta=beta, ref=ref)
    pr = preference_distribution(reward)
    assert pi[0] / pi[1] == pytest.approx((ref[0] / ref[1]) * (pr[0] / pr[1]) ** (1 / beta))


def test_two_response_numbers_of_theory_section_2():
    uniform = collapse_curve(0.6, [0.1], reference="uniform")
    assert uniform["kl_minority_mass"].iloc[0] == pytest.approx(0.01705, abs=5e-6)
    assert uniform["pm_minority_mass"].iloc[0] == pytest.approx(0.4)
    matched = collapse_curve(0.6, [1.0], reference="preference")
    assert matched["kl_minority_mass"].iloc[0] == pytest.approx(0.16 / 0.52)
    assert matched["kl_minority_mass"].iloc[0] == pytest.approx(0.3077, abs=5e-5)


def test_kl_collapses_minority_as_beta_shrinks():
    curve = collapse_curve(0.6, np.geomspace(1e-3, 10, 30))
    assert np.all(np.diff(curve["kl_minority_mass"]) > 0)
    assert curve["kl_minority_mass"].iloc[0] < 1e-100
    np.testing.assert_allclose(curve["pm_minority_mass"], 0.4)


@pytest.mark.parametrize("regularizer", ["kl", "pm", "cpm"])
def test_extreme_rewards_and_tiny_beta_stay_finite(regularizer):
    rng = np.random.default_rng(0)
    reward = rng.uniform(-1e4, 1e4, size=(3, 50))
    ref = rng.dirichlet(np.ones(50), size=3)
    kwargs = {"ref": ref} if regularizer != "pm" else {}
    if regularizer == "cpm":
        kwargs["alpha"] = 0.05
    pi = optimal_policy(reward, regularizer=regularizer, beta=1e-6, **kwargs)
    assert np.all(np.isfinite(pi))
    np.testing.assert_allclose(pi.sum(-1), 1.0)
    np.testing.assert_array_equal(pi.argmax(-1), (reward / 1e-6 + np.log(ref)).argmax(-1))


def test_vectorised_over_prompts_matches_one_by_one():
    rng = np.random.default_rng(1)
    reward = rng.normal(size=(4, 3, 7))
    ref = rng.dirichlet(np.ones(7), size=(4, 3))
    batched = optimal_policy(reward, regularizer="kl", beta=0.5, ref=ref)
    for idx in np.ndindex(4, 3):
        np.testing.assert_allclose(
            batched[idx], optimal_policy(reward[idx], regularizer="kl", beta=0.5, ref=ref[idx])
        )


def test_axis_argument_and_shared_reference():
    rng = np.random.default_rng(2)
    reward = rng.normal(size=(5, 6))
    ref = rng.dirichlet(np.ones(5))
    along0 = optimal_policy(reward, regularizer="kl", ref=ref, axis=0)
    np.testing.assert_allclose(along0, optimal_policy(reward.T, regularizer="kl", ref=ref).T)
    np.testing.assert_allclose(along0.sum(0), 1.0)


def test_zero_reference_mass_gets_zero_policy_mass_under_kl():
    pi = optimal_policy([3.0, 0.0, 1.0], regularizer="kl", ref=[0.0, 0.5, 0.5])
    assert pi[0] == 0.0
    assert objective(pi, [3.0, 0.0, 1.0], regularizer="kl", ref=[0.0, 0.5, 0.5]) > -np.inf
    assert (
        objective([0.5, 0.5, 0.0], [3.0, 0.0, 1.0], regularizer="kl", ref=[0.0, 0.5, 0.5])
        == -np.inf
    )


@given(
    arrays(np.float64, st.integers(2, 6), elements=st.floats(-1e12, 1e12)),
    st.floats(1e-300, 1e3),
    NAMES,
)
def test_optimum_is_finite_for_every_finite_reward_and_positive_beta(reward, beta, name):
    # reward / beta overflows to inf here (1e12 / 1e-300); the optimum must not be nan.
    n = reward.size
    ref = np.linspace(1.0, 2.0, n) / np.linspace(1.0, 2.0, n).sum()
    kwargs = {"ref": ref} if name != "pm" else {}
    if name == "cpm":
        kwargs["alpha"] = 0.5 / n
    pi = optimal_policy(reward, regularizer=name, beta=beta, **kwargs)
    assert np.all(np.isfinite(pi)) and np.all(pi >= 0)
    np.testing.assert_allclose(pi.sum(), 1.0)
    assert pi[np.argmax(reward)] >= pi.min()  # a best response is never the least likely


def test_overflowing_reward_over_beta_puts_all_mass_on_the_best_response():
    np.testing.assert_array_equal(
        optimal_policy([1e10, 0.0], regularizer="pm", beta=1e-300), [1.0, 0.0]
    )
    # KL: the best reward has no reference mass, so the best supported response wins.
    np.testing.assert_array_equal(
        optimal_policy([1e10, 0.0, -1.0], regularizer="kl", beta=1e-300, ref=[0, 0.5, 0.5]),
        [0.0, 1.0, 0.0],
    )
    np.testing.assert_array_equal(preference_distribution([1.7e308, -1.7e308]), [1.0, 0.0])
    curve = collapse_curve(0.7, [1e-300, 1e300])
    assert np.all(np.isfinite(curve[["kl_minority_mass", "pm_minority_mass"]].to_numpy()))
