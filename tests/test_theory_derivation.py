"""The sympy derivation and the numerical PM-property check of docs/theory.md §3."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy as sp

import pmrlhf
import pmrlhf.theory
from pmrlhf.theory import check_pm_property, derive_pm_regularizer
from pmrlhf.theory.checks import pm_property_table


@pytest.fixture(scope="module")
def derivation():
    return derive_pm_regularizer()


def test_regularizer_is_minus_log_pi(derivation):
    assert sp.simplify(derivation.regularizer + sp.log(derivation.symbol)) == 0


def test_general_solution_has_two_constants_and_solves_the_ode(derivation):
    pi = derivation.symbol
    free = derivation.general_solution.free_symbols - {pi}
    assert free == set(derivation.constants) and len(free) == 2
    lhs = sp.diff(pi * derivation.general_solution, pi)
    # d/dpi [pi R] + log(pi) is constant in pi: the ODE with some constant c.
    assert sp.diff(sp.simplify(lhs + sp.log(pi)), pi) == 0


def test_ode_is_the_pm_ode(derivation):
    pi = derivation.symbol
    R = sp.Function("R")
    assert derivation.ode.lhs == sp.Derivative(pi * R(pi), pi)
    c = next(s for s in derivation.ode.rhs.free_symbols if s.name == "c")
    assert sp.simplify(derivation.ode.rhs - (c - sp.log(pi))) == 0


def test_steps_are_ordered_and_concavity_holds(derivation):
    titles = [title for title, _ in derivation.steps]
    for word, index in [
        ("KKT", 0),
        ("Substitute", 1),
        ("ODE", 2),
        ("General solution", 3),
        ("Concavity", 4),
        ("objective", 5),
    ]:
        assert word in titles[index]
    second = derivation.steps[4][1].rhs
    assert second.is_negative


def test_solution_comes_from_dsolve_not_typed_in(monkeypatch):
    calls = []
    original = sp.dsolve

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(sp, "dsolve", spy)
    derive_pm_regularizer()
    assert calls, "derive_pm_regularizer must call sympy.dsolve"


def test_renderings(derivation):
    md, tex = derivation.to_markdown(), derivation.to_latex()
    assert md.count("$$") == 2 * len(derivation.steps)
    assert tex.startswith("\\begin{enumerate}") and "\\log" in tex
    payload = json.loads(derivation.to_json())
    assert payload["regularizer"] == "-log(pi)"
    assert len(payload["steps"]) == len(derivation.steps)
    assert all(step["mathml"].startswith("<math ") for step in payload["steps"])


def test_mathml_keeps_function_names_and_writes_d_pi_squared(derivation):
    from xml.dom import minidom

    from pmrlhf.theory.derivation import to_mathml

    general = to_mathml(derivation.steps[3][1])  # R(pi) = C1 + C2/pi - log(pi)
    assert "<mi>R</mi>" in general and "<mi>r</mi>" not in general  # r is the reward
    concavity = to_mathml(derivation.steps[4][1])  # d^2/dpi^2 [pi R(pi)] = -1/pi
    denominator = "<mrow><mo>&dd;</mo><msup><mi>&#960;</mi><mn>2</mn></msup></mrow>"
    assert denominator in concavity
    for _, obj in derivation.steps:  # well-formed XML once the named entities are declared
        text = to_mathml(obj)
        for name in ("dd", "InvisibleTimes", "ExponentialE"):
            text = text.replace(f"&{name};", "&#8290;")
        assert minidom.parseString(text).documentElement.tagName == "math"
    with pytest.raises(TypeError, match="expr"):
        to_mathml("R(pi)")


@pytest.mark.parametrize("c1,c2", [(0.0, 0.0), (3.0, -2.0), (-1.5, 0.7)])
def test_pm_family_passes_for_any_constants(derivation, c1, c2):
    C1, C2 = derivation.constants
    R = derivation.general_solution.subs({C1: c1, C2: c2})
    assert check_pm_property(R, trials=8, seed=3).passed


@pytest.mark.parametrize("make_R", [lambda pi: 0 * pi, lambda pi: -pi, sp.log])
def test_counter_examples_fail(derivation, make_R):
    result = check_pm_property(make_R(derivation.symbol), trials=8, seed=3)
    assert not result.passed and result.max_distance > 1e-2


def test_kl_to_non_uniform_reference_fails_and_uniform_passes():
    ref = np.array([0.4, 0.3, 0.2, 0.1])
    assert not check_pm_property(lambda p: -np.log(p / ref), trials=5).passed
    assert check_pm_property(lambda p: -np.log(p / 0.25), trials=5).passed


def test_table_matches_expectations():
    table = pm_property_table(trials=5)
    assert (table["passed"] == table["should_pass"]).all()


def test_table_shows_progress_only_when_asked(capsys):
    quiet = pm_property_table(trials=2)
    assert capsys.readouterr().err == ""
    loud = pm_property_table(trials=2, progress=True)
    err = capsys.readouterr().err
    steps = 1 + len(loud)  # the derivation, then one per regularizer
    assert "PM-property check" in err and f"{steps}/{steps}" in err
    assert all(label in err for label in loud.regularizer)
    pd.testing.assert_frame_equal(quiet, loud)
    with pytest.raises(TypeError, match="progress"):
        pm_property_table(trials=2, progress="yes")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_responses": 1}, "n_responses"),
        ({"trials": 0}, "trials"),
        ({"reward_scale": -1.0}, "reward_scale"),
    ],
)
def test_check_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_pm_property(-sp.log(sp.Symbol("pi")), **kwargs)


def test_check_rejects_expression_with_two_symbols():
    a, b = sp.symbols("a b")
    with pytest.raises(ValueError, match="one free symbol"):
        check_pm_property(a + b)


HEAVY = ("sympy", "pandas", "scipy.optimize")


def _modules_after(code: str) -> list[str]:
    """Heavy modules loaded by ``code`` in a fresh interpreter using this checkout's package."""
    src = str(Path(pmrlhf.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    probe = f"{code}; import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_penalty_loads_without_sympy_pandas_or_the_optimizer():
    assert _modules_after("import pmrlhf") == []
    assert _modules_after("import pmrlhf.theory.regularizers") == []
    assert _modules_after("import pmrlhf.theory as t; from pmrlhf.theory import penalty") == []


def test_lazy_names_load_on_first_use():
    assert "sympy" in _modules_after("from pmrlhf.theory import derive_pm_regularizer")
    assert "scipy.optimize" in _modules_after("import pmrlhf.theory as t; t.check_pm_property")
    assert set(pmrlhf.theory.__all__) <= set(dir(pmrlhf.theory))
    assert all(
        callable(getattr(pmrlhf.theory, name))
        for name in pmrlhf.theory.__all__
        if name != "REGULARIZERS"
    )
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pmrlhf.theory.nope  # noqa: B018
