"""The PM-property check of docs/theory.md §3 over the PM family and its counter-examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sympy as sp
from tqdm.auto import tqdm

from .._validation import DEFAULT_SEED, check_positive_int, check_seed
from ..errors import PmrlhfTypeError
from .derivation import derive_pm_regularizer
from .numerical import check_pm_property


def pm_property_cases(*, seed: int = DEFAULT_SEED) -> list[tuple[str, object, bool]]:
    """``(label, R, should_pass)`` for the PM family and the counter-examples of docs/theory.md §3.

    The PM family uses the general solution from :func:`derive_pm_regularizer` with random
    constants; the KL counter-example closes over a random non-uniform reference.
    """
    derivation = derive_pm_regularizer()
    pi = derivation.symbol
    C1, C2 = derivation.constants
    rng = np.random.default_rng(seed)
    c1, c2 = (float(v) for v in rng.normal(scale=2.0, size=2))
    return [
        ("-log(pi)", derivation.regularizer, True),
        (
            f"-log(pi) {c1:+.3f} {c2:+.3f}/pi",
            derivation.general_solution.subs({C1: c1, C2: c2}),
            True,
        ),
        ("0", sp.Integer(0) * pi, False),
        ("-pi", -pi, False),
        ("log(pi)", sp.log(pi), False),
        ("-log(pi/pi_ref), pi_ref non-uniform", None, False),
    ]


def pm_property_table(
    *, n_responses: int = 4, trials: int = 20, seed: int = DEFAULT_SEED, progress: bool = False
) -> pd.DataFrame:
    """Run :func:`check_pm_property` on every case; one row per regularizer.

    ``progress`` shows a bar on stderr: one step for the sympy derivation, then one per
    regularizer (``trials`` numerical maximizations each).

    Raises
    ------
    ValueError, TypeError
        ``n_responses < 2``, ``trials < 1``, a negative ``seed`` or a ``progress`` that is not
        a bool (checked before any work).
    """
    n_responses = check_positive_int(n_responses, "n_responses", minimum=2)
    trials = check_positive_int(trials, "trials")
    seed = check_seed(seed)
    if not isinstance(progress, bool):
        raise PmrlhfTypeError(f"progress must be True or False, got {progress!r}")
    rows = []
    rng = np.random.default_rng(seed + 1)
    ref = rng.dirichlet(np.ones(n_responses))
    bar = tqdm(desc=f"PM-property check ({trials} rewards each)", unit="step", disable=not progress)
    with bar:
        bar.set_postfix_str("sympy derivation")
        cases = pm_property_cases(seed=seed)
        bar.total = 1 + len(cases)
        bar.update()
        for label, R, should_pass in cases:
            bar.set_postfix_str(label)
            rows.append(_check_row(label, R, should_pass, ref, n_responses, trials, seed))
            bar.update()
    return pd.DataFrame(rows)


def _check_row(label, R, should_pass, ref, n_responses, trials, seed) -> dict:
    if R is None:
        R = lambda p, ref=ref: -np.log(p / ref)  # noqa: E731 - closes over ref
    result = check_pm_property(R, n_responses=n_responses, trials=trials, seed=seed)
    return {
        "regularizer": label,
        "max_tv_to_softmax": result.max_distance,
        "passed": result.passed,
        "should_pass": should_pass,
    }
