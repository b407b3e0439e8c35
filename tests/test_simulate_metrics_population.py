"""Metrics (docs/theory.md §5) and the annotator population (§1, §6)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import expit, softmax
from scipy.stats import entropy

from pmrlhf.simulate import (
    Population,
    kl,
    minority_mass,
    pairwise_pmd,
    pairwise_pmd_matrix,
    sample_comparisons,
    sample_rankings,
    total_variation,
)
from pmrlhf.theory import optimal_policy

logits = arrays(np.float64, st.integers(2, 7), elements=st.floats(-5, 5))


@given(logits, logits)
def test_kl_matches_scipy_entropy_and_tv_is_a_metric(a, b):
    n = min(a.size, b.size)
    p, q = softmax(a[:n]), softmax(b[:n])
    assert kl(p, q) == pytest.approx(entropy(p, q), abs=1e-10)
    assert 0 <= total_variation(p, q) <= 1 and total_variation(p, p) == 0
    assert total_variation(p, q) == pytest.approx(total_variation(q, p))


def test_kl_is_infinite_where_q_misses_p_mass():
    assert kl([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert kl([1.0, 0.0], [0.5, 0.5]) == pytest.approx(np.log(2))


def test_minority_mass_is_mass_off_the_target_mode_batched():
    policy = np.array([[0.9, 0.1], [0.3, 0.7]])
    target = np.array([[0.6, 0.4], [0.6, 0.4]])
    np.testing.assert_allclose(minority_mass(policy, target), [0.1, 0.7])


@given(logits)
def test_pairwise_pmd_vanishes_exactly_for_the_pm_policy(reward):
    log_pi = np.log(optimal_policy(reward, regularizer="pm"))
    pmd = pairwise_pmd_matrix(log_pi + 3.0, reward)  # no normalizing constant needed
    assert 0 <= pmd["kl_bernoulli"] <= 1e-10  # a divergence: never below 0, even by rounding
    assert pmd["abs_logodds_gap"] == pytest.approx(0, abs=1e-9)


def test_pairwise_pmd_against_a_direct_formula():
    a, b, ra, rb = (
        np.array([0.2, -1.0]),
        np.array([0.0, 1.0]),
        np.array([1.0, 0.0]),
        np.array([0.0, 0.5]),
    )
    p_r, p_pi = expit(ra - rb), expit(a - b)
    expected = np.mean(p_r * np.log(p_r / p_pi) + (1 - p_r) * np.log((1 - p_r) / (1 - p_pi)))
    out = pairwise_pmd(a, b, ra, rb)
    assert out["kl_bernoulli"] == pytest.approx(expected)
    assert out["abs_logodds_gap"] == pytest.approx(np.mean(np.abs((a - b) - (ra - rb))))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: kl([0.5, 0.6], [0.5, 0.5]), "p"),
        (lambda: total_variation([0.5, 0.5], [1.0]), "shape"),
        (lambda: minority_mass([np.nan, 1.0], [0.5, 0.5]), "policy"),
        (lambda: pairwise_pmd([0.0], [0.0, 1.0], [0.0], [0.0]), "log_pi_b"),
        (lambda: pairwise_pmd_matrix([[0.0]], [[1.0]]), "at least 2"),
    ],
)
def test_metrics_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_population_first_choice_and_pairwise_probability():
    u = np.array([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]])
    pop = Population([0.25, 0.75], u)
    np.testing.assert_allclose(
        pop.first_choice_distribution(), 0.25 * softmax(u[0]) + 0.75 * softmax(u[1])
    )
    P = pop.pairwise_probability()
    np.testing.assert_allclose(P + P.T, 1.0)
    assert P[0, 2] == pytest.approx(0.25 * expit(2) + 0.75 * expit(-2))
    assert Population.from_dict(pop.to_dict()).to_dict() == pop.to_dict()


@pytest.mark.parametrize(
    "weights,utilities,match",
    [
        ([0.5, 0.6], [[0, 1], [1, 0]], "weights"),
        ([1.0], [[0.0, np.nan]], "utilities"),
        ([0.5, 0.5], [[0.0, 1.0]], "group rows"),
        ([1.0], [[0.0]], "at least 2"),
    ],
)
def test_population_rejects_bad_input(weights, utilities, match):
    with pytest.raises(ValueError, match=match):
        Population(weights, utilities)


def test_sampled_comparisons_follow_the_mixture_probabilities():
    pop = Population([0.3, 0.7], [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    winners, losers = sample_comparisons(pop, 200_000, rng=0)
    assert np.all(winners != losers)
    pair = ((winners == 0) & (losers == 1)) | ((winners == 1) & (losers == 0))
    empirical = np.mean(winners[pair] == 0)
    assert empirical == pytest.approx(pop.pairwise_probability()[0, 1], abs=0.01)


def test_sampled_rankings_first_choice_is_the_first_choice_distribution():
    pop = Population([0.5, 0.5], [[1.5, 0.0, -0.5], [0.0, 1.0, 0.0]])
    rankings = sample_rankings(pop, 100_000, rng=1)
    assert rankings.shape == (100_000, 3)
    assert np.all(np.sort(rankings, 1) == np.arange(3))
    freq = np.bincount(rankings[:, 0], minlength=3) / len(rankings)
    np.testing.assert_allclose(freq, pop.first_choice_distribution(), atol=0.01)
    assert sample_rankings(pop, 5, rng=1, top_k=2).shape == (5, 2)


def test_same_seed_same_samples_and_bad_sizes():
    pop = Population.btl([0.0, 1.0, 2.0])
    a, b = sample_comparisons(pop, 10, rng=3), sample_comparisons(pop, 10, rng=3)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="n"):
        sample_comparisons(pop, 0, rng=0)
    with pytest.raises(ValueError, match="top_k"):
        sample_rankings(pop, 3, rng=0, top_k=4)


def test_sampled_comparisons_stay_on_the_given_pairs():
    pop = Population.btl([0.0, 1.0, 2.0, 3.0])
    pairs = np.array([[0, 3], [2, 1]])
    winners, losers = sample_comparisons(pop, 5000, rng=0, pairs=pairs)
    shown = {tuple(sorted(p)) for p in zip(winners.tolist(), losers.tolist(), strict=True)}
    assert shown == {(0, 3), (1, 2)}
    wins_of_3 = np.mean(winners[(winners == 3) | (losers == 3)] == 3)
    assert wins_of_3 == pytest.approx(expit(3.0), abs=0.02)


@pytest.mark.parametrize(
    "pairs,match",
    [
        (np.zeros((0, 2), int), "empty"),
        ([[0, 1, 2]], "shape"),
        ([[0.0, 1.0]], "integer"),
        ([[0, 4]], "outside"),
        ([[1, 1]], "distinct"),
    ],
)
def test_sample_comparisons_rejects_bad_pairs(pairs, match):
    with pytest.raises(ValueError, match=match):
        sample_comparisons(Population.btl([0.0, 1.0, 2.0]), 3, rng=0, pairs=pairs)


@given(arrays(np.float64, st.integers(2, 6), elements=st.floats(-3, 3)), st.floats(0.05, 5))
def test_kl_collapses_minority_as_beta_shrinks(reward, beta):
    """The KL optimum with a uniform reference keeps less minority mass at smaller beta."""
    uniform = np.full(reward.size, 1.0 / reward.size)
    target = optimal_policy(reward, regularizer="pm")
    mass = [
        minority_mass(optimal_policy(reward, regularizer="kl", beta=b, ref=uniform), target)
        for b in (beta / 2, beta, 2 * beta)
    ]
    assert mass[0] <= mass[1] + 1e-12 and mass[1] <= mass[2] + 1e-12
    # PM keeps exactly the target's minority mass.
    pm = optimal_policy(reward, regularizer="pm")
    assert minority_mass(pm, target) == pytest.approx(minority_mass(target, target))


@pytest.mark.parametrize(
    "data,error,match",
    [
        ({"weights": ["a"], "utilities": [[0.0, 1.0]]}, TypeError, "weights.*'a'"),
        ({"weights": [1.0], "utilities": [[0.0, 1.0], [1.0]]}, TypeError, "utilities"),
        ({"weights": [1.0]}, ValueError, "utilities"),
        ([1.0], ValueError, "mapping"),
    ],
)
def test_population_from_dict_names_the_bad_field(data, error, match):
    with pytest.raises(error, match=match):
        Population.from_dict(data)


@pytest.mark.parametrize("sampler", [sample_comparisons, sample_rankings])
def test_bad_rng_names_the_argument(sampler):
    population = Population.btl([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="rng.*-1"):
        sampler(population, 3, rng=-1)
    with pytest.raises(TypeError, match="rng"):
        sampler(population, 3, rng="seed")
    first = sampler(population, 5, rng=np.random.default_rng(4))
    second = sampler(population, 5, rng=4)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
