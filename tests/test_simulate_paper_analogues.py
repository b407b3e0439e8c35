"""The simulated analogues of the paper's figures: biased reference, implied-preference
histograms and the beta x alpha table, checked against closed forms derived by hand."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit

from pmrlhf.simulate.experiments import REPORT_TABLES, beta_alpha_grid, biased_reference
from pmrlhf.simulate.experiments import implied_preferences as implied
from pmrlhf.simulate.tree_prompts import log_policies, pair_metrics, tree_prompts


@pytest.fixture(scope="module")
def biased():
    frame, _ = biased_reference.run_biased_reference(biased_reference.QUICK)
    return frame


def test_kl_inherits_the_reference_odds_exactly(biased):
    p = biased_reference.QUICK.p
    for beta in biased_reference.QUICK.kl_betas:
        rows = biased[(biased.method == "kl") & (biased.beta == beta)]
        rows = rows[rows.solved_by == "closed form"]
        # pi(y1)/pi(y2) = ref odds * (p / (1 - p))^(1/beta), docs/theory.md §2, written by hand
        expected = expit(np.log(rows.ref_odds) + logit(p) / beta)
        np.testing.assert_allclose(rows.implied_preference, expected, rtol=1e-12)


def test_pm_ignores_the_reference_and_cpm_only_for_implausible_responses(biased):
    config = biased_reference.QUICK
    closed = biased[biased.solved_by == "closed form"]
    pm = closed[closed.method == "pm"]
    np.testing.assert_allclose(pm.implied_preference, config.p, rtol=1e-12)
    cpm = closed[closed.method == "cpm"]
    ref1 = cpm.ref_odds / (1 + cpm.ref_odds)
    plausible = (ref1 > config.alpha) & (1 - ref1 > config.alpha)
    assert plausible.any() and (~plausible).any()
    np.testing.assert_allclose(cpm.implied_preference[plausible], config.p, rtol=1e-12)
    # y1 implausible: its weight is pi_ref(y1), y2 keeps weight 1
    low = ref1 <= config.alpha
    odds = ref1[low] * config.p / (1 - config.p)
    np.testing.assert_allclose(cpm.implied_preference[low], odds / (1 + odds), rtol=1e-12)


def test_reinforce_lands_on_the_closed_forms(biased):
    assert biased_reference.headline(biased)["reinforce_max_abs_error"] < 0.02


def test_p_must_be_a_majority():
    with pytest.raises(ValueError, match="p must be"):
        biased_reference.run_biased_reference(biased_reference.BiasedReferenceConfig(p=0.4))


@pytest.fixture(scope="module")
def trees():
    return tree_prompts(8, max_len=4, seed=1)


def test_meaningful_pairs_are_every_pair_oriented_by_reward(trees):
    for tree in trees:
        a, b = tree.meaningful_pairs()
        m = int(tree.meaningful.sum())
        assert a.size == m * (m - 1) // 2
        assert tree.meaningful[a].all() and tree.meaningful[b].all() and (a != b).all()
        assert (tree.reward[a] >= tree.reward[b]).all()
        assert len({frozenset(p) for p in zip(a, b, strict=True)}) == a.size


def test_pm_matches_the_reward_model_on_every_pair(trees):
    metrics = pair_metrics(trees, log_policies(trees, model="pm"))
    np.testing.assert_allclose(metrics["implied"], metrics["target"], atol=1e-12)
    assert metrics["kl_bernoulli"] < 1e-12
    assert 0 < metrics["coverage"] < 1 and np.isfinite(metrics["mean_reward"])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), beta=st.sampled_from([0.5, 1.0, 2.0]))
def test_cpm_below_every_plausible_probability_matches_softmax_r_over_beta(seed, beta):
    (tree,) = tree_prompts(1, max_len=4, seed=seed)
    plausible = np.exp(tree.ref_logprobs[tree.plausible])
    alpha = float(plausible.min()) * 0.999
    if not 0 < alpha < 1:
        return
    metrics = pair_metrics([tree], log_policies([tree], model="cpm", beta=beta, alpha=alpha))
    a, b = tree.meaningful_pairs()
    expected = expit((tree.reward[a] - tree.reward[b]) / beta)
    np.testing.assert_allclose(metrics["implied"], expected, atol=1e-10)


def test_pair_metrics_validates_its_input(trees):
    with pytest.raises(ValueError, match="one array per tree"):
        pair_metrics(trees, log_policies(trees[:-1], model="pm"))
    with pytest.raises(ValueError, match="shape"):
        pair_metrics(trees[:1], [np.zeros(3)])
    with pytest.raises(ValueError, match="model"):
        log_policies(trees, model="dpo")
    with pytest.raises(ValueError, match="prompts"):
        tree_prompts(0)


def test_implied_preference_histograms():
    frame, _ = implied.run_implied_preferences(implied.QUICK)
    sums = frame.groupby("model").fraction.sum()
    np.testing.assert_allclose(sums, 1.0)
    rm = frame[frame.model == "reward model"]
    assert rm[rm.bin_right <= 0.5].fraction.sum() == 0  # oriented: p_r >= 1/2
    table = REPORT_TABLES["implied_preferences"](frame).set_index("model")
    assert table.loc["PM-RLHF", "mean_abs_gap_to_rm"] < 1e-12
    assert table.loc["KL-RLHF, beta = 0.1", "share_above_0.99"] > 0.5
    assert (
        table.loc["cPM-RLHF, alpha = 0.1", "coverage"]
        > 0.8
        > 0.1
        > table.loc["PM-RLHF", "coverage"]
    )


def test_beta_alpha_grid_table():
    config = beta_alpha_grid.QUICK
    frame, figure = beta_alpha_grid.run_beta_alpha_grid(config)
    assert len(frame) == len(config.betas) * (2 + len(config.alphas))
    # PM's PMD at beta = 1 (~1e-17) is drawn as a hatched stub at the stated floor, and every
    # reduction label sits above its beta's tallest bar, not on a bar beside a taller one.
    pmd_axis = figure.axes[0]
    assert pmd_axis.get_ylim()[0] == beta_alpha_grid.PMD_FLOOR
    assert "below 1e-4, shown at the floor" in pmd_axis.get_xlabel()
    bars = [b for container in pmd_axis.containers for b in container]
    assert sum(b.get_hatch() is not None for b in bars) == (frame.pairwise_pmd < 1e-4).sum() > 0
    assert pmd_axis.texts
    for label in pmd_axis.texts:  # above every bar near it: no rotated label runs into one
        x, y = label.xy
        near = [b for b in bars if abs(b.get_x() + b.get_width() / 2 - x) < 0.5]
        assert y > max(b.get_height() for b in near), label.get_text()
    kl = frame[frame.method == "KL-RLHF"]
    np.testing.assert_allclose(kl.pmd_improvement_over_kl_pct, 0.0)
    pm1 = frame[(frame.method == "PM-RLHF") & (frame.beta == 1.0)].iloc[0]
    assert pm1.pmd_improvement_over_kl_pct == pytest.approx(100.0)
    # the improvement column is recomputed from the PMD column, per beta
    for _, row in frame.iterrows():
        base = kl[kl.beta == row.beta].pairwise_pmd.iloc[0]
        assert row.pmd_improvement_over_kl_pct == pytest.approx(100 * (1 - row.pairwise_pmd / base))
    again, _ = beta_alpha_grid.run_beta_alpha_grid(config)
    pd.testing.assert_frame_equal(frame, again)
    table = REPORT_TABLES["beta_alpha_grid"](frame)
    assert table.method.iloc[0] == "KL-RLHF" and len(table) == len(frame)


def test_biased_reference_error_axis_has_readable_ticks(biased):
    import matplotlib.pyplot as plt

    figure = biased_reference._figure(biased, biased_reference.QUICK)
    right = figure.axes[1]
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert right.get_yscale() == "symlog" and {"0", "0.1", "0.3", "1", "3", "10"} <= set(labels)
    plt.close(figure)
