"""Part 1: the closed-form KL optimum against scipy's constrained optimizers.

Problem (docs/theory.md §2), per prompt: maximize ``E_pi[r] - beta KL(pi || pi_ref)`` over the
simplex. ``pmrlhf.theory.optimal_policy`` computes ``pi_ref exp(r/beta) / Z`` for every
prompt at once; a user without it would hand the objective to scipy: SLSQP or trust-constr
with bounds ``[0, 1]``, the equality ``sum pi = 1``, the analytic gradient, starting from
the uniform policy, one prompt at a time.

Two sweeps: the number of responses ``n`` (one prompt) and the number of prompts ``B``
(fixed ``n``). scipy solves only ``min(B, subset)`` prompts and its time is extrapolated
linearly to ``B`` prompts (the prompts are i.i.d., so the cost per prompt does not depend
on ``B``); a solver is not run at an ``n`` where its predicted time per prompt exceeds the
budget, and the table says so.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, minimize
from scipy.special import xlogy

from pmrlhf.theory import objective, optimal_policy

from ._common import Size, loglog_exponent, ratio_summary, summarize, time_interleaved

BETA = 0.5
SCIPY_METHODS = ("SLSQP", "trust-constr")


def make_instances(batch: int, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rewards ``N(0, 1)`` and a reference ``softmax(N(0, 1))``, shape (B, n).

    The reference is strictly positive and not extreme (entries within a factor ~e^6 of
    each other), so the optimum is interior and scipy is not slowed by near-zero entries.
    """
    rng = np.random.default_rng(seed)
    reward = rng.standard_normal((batch, n))  # (B, n)
    logits = rng.standard_normal((batch, n))  # (B, n)
    ref = np.exp(logits - logits.max(1, keepdims=True))
    return reward, ref / ref.sum(1, keepdims=True)


def solve_scipy(reward: np.ndarray, ref: np.ndarray, beta: float, method: str):
    """One prompt: maximize ``pi.r - beta sum pi log(pi / ref)`` with a scipy optimizer.

    Returns scipy's ``OptimizeResult`` (``x`` is the policy, shape (n,)).
    """
    n = reward.size
    log_ref = np.log(ref)

    def negative_objective(pi):
        value = pi @ reward - beta * (xlogy(pi, pi).sum() - pi @ log_ref)
        # d/dpi of pi log pi is log pi + 1; the floor keeps the gradient finite at the bound.
        grad = reward - beta * (np.log(np.maximum(pi, 1e-300)) + 1.0 - log_ref)
        return -value, -grad

    x0 = np.full(n, 1.0 / n)
    bounds = Bounds(np.zeros(n), np.ones(n))
    if method == "SLSQP":
        ones = np.ones(n)
        constraint = {"type": "eq", "fun": lambda pi: pi.sum() - 1.0, "jac": lambda pi: ones}
        options = {"ftol": 1e-10, "maxiter": 500}
    else:
        constraint = LinearConstraint(np.ones((1, n)), 1.0, 1.0)
        options = {"gtol": 1e-8, "xtol": 1e-10, "maxiter": 1000}
    result = minimize(
        negative_objective,
        x0,
        jac=True,
        method=method,
        bounds=bounds,
        constraints=[constraint],
        options=options,
    )
    return result


def _solve_subset(reward, ref, method):
    """Solve prompts one by one; return (policies (k, n), iterations (k,), successes (k,))."""
    results = [solve_scipy(r, w, BETA, method) for r, w in zip(reward, ref, strict=True)]
    return (
        np.stack([res.x for res in results]),
        np.array([res.nit for res in results]),
        np.array([bool(res.success) for res in results]),
    )


def objective_gap(scipy_policies, closed_policies, reward, ref) -> float:
    """Largest ``J(pi_closed) - J(pi_scipy)`` over the prompts (>= 0: the closed form is better).

    scipy's answer satisfies ``sum pi = 1`` and the bounds only to its tolerance; it is
    clipped at 0 and renormalized so that both are scored on the simplex by the same
    :func:`pmrlhf.theory.objective`. A negative value would mean the closed form is not the
    maximizer.
    """
    projected = np.clip(scipy_policies, 0.0, None)
    projected /= projected.sum(-1, keepdims=True)
    kwargs = {"regularizer": "kl", "beta": BETA, "ref": ref}
    gaps = objective(closed_policies, reward, **kwargs) - objective(projected, reward, **kwargs)
    return float(gaps.max())


def _predict(history: list[tuple[int, float]], n_next: int) -> float:
    """Extrapolate seconds per prompt to ``n_next`` from the last two sizes (quadratic if one)."""
    if not history:
        return 0.0
    if len(history) == 1:
        n_last, t_last = history[-1]
        return t_last * (n_next / n_last) ** 2
    (n0, t0), (n1, t1) = history[-2:]
    # At least quadratic: dense quasi-Newton solvers get worse, not better, as n grows.
    slope = max(np.log(t1 / t0) / np.log(n1 / n0), 2.0)
    return t1 * (n_next / n1) ** slope


def run(size: Size, *, seed: int, log=print) -> dict:
    """Both sweeps; returns rows (one per sweep point and method) and fitted exponents."""
    config = {
        "beta": BETA,
        "regularizer": "kl",
        "n_values": size.pick(smoke=[2, 10], quick=[2, 10, 100], full=[2, 10, 100, 1000, 10_000]),
        # Small n so trust-constr's subset stays affordable; the batch sweep is about B.
        "n_for_batch_sweep": 10,
        "batch_values": size.pick(
            smoke=[1, 4], quick=[1, 10, 100, 1000], full=[1, 10, 100, 1000, 10_000]
        ),
        "scipy_subset": size.pick(smoke=2, quick=3, full=10),
        "scipy_budget_seconds_per_prompt": size.pick(smoke=0.5, quick=1.0, full=10.0),
        "repeats": size.pick(smoke=2, quick=2, full=3),
        "seed": seed,
        "scipy_options": {
            "SLSQP": "ftol=1e-10, maxiter=500",
            "trust-constr": "gtol=1e-8, xtol=1e-10, maxiter=1000, BFGS Hessian",
        },
    }
    rows: list[dict] = []
    history: dict[str, list[tuple[int, float]]] = {
        key: [] for m in SCIPY_METHODS for key in (m, f"batch-{m}")
    }
    points = [("n", n, 1, n) for n in config["n_values"]]
    points += [("batch", b, b, config["n_for_batch_sweep"]) for b in config["batch_values"]]
    for index, (sweep, value, batch, n) in enumerate(points):
        reward, ref = make_instances(batch, n, seed=seed + index)
        subset = min(batch, config["scipy_subset"])
        functions = {
            "closed_form": lambda reward=reward, ref=ref: optimal_policy(
                reward, regularizer="kl", beta=BETA, ref=ref
            )
        }
        skipped = {}
        for method in SCIPY_METHODS:
            key = method if sweep == "n" else f"batch-{method}"
            # Within the batch sweep n is fixed, so the cost per prompt is the last one seen.
            if sweep == "n":
                predicted = _predict(history[key], n)
            else:
                predicted = history[key][-1][1] if history[key] else 0.0
            if predicted > config["scipy_budget_seconds_per_prompt"]:
                skipped[method] = (
                    f"not run: predicted {predicted:.3g} s per prompt at n={n} exceeds the "
                    f"budget of {config['scipy_budget_seconds_per_prompt']} s"
                )
                continue
            functions[method] = lambda r=reward[:subset], w=ref[:subset], m=method: _solve_subset(
                r, w, m
            )
        started = time.perf_counter()
        samples, results = time_interleaved(functions, repeats=config["repeats"])
        exact = results["closed_form"]
        closed = summarize(samples["closed_form"])
        rows.append(
            {
                "sweep": sweep,
                "n": n,
                "batch": batch,
                "method": "pmrlhf.optimal_policy",
                "prompts_timed": batch,
                "extrapolated": False,
                "seconds": closed,
                "speedup_vs_closed_form": None,
                "max_abs_diff": 0.0,
                "objective_gap": 0.0,
                "scipy_iterations_median": None,
                "scipy_converged": None,
                "note": "",
            }
        )
        for method in SCIPY_METHODS:
            if method in skipped:
                rows.append(
                    {
                        "sweep": sweep,
                        "n": n,
                        "batch": batch,
                        "method": f"scipy {method}",
                        "prompts_timed": 0,
                        "extrapolated": False,
                        "seconds": None,
                        "speedup_vs_closed_form": None,
                        "max_abs_diff": None,
                        "objective_gap": None,
                        "scipy_iterations_median": None,
                        "scipy_converged": None,
                        "note": skipped[method],
                    }
                )
                continue
            per_prompt = [t / subset for t in samples[method]]
            key = method if sweep == "n" else f"batch-{method}"
            history[key].append((n, float(np.median(per_prompt))))
            total = [t * batch for t in per_prompt]  # linear extrapolation to B prompts
            rows.append(
                {
                    "sweep": sweep,
                    "n": n,
                    "batch": batch,
                    "method": f"scipy {method}",
                    "prompts_timed": subset,
                    "extrapolated": subset < batch,
                    "seconds": summarize(total),
                    "speedup_vs_closed_form": ratio_summary(total, samples["closed_form"]),
                    "max_abs_diff": float(np.abs(results[method][0] - exact[:subset]).max()),
                    "objective_gap": objective_gap(
                        results[method][0], exact[:subset], reward[:subset], ref[:subset]
                    ),
                    "scipy_iterations_median": float(np.median(results[method][1])),
                    "scipy_converged": f"{int(results[method][2].sum())}/{subset}",
                    "note": (
                        f"timed {subset} of {batch} prompts, extrapolated linearly"
                        if subset < batch
                        else ""
                    ),
                }
            )
        log(
            f"  closed forms: {sweep}={value:<6} "
            + ", ".join(
                f"{r['method']}: {r['seconds']['median']:.3g} s"
                for r in rows[-1 - len(SCIPY_METHODS) :]
                if r["seconds"]
            )
            + f"  ({time.perf_counter() - started:.1f} s)"
        )
    exponents = {}
    for sweep, variable in (("n", "n"), ("batch", "batch")):
        for method in ("pmrlhf.optimal_policy", *(f"scipy {m}" for m in SCIPY_METHODS)):
            timed = [
                r for r in rows if r["sweep"] == sweep and r["method"] == method and r["seconds"]
            ]
            exponents[f"{method} vs {variable}"] = loglog_exponent(
                [r[variable] for r in timed], [r["seconds"]["median"] for r in timed]
            )
    return {"config": config, "rows": rows, "exponents": exponents}
