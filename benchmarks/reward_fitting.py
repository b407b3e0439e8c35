"""Part 2: BTL / Plackett–Luce maximum likelihood, ``pmrlhf.simulate`` against choix.

Same data for every method, in each library's own format (the conversion to choix's lists
of tuples is done once, outside the timed region, which favours choix). Every estimate is
centered and scored with one vectorised log-likelihood written here, so "accuracy" means the
same thing for all methods: the log-likelihood reached, and the largest absolute difference
of the centered utilities from those of the method that reached the highest likelihood.

Data: utilities ``N(0, 1)``; pairwise comparisons of uniformly random distinct pairs; full
PL rankings, as many as give the same number of implied adjacent comparisons,
``ceil(m / (n - 1))``. A directed cycle ``0 > 1 > ... > n-1 > 0`` (pairwise) or the reverse
of the first ranking (rankings) is appended so that the comparison graph is strongly
connected and the unregularized maximum-likelihood estimate exists.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import log_expit

from ._common import (
    BlasThreads,
    Size,
    ratio_summary,
    summarize,
    time_interleaved,
    time_interleaved_in_children,
)

GOAL = "pmrlhf at least as fast as choix's fastest method at equal accuracy"
# Same pmrlhf call with numpy's and scipy's BLAS pinned to one thread: shows how much of its time is
# OpenBLAS thread hand-off on tiny vectors (not counted towards the goal).
DIAGNOSTIC = "pmrlhf.{} [diagnostic: BLAS 1 thread]"


def btl_log_likelihood(u: np.ndarray, winners: np.ndarray, losers: np.ndarray) -> float:
    """``sum_k log sigma(u[w_k] - u[l_k])``."""
    return float(log_expit(u[winners] - u[losers]).sum())


def pl_log_likelihood(u: np.ndarray, rankings: np.ndarray) -> float:
    """Full rankings: ``sum_i sum_t [u(tau_t) - log sum_{s >= t} exp u(tau_s)]``."""
    scores = u[rankings]  # (m, k)
    # Reverse cumulative log-sum-exp gives every position's log-denominator at once.
    log_denominators = np.logaddexp.accumulate(scores[:, ::-1], axis=1)[:, ::-1]  # (m, k)
    return float((scores - log_denominators).sum())


def make_pairwise(n_items: int, n_comparisons: int, *, seed: int):
    from pmrlhf.simulate import Population, sample_comparisons

    rng = np.random.default_rng(seed)
    population = Population.btl(rng.standard_normal(n_items))
    winners, losers = sample_comparisons(population, n_comparisons, rng=rng)
    cycle = np.arange(n_items)
    winners = np.concatenate([winners, cycle])
    losers = np.concatenate([losers, (cycle + 1) % n_items])
    return winners, losers


def make_rankings(n_items: int, n_comparisons: int, *, seed: int) -> np.ndarray:
    from pmrlhf.simulate import Population, sample_rankings

    rng = np.random.default_rng(seed)
    population = Population.btl(rng.standard_normal(n_items))
    count = math.ceil(n_comparisons / (n_items - 1))
    rankings = sample_rankings(population, count, rng=rng)  # (count, n_items)
    return np.concatenate([rankings, rankings[:1, ::-1]])


def _choix_call(function, *args, **kwargs):
    """Run a choix estimator; a non-converged run is reported, not hidden."""

    def call():
        try:
            return function(*args, **kwargs)
        except RuntimeError as err:  # choix raises when max_iter is reached
            return err

    return call


def _single_blas_thread(function):
    """Diagnostic variant: the same call with numpy's and scipy's OpenBLAS on one thread."""

    def call():
        with BlasThreads(1):
            return function()

    return call


def _methods(kind: str, n_items: int, data, size: Size) -> dict:
    import choix

    from pmrlhf.simulate import fit_btl, fit_pl

    if kind == "pairwise":
        winners, losers = data
        pairs = list(zip(winners.tolist(), losers.tolist(), strict=True))
        ours = lambda: fit_btl(winners, losers, n_items)  # noqa: E731
        return {
            "pmrlhf.fit_btl": ours,
            DIAGNOSTIC.format("fit_btl"): _single_blas_thread(ours),
            "choix.ilsr_pairwise": _choix_call(choix.ilsr_pairwise, n_items, pairs),
            "choix.opt_pairwise": _choix_call(choix.opt_pairwise, n_items, pairs),
            "choix.mm_pairwise": _choix_call(choix.mm_pairwise, n_items, pairs),
        }
    rankings = data
    lists = [row.tolist() for row in rankings]
    ours = lambda: fit_pl(rankings, n_items)  # noqa: E731
    return {
        "pmrlhf.fit_pl": ours,
        DIAGNOSTIC.format("fit_pl"): _single_blas_thread(ours),
        "choix.ilsr_rankings": _choix_call(choix.ilsr_rankings, n_items, lists),
        "choix.opt_rankings": _choix_call(choix.opt_rankings, n_items, lists),
        "choix.mm_rankings": _choix_call(choix.mm_rankings, n_items, lists),
    }


def run(size: Size, *, seed: int, log=print) -> dict:
    cases = size.pick(
        smoke=[(8, 200), (12, 240)],  # the second case exercises the forked-child path
        quick=[(10, 5_000), (100, 10_000)],
        full=[(10, 5_000), (1_000, 100_000)],
    )
    repeats = size.pick(smoke=1, quick=2, full=5)
    repeats_large = size.pick(smoke=2, quick=2, full=2)
    limit = size.pick(smoke=5.0, quick=20.0, full=60.0)
    config = {
        "cases_items_comparisons": cases,
        "repeats_small_case": repeats,
        "repeats_large_case": repeats_large,
        "large_case": "each call in a forked child (clock inside the child), no warm-up, "
        f"killed after {limit:g} s; a method slower than 20 s is run once",
        "choix_settings": "library defaults (ilsr tol=1e-8 max_iter=100, opt Newton-CG "
        "tol=1e-5 alpha=1e-6, mm tol=1e-8 max_iter=10000)",
        "seed": seed,
        "goal": GOAL,
    }
    rows = []
    for case_index, (n_items, n_comparisons) in enumerate(cases):
        for kind in ("pairwise", "rankings"):
            case_seed = seed + 1000 * case_index + (kind == "rankings")
            if kind == "pairwise":
                data = make_pairwise(n_items, n_comparisons, seed=case_seed)
                score = lambda u, data=data: btl_log_likelihood(u, *data)  # noqa: E731
                data_note = f"{data[0].size} comparisons (incl. a {n_items}-edge cycle)"
            else:
                data = make_rankings(n_items, n_comparisons, seed=case_seed)
                score = lambda u, data=data: pl_log_likelihood(u, data)  # noqa: E731
                data_note = (
                    f"{data.shape[0]} full rankings (incl. one reversed), "
                    f"{data.shape[0] * (n_items - 1)} adjacent comparisons"
                )
            started = time.perf_counter()
            functions = _methods(kind, n_items, data, size)
            if case_index == 0:  # the small case: in-process, warm-up, calibrated loops
                samples, results = time_interleaved(functions, repeats=repeats)
            else:
                samples, results = time_interleaved_in_children(
                    functions,
                    repeats=repeats_large,
                    limit_seconds=limit,
                    repeat_below_seconds=20.0,
                )
            estimates = {}
            for name, value in results.items():
                if isinstance(value, BaseException):
                    continue
                u = np.asarray(value, float)
                estimates[name] = u - u.mean()
            likelihood = {name: score(u) for name, u in estimates.items()}
            best = max(likelihood, key=likelihood.get)
            ours = next(name for name in functions if name.startswith("pmrlhf"))
            converged = [n for n in functions if n in estimates and not n.startswith("pmrlhf")]
            fastest = min(converged, key=lambda n: np.median(samples[n])) if converged else None
            for name in functions:
                row = {
                    "kind": kind,
                    "n_items": n_items,
                    "n_comparisons": n_comparisons,
                    "data": data_note,
                    "method": name,
                    "seconds": summarize(samples[name]),
                    "log_likelihood": likelihood.get(name),
                    "log_likelihood_gap_to_best": (
                        likelihood[name] - likelihood[best] if name in likelihood else None
                    ),
                    "max_abs_diff_vs_best": (
                        float(np.abs(estimates[name] - estimates[best]).max())
                        if name in estimates
                        else None
                    ),
                    "best_method": best,
                    "converged": name in estimates,
                    "note": "" if name in estimates else f"no estimate: {results[name]!r}",
                    "speedup_of_pmrlhf_vs_this": (
                        ratio_summary(samples[name], samples[ours]) if name != ours else None
                    ),
                    "is_fastest_choix": name == fastest,
                }
                rows.append(row)
            diagnostic = next(name for name in functions if "diagnostic" in name)
            goal_met = goal_met_single_thread = None
            if fastest is not None:
                # "Equal accuracy": our log-likelihood within 1e-6 relative of the choix one.
                tolerance = 1e-6 * abs(likelihood[fastest])
                verdicts = []
                for name in (ours, diagnostic):
                    ratio = ratio_summary(samples[fastest], samples[name])["median"]
                    verdicts.append(
                        bool(ratio >= 1.0 and likelihood[name] >= likelihood[fastest] - tolerance)
                    )
                goal_met, goal_met_single_thread = verdicts
            for row in rows[-len(functions) :]:
                row["goal_met_for_case"] = goal_met
                row["goal_met_with_single_blas_thread"] = goal_met_single_thread
                if "diagnostic" in row["method"]:
                    row["note"] = "diagnostic, not a competitor; ratio column: vs this row"
            log(
                f"  reward fitting: {kind} {n_items} items x {n_comparisons}: "
                + ", ".join(f"{n}: {np.median(samples[n]):.3g} s" for n in functions)
                + f"  ({time.perf_counter() - started:.1f} s)"
            )
    return {"config": config, "rows": rows}
