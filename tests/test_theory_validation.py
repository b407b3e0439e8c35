"""Bad input to the theory layer raises ValueError/TypeError naming the argument."""

import numpy as np
import pytest

from pmrlhf.errors import PmrlhfUserError
from pmrlhf.theory import (
    maximize_objective,
    objective,
    optimal_policy,
    penalty,
    preference_distribution,
    reference_log_weight,
)

R = np.array([1.0, 0.0, -1.0])
REF = np.array([0.5, 0.25, 0.25])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"reward": [1.0, np.nan], "regularizer": "pm"}, "reward"),
        ({"reward": [1.0, np.inf], "regularizer": "pm"}, "reward"),
        ({"reward": [], "regularizer": "pm"}, "reward"),
        ({"reward": R, "regularizer": "pm", "beta": 0.0}, "beta"),
        ({"reward": R, "regularizer": "pm", "beta": -1.0}, "beta"),
        ({"reward": R, "regularizer": "kl"}, "ref"),
        ({"reward": R, "regularizer": "cpm", "alpha": 0.2}, "ref"),
        ({"reward": R, "regularizer": "cpm", "ref": REF}, "alpha"),
        ({"reward": R, "regularizer": "cpm", "ref": REF, "alpha": 0.0}, "alpha"),
        ({"reward": R, "regularizer": "cpm", "ref": REF, "alpha": 1.0}, "alpha"),
        ({"reward": R, "regularizer": "pm", "alpha": 0.5}, "alpha"),
        ({"reward": R, "regularizer": "kl", "ref": [0.5, 0.6, -0.1]}, "ref"),
        ({"reward": R, "regularizer": "kl", "ref": [0.5, 0.2, 0.2]}, "ref"),
        ({"reward": R, "regularizer": "kl", "ref": [0.5, 0.5]}, "ref"),
        ({"reward": R, "regularizer": "kl", "ref": [[0.5, 0.5, 0.0]] * 2}, "ref"),
        ({"reward": R, "regularizer": "entropy"}, "regularizer"),
        ({"reward": R, "regularizer": "pm", "axis": 3}, "axis"),
    ],
)
def test_optimal_policy_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimal_policy(**kwargs)


def test_type_errors_name_the_argument():
    with pytest.raises(TypeError, match="reward"):
        optimal_policy("abc", regularizer="pm")
    with pytest.raises(TypeError, match="beta"):
        optimal_policy(R, regularizer="pm", beta="1")
    with pytest.raises(TypeError, match="R must be"):
        maximize_objective(R, regularizer=42)


def test_objective_rejects_policy_off_simplex_or_wrong_shape():
    with pytest.raises(ValueError, match="policy"):
        objective([0.5, 0.6, 0.1], R, regularizer="pm")
    with pytest.raises(ValueError, match="policy"):
        objective([0.5, 0.5], R, regularizer="pm")


def test_preference_distribution_rejects_nan():
    with pytest.raises(ValueError, match="reward"):
        preference_distribution([np.nan, 1.0])


def test_penalty_rows_of_theory_table():
    logp, ref_logp = np.log([0.3, 0.05]), np.log([0.6, 0.01])
    np.testing.assert_allclose(penalty(logp, ref_logp, regularizer="kl"), logp - ref_logp)
    np.testing.assert_allclose(penalty(logp, ref_logp, regularizer="pm"), logp)
    np.testing.assert_allclose(
        penalty(logp, ref_logp, regularizer="cpm", alpha=0.1), [logp[0], logp[1] - ref_logp[1]]
    )


def test_penalty_works_on_torch_tensors_like_numpy():
    torch = pytest.importorskip("torch")
    logp, ref_logp = np.log([[0.3, 0.05, 0.5]]), np.log([[0.6, 0.01, 0.2]])
    for name, alpha in [("kl", None), ("pm", None), ("cpm", 0.1)]:
        expected = penalty(logp, ref_logp, regularizer=name, alpha=alpha)
        got = penalty(torch.tensor(logp), torch.tensor(ref_logp), regularizer=name, alpha=alpha)
        assert isinstance(got, torch.Tensor)
        np.testing.assert_allclose(got.numpy(), expected)


@pytest.mark.parametrize(
    "ref, kwargs, match",
    [
        (True, {"regularizer": "cpm", "alpha": 1.5}, r"alpha .*\(0, 1\).*1\.5"),
        (True, {"regularizer": "cpm", "alpha": float("nan")}, "alpha must be finite"),
        (True, {"regularizer": "cpm", "alpha": 0}, r"alpha .*\(0, 1\)"),
        (True, {"regularizer": "cpm"}, "alpha is required"),
        (True, {"regularizer": "pm", "alpha": 0.1}, "alpha only applies"),
        (True, {"regularizer": "kl", "alpha": 0.1}, "alpha only applies"),
        (False, {"regularizer": "kl"}, "ref_logp is required"),
        (False, {"regularizer": "cpm", "alpha": 0.1}, "ref_logp is required"),
        (True, {"regularizer": "KL"}, "regularizer must be one of"),
        (True, {"regularizer": None}, "regularizer must be one of"),
    ],
)
def test_penalty_checks_its_arguments(ref, kwargs, match):
    logp, ref_logp = np.log([0.3, 0.05]), np.log([0.6, 0.01])
    with pytest.raises(PmrlhfUserError, match=match):
        penalty(logp, ref_logp if ref else None, **kwargs)


def test_penalty_refuses_mismatched_shapes_naming_ref_logp():
    with pytest.raises(PmrlhfUserError, match=r"ref_logp must have the shape of logp \(2,\)"):
        penalty(np.zeros(2), np.zeros(3), regularizer="kl")
    torch = pytest.importorskip("torch")
    with pytest.raises(PmrlhfUserError, match="ref_logp must have the shape"):
        penalty(torch.zeros(2, 3), torch.zeros(3, 2), regularizer="cpm", alpha=0.1)


def test_penalty_pm_needs_no_reference():
    logp = np.log([0.3, 0.05])
    np.testing.assert_allclose(penalty(logp, regularizer="pm"), logp)
    assert reference_log_weight(None, regularizer="pm") == 0.0
    with pytest.raises(PmrlhfUserError, match="alpha only applies"):
        reference_log_weight(logp, regularizer="pm", alpha=0.5)
