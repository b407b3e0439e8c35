"""Experiment 6: odds inherited from a biased reference policy (docs/theory.md §2–4)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.ticker
import numpy as np
import pandas as pd
from scipy.special import logit

from ..._figure_style import print_style
from ..._validation import DEFAULT_SEED
from ...errors import PmrlhfUserError
from ...theory import optimal_policy
from ..optimize import optimize_policy
from ._plot import COLORS, finish, legend_below, subplots


@dataclass(frozen=True)
class BiasedReferenceConfig:
    p: float = 0.6  # P_r(y1): the share of the population that prefers y1
    ref_odds: tuple[float, ...] = tuple(np.geomspace(1e-3, 1e3, 61))
    kl_betas: tuple[float, ...] = (0.1, 0.5, 1.0)
    alpha: float = 0.2  # conditional PM threshold (beta = 1)
    trained_odds: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0)
    train_steps: int = 3000
    seed: int = DEFAULT_SEED


SYMLOG_TICKS = (0, 0.1, 0.3, 1, 3, 10, 30, 100)  # the log-odds error axis, in nats
QUICK = BiasedReferenceConfig(
    ref_odds=tuple(np.geomspace(1e-3, 1e3, 13)), trained_odds=(0.1, 10.0), train_steps=1500
)


def run_biased_reference(config: BiasedReferenceConfig):
    """The implied preference ``pi(y1) / (pi(y1) + pi(y2))`` as the reference's odds vary.

    Two responses with ``P_r(y1) = p``. The KL optimum's odds are the reference odds times
    ``(p / (1 - p))^(1/beta)`` (docs/theory.md §2): a reference that favours ``y2`` 100:1
    drags the policy along whatever the annotators said. PM ignores the reference; conditional
    PM ignores it while both responses are plausible (``pi_ref > alpha``) and damps only
    the implausible one. Closed forms on a grid of reference odds, plus policies trained by
    sampled REINFORCE (RLOO) at ``trained_odds`` (``solved_by = "reinforce"``).

    Returns
    -------
    frame : DataFrame
        ``method, beta, alpha, ref_odds, implied_preference, abs_logodds_gap, solved_by``;
        the gap is ``|log(pi(y1)/pi(y2)) - logit(p)|``.
    figure : matplotlib Figure
    """
    p = float(config.p)
    if not 0.5 < p < 1:
        raise PmrlhfUserError(f"p must be in (0.5, 1), got {p}")
    reward = np.array([np.log(p), np.log(1 - p)])  # P_r = softmax(r) = (p, 1 - p)
    methods = [("kl", beta, None) for beta in config.kl_betas]
    methods += [("pm", 1.0, None), ("cpm", 1.0, config.alpha)]

    def rows_for(odds, policies, solved_by):
        log_odds = np.log(policies[:, 0]) - np.log(policies[:, 1])
        return pd.DataFrame(
            {
                "ref_odds": odds,
                "implied_preference": policies[:, 0],
                "abs_logodds_gap": np.abs(log_odds - logit(p)),
                "solved_by": solved_by,
            }
        )

    frames = []
    for solved_by, odds in (("closed form", config.ref_odds), ("reinforce", config.trained_odds)):
        odds = np.asarray(odds, dtype=float)
        ref = np.stack([odds / (1 + odds), 1 / (1 + odds)], axis=-1)  # (len(odds), 2)
        rewards = np.broadcast_to(reward, ref.shape)
        for regularizer, beta, alpha in methods:
            kwargs = {"regularizer": regularizer, "beta": beta, "alpha": alpha}
            kwargs["ref"] = None if regularizer == "pm" else ref
            if solved_by == "closed form":
                policies = optimal_policy(rewards, **kwargs)
            else:
                policies = optimize_policy(
                    rewards,
                    **kwargs,
                    method="reinforce",
                    steps=config.train_steps,
                    lr=0.05,  # constant: at 3000 steps within 3e-4 of the closed form
                    lr_decay_steps=None,
                    samples=16,
                    seed=config.seed,
                    log_every=config.train_steps,
                ).policy
            frames.append(
                rows_for(odds, policies, solved_by).assign(
                    method=regularizer, beta=beta, alpha=np.nan if alpha is None else alpha
                )
            )
    frame = pd.concat(frames, ignore_index=True)
    columns = ["method", "beta", "alpha", "ref_odds", "implied_preference", "abs_logodds_gap"]
    return frame[[*columns, "solved_by"]], _figure(frame, config)


def headline(frame) -> dict:
    """Implied preference when the reference favours the minority 100:1 (target ``p``)."""
    closed = frame[frame.solved_by == "closed form"]
    at = closed.ref_odds.iloc[(np.log(closed.ref_odds) - np.log(0.01)).abs().argmin()]
    row = closed[closed.ref_odds == at].set_index(["method", "beta"]).implied_preference
    trained = frame[frame.solved_by == "reinforce"]
    return {
        "ref_odds": float(at),
        **{f"kl_beta_{b:g}": float(v) for (m, b), v in row.items() if m == "kl"},
        "pm": float(row.loc[("pm", 1.0)]),
        "cpm": float(row.loc[("cpm", 1.0)]),
        "reinforce_max_abs_error": _trained_error(frame, trained),
    }


def summary_table(frame) -> pd.DataFrame:
    """Implied preference for ``y1`` at every power-of-ten reference odds, one column per
    method (closed forms; the REINFORCE runs' largest gap to them is in the headline)."""
    closed = frame[frame.solved_by == "closed form"]
    closed = closed[np.isclose(np.log10(closed.ref_odds), np.round(np.log10(closed.ref_odds)))]
    columns = {}
    for (method, beta, alpha), part in closed.groupby(["method", "beta", "alpha"], dropna=False):
        label = {"kl": "KL", "pm": "PM", "cpm": "cPM"}[method] + f" b={beta:g}"
        label += "" if alpha != alpha else f" a={alpha:g}"  # NaN: no threshold
        columns[label] = part.set_index("ref_odds").implied_preference
    order = sorted(columns, key=lambda k: ("KL PM cPM".split().index(k.split()[0]), k))
    table = pd.DataFrame({k: columns[k] for k in order}).sort_index()
    return table.rename_axis("reference odds y1:y2").reset_index()


def _trained_error(frame, trained) -> float:
    closed = frame[frame.solved_by == "closed form"]
    keys = ["method", "beta", "ref_odds"]
    merged = trained.merge(closed, on=keys, suffixes=("", "_closed"))
    if merged.empty:  # trained odds off the closed-form grid: nothing to compare
        return float("nan")
    return float((merged.implied_preference - merged.implied_preference_closed).abs().max())


@print_style
def _figure(frame, config):
    fig, (left, right) = subplots(2, height=3.9)
    closed = frame[frame.solved_by == "closed form"]
    trained = frame[frame.solved_by == "reinforce"]
    styles = {0.1: "--", 0.5: "-.", 1.0: ":"}
    for ax, column in ((left, "implied_preference"), (right, "abs_logodds_gap")):
        for (method, beta), group in closed.groupby(["method", "beta"], sort=False):
            if method == "kl":
                label, style = f"KL-RLHF, beta = {beta:g}", styles.get(beta, "--")
            elif method == "pm":
                label, style = "PM-RLHF", "-"
            else:
                label, style = f"conditional PM, alpha = {config.alpha:g}", "-"
            ax.plot(group.ref_odds, group[column], style, color=COLORS[method], lw=2, label=label)
            dots = trained[(trained.method == method) & (trained.beta == beta)]
            ax.scatter(
                dots.ref_odds, dots[column], color=COLORS[method], marker="o", s=22, zorder=5
            )
        ax.set(xscale="log", xlabel="reference odds pi_ref(y1) / pi_ref(y2)\n(log scale)")
    left.scatter([], [], color="grey", marker="o", s=22, label="trained by REINFORCE (RLOO)")
    target = f"target P_r(y1) = {config.p:g}"
    left.axhline(config.p, color=COLORS["target"], lw=1, ls="--", zorder=6, label=target)
    left.set(
        ylim=(-0.02, 1.02),
        ylabel="implied preference\npi(y1) / (pi(y1) + pi(y2))",
        title=f"{config.p:.0%} of annotators prefer y1",
    )
    # Linear below 0.1 nats, logarithmic above; labelled ticks at 1-3 steps, not only 0, 1, 10.
    right.set_yscale("symlog", linthresh=0.1)
    ticks = [t for t in SYMLOG_TICKS if t <= max(1.0, float(frame.abs_logodds_gap.max()) * 1.5)]
    right.set_yticks(ticks, [f"{t:g}" for t in ticks])
    right.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    right.set(
        ylim=(0, None),
        ylabel="|policy log-odds - preference log-odds|\n(nats, symlog)",
        title="Log-odds error inherited\nfrom the reference",
    )
    legend_below(fig, left, ncol=3)
    return finish(
        fig, "A biased reference passes its odds to KL-RLHF;\nPM ignores them (cPM: when plausible)"
    )
