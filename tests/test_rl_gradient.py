"""The RL loss's two penalty-gradient estimators against the exact gradient, by enumeration.

A tabular autoregressive policy over 3 tokens (0 ends a response) with at most 2 tokens:
every response can be listed, so the objective ``J = E_pi[r - beta sum_t c_t]`` and its
gradient are exact, and so is the expectation of each estimator's gradient (docs/theory.md
§4, "Gradients").
"""

import itertools

import pytest
import torch

from pmrlhf.lm_experiments.train.rloo_estimators import (
    expected_penalty,
    leave_one_out,
    penalized_returns,
)
from pmrlhf.theory import penalty

V, L = 3, 2
HISTORIES = {(): 0, (1,): 1, (2,): 2}  # the histories at which a token is drawn


def responses():
    """Every response (ids padded with 0, mask) of at most L tokens."""
    rows = [(0,)] + [(a, b) for a, b in itertools.product((1, 2), range(V))]
    ids = torch.tensor([list(r) + [0] * (L - len(r)) for r in rows])  # (N, L)
    mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])  # (N, L)
    hist = torch.tensor([[0, HISTORIES.get(r[:1], 0)] for r in rows])  # (N, L)
    return ids, mask, hist


def gradients(regularizer, alpha, beta, baseline):
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(len(HISTORIES), V, generator=gen, dtype=torch.float64) * 2
    table.requires_grad_(True)
    ref_table = torch.randn(len(HISTORIES), V, generator=gen, dtype=torch.float64) * 2
    ids, mask, hist = responses()
    reward = torch.randn(len(ids), generator=gen, dtype=torch.float64)
    logits, ref_logits = table[hist], ref_table[hist]  # (N, L, V)
    logp = torch.log_softmax(logits, -1).gather(2, ids[..., None]).squeeze(-1) * mask
    ref_logp = torch.log_softmax(ref_logits, -1).gather(2, ids[..., None]).squeeze(-1) * mask
    ref = None if regularizer == "pm" else ref_logits
    prob = logp.sum(-1).exp()  # (N,) pi(y): sums to one over the listed responses
    assert float(prob.detach().sum()) == pytest.approx(1.0)
    c = penalty(logp, None if ref is None else ref_logp, regularizer=regularizer, alpha=alpha)
    objective = (prob * (reward - beta * (c * mask).sum(-1))).sum()
    (exact,) = torch.autograd.grad(objective, table, retain_graph=True)
    weight = prob.detach()
    # sampled: every token's return is the reward minus the whole sampled penalty
    total = (reward - beta * (c.detach() * mask).sum(-1))[:, None]
    surrogate = ((total - baseline) * logp).sum(-1)
    (sampled,) = torch.autograd.grad((weight * surrogate).sum(), table, retain_graph=True)
    # expected: the penalties after t in the return, the one at h_t differentiated exactly
    c_exp = mask * expected_penalty(logits, ref, regularizer=regularizer, alpha=alpha)
    returns = penalized_returns(reward, c_exp.detach(), mask, beta=beta)
    surrogate = ((returns - baseline) * logp).sum(-1) - beta * c_exp.sum(-1)
    (expected,) = torch.autograd.grad((weight * surrogate).sum(), table)
    return exact, sampled, expected


@pytest.mark.parametrize(
    "regularizer, alpha, beta",
    [
        ("kl", None, 0.1),
        ("kl", None, 1.0),
        ("pm", None, 1.0),
        ("pm", None, 0.3),
        ("cpm", 0.1, 1.0),
        ("cpm", 0.4, 0.5),
    ],
)
@pytest.mark.parametrize("baseline", [0.0, 0.7])
def test_both_estimators_are_unbiased(regularizer, alpha, beta, baseline):
    exact, sampled, expected = gradients(regularizer, alpha, beta, baseline)
    assert exact.abs().max() > 1e-3  # a gradient worth comparing
    torch.testing.assert_close(sampled, exact, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(expected, exact, rtol=1e-9, atol=1e-12)


def test_expected_penalty_is_minus_entropy_for_pm_and_kl_for_kl():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    ref = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    p = torch.distributions.Categorical(logits=logits)
    q = torch.distributions.Categorical(logits=ref)
    pm = expected_penalty(logits, regularizer="pm")
    torch.testing.assert_close(pm, -p.entropy())
    kl = expected_penalty(logits, ref, regularizer="kl")
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(p, q))
    # cPM: KL where the reference finds nothing plausible, minus entropy where it all is
    near_one = expected_penalty(logits, ref, regularizer="cpm", alpha=1 - 1e-9)
    torch.testing.assert_close(near_one, kl)
    near_zero = expected_penalty(logits, ref, regularizer="cpm", alpha=1e-12)
    torch.testing.assert_close(near_zero, pm)


def test_returns_count_the_penalties_after_each_token_and_leave_one_out_centres():
    reward = torch.tensor([1.0, 2.0])
    c = torch.tensor([[0.5, 0.25, 0.125], [1.0, 2.0, 4.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    g = penalized_returns(reward, c, mask, beta=2.0)
    torch.testing.assert_close(
        g, torch.tensor([[1 - 2 * 0.375, 1 - 2 * 0.125, 1.0], [2 - 2 * 2.0, 2.0, 2.0]])
    )
    adv = leave_one_out(torch.tensor([1.0, 2.0, 6.0, 0.0, 4.0, 2.0]), 3)
    torch.testing.assert_close(adv, torch.tensor([-3.0, -1.5, 4.5, -3.0, 3.0, 0.0]))


def test_draw_samples_the_softmax():
    from scipy import stats

    from pmrlhf.lm_experiments.models.sequences import draw

    logits = torch.tensor([[0.0, 1.0, -torch.inf, 2.0, -1.0]]).repeat(20_000, 1)
    tokens = draw(logits, torch.Generator().manual_seed(0))
    counts = torch.bincount(tokens, minlength=5).numpy()
    assert counts[2] == 0  # probability 0: never drawn
    probs = torch.softmax(logits[0].double(), -1).numpy()
    keep = probs > 0
    expected = probs[keep] / probs[keep].sum() * counts.sum()
    assert stats.chisquare(counts[keep], expected).pvalue > 1e-3
    again = draw(logits[:50], torch.Generator().manual_seed(0))
    assert torch.equal(again, tokens[:50])  # the generator alone decides
