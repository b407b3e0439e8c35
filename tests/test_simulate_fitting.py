"""BTL / Plackett–Luce maximum likelihood against choix, and the existence condition."""

import choix
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmrlhf.simulate import Population, fit_btl, fit_pl, sample_comparisons, sample_rankings
from pmrlhf.simulate.fitting import btl_log_likelihood, pl_log_likelihood


def centered(u):
    return u - u.mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_btl_agrees_with_choix(seed):
    rng = np.random.default_rng(seed)
    pop = Population.btl(rng.normal(size=8))
    winners, losers = sample_comparisons(pop, 3000, rng=rng)
    ours = fit_btl(winners, losers, 8)
    reference = centered(choix.opt_pairwise(8, np.stack([winners, losers], 1), alpha=0, tol=1e-12))
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert abs(ours.mean()) < 1e-12


def test_fit_btl_with_ridge_agrees_with_choix_alpha():
    rng = np.random.default_rng(5)
    winners, losers = sample_comparisons(Population.btl(rng.normal(size=6)), 500, rng=rng)
    ours = fit_btl(winners, losers, 6, l2=0.5)
    # choix's code adds alpha ||u||^2 (its docstring's prior would say alpha/2): alpha = l2/2.
    reference = choix.opt_pairwise(6, np.stack([winners, losers], 1), alpha=0.25, tol=1e-12)
    np.testing.assert_allclose(ours, centered(reference), atol=1e-5)


def test_fit_btl_agrees_with_choix_ilsr():
    rng = np.random.default_rng(11)
    winners, losers = sample_comparisons(Population.btl(rng.normal(size=20)), 5000, rng=rng)
    reference = choix.ilsr_pairwise(20, np.stack([winners, losers], 1), alpha=0, tol=1e-12)
    np.testing.assert_allclose(fit_btl(winners, losers, 20), centered(reference), atol=1e-5)


def test_fit_pl_agrees_with_choix_on_full_rankings():
    rng = np.random.default_rng(7)
    rankings = sample_rankings(Population.btl(rng.normal(size=6)), 800, rng=rng)
    reference = choix.ilsr_rankings(6, rankings, alpha=0, tol=1e-12)
    np.testing.assert_allclose(fit_pl(rankings, 6), centered(reference), atol=1e-5)
    # choix's Newton-CG on the same likelihood (slow in choix, hence a small case).
    small = rankings[:60, :]
    reference = choix.opt_rankings(6, small, alpha=0, tol=1e-12)
    np.testing.assert_allclose(fit_pl(small, 6), centered(reference), atol=1e-5)


def test_fit_pl_on_top_k_rankings_is_a_stationary_point():
    # choix reads a partial ranking as a ranking of the listed items only, so top-k data
    # (unranked items stay in every denominator) has no choix counterpart: check the score.
    rng = np.random.default_rng(7)
    rankings = sample_rankings(Population.btl(rng.normal(size=6)), 800, rng=rng, top_k=3)
    ours = fit_pl(rankings, 6)
    eps = 1e-6
    for i in range(6):
        bump = np.zeros(6)
        bump[i] = eps
        slope = (
            pl_log_likelihood(ours + bump, rankings) - pl_log_likelihood(ours - bump, rankings)
        ) / (2 * eps)
        assert abs(slope) < 1e-3


def test_pl_on_two_items_is_btl():
    rng = np.random.default_rng(3)
    winners, losers = sample_comparisons(Population.btl([0.0, 0.5]), 2000, rng=rng)
    np.testing.assert_allclose(
        fit_pl(np.stack([winners, losers], 1), 2), fit_btl(winners, losers, 2), atol=1e-6
    )


def test_mle_recovers_truth_with_much_data():
    truth = np.array([1.0, 0.0, -0.5, -0.5])
    winners, losers = sample_comparisons(Population.btl(truth), 200_000, rng=0)
    np.testing.assert_allclose(fit_btl(winners, losers, 4), centered(truth), atol=0.03)


def test_mle_maximizes_the_likelihood():
    rng = np.random.default_rng(4)
    winners, losers = sample_comparisons(Population.btl(rng.normal(size=5)), 1000, rng=rng)
    u = fit_btl(winners, losers, 5)
    best = btl_log_likelihood(u, winners, losers)
    for _ in range(20):
        assert btl_log_likelihood(u + rng.normal(scale=0.05, size=5), winners, losers) < best


def test_not_strongly_connected_raises_unless_ridge():
    winners, losers = np.array([0, 1, 0]), np.array([1, 2, 2])  # item 0 never loses
    with pytest.raises(ValueError, match="not strongly connected"):
        fit_btl(winners, losers, 3)
    assert np.all(np.isfinite(fit_btl(winners, losers, 3, l2=1.0)))
    with pytest.raises(ValueError, match="not strongly connected"):
        fit_btl([0, 1], [1, 0], 3)  # item 2 never compared
    with pytest.raises(ValueError, match="not strongly connected"):
        fit_pl([[0, 1, 2], [0, 2, 1]], 3)


@pytest.mark.parametrize(
    "args,match",
    [
        (([], [], 3), "winners"),
        (([0, 5], [1, 0], 3), "winners"),
        (([0, 1], [1, -1], 3), "losers"),
        (([0, 1], [1], 3), "losers has"),
        (([0, 1], [0, 0], 3), "differ"),
        (([0.5, 1], [1, 0], 3), "integer"),
        (([0, 1], [1, 0], 1), "n_items"),
    ],
)
def test_fit_btl_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        fit_btl(*args)


def test_fit_btl_rejects_negative_l2_and_fit_pl_repeats():
    with pytest.raises(ValueError, match="l2"):
        fit_btl([0, 1], [1, 0], 2, l2=-1.0)
    with pytest.raises(ValueError, match="repeat"):
        fit_pl([[0, 0, 1]], 3)
    with pytest.raises(ValueError, match="rankings"):
        fit_pl(np.zeros((0, 3), int), 3)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_fit_btl_is_equivariant_under_relabelling_items(seed):
    rng = np.random.default_rng(seed)
    winners, losers = sample_comparisons(Population.btl(rng.normal(size=5)), 400, rng=rng)
    relabel = rng.permutation(5)
    np.testing.assert_allclose(
        fit_btl(relabel[winners], relabel[losers], 5, l2=0.1)[relabel],
        fit_btl(winners, losers, 5, l2=0.1),
        atol=1e-6,
    )


def test_ragged_rankings_name_the_argument():
    with pytest.raises(ValueError, match="rankings.*rows of different lengths"):
        fit_pl([[0, 1], [1]], 2)
    with pytest.raises(TypeError, match="winners"):
        fit_btl([[0], [1, 2]], [1, 0], 3)
