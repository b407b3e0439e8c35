"""Experiment 1: preference collapse vs beta, KL vs PM (docs/theory.md §2–3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import print_style
from ..._validation import DEFAULT_SEED
from ...theory import collapse_curve
from ..optimize import optimize_policy
from ._plot import COLORS, finish, subplots


@dataclass(frozen=True)
class CollapseConfig:
    """Majority shares ``p``, the ``beta`` grid, and the REINFORCE check points."""

    shares: tuple[float, ...] = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    betas: tuple[float, ...] = tuple(np.geomspace(0.01, 10.0, 31).round(6))
    reinforce_betas: tuple[float, ...] = (0.1, 0.5, 1.0)
    figure_betas: tuple[float, ...] = (1.0, 0.5, 0.1)  # KL curves of the main panel
    reinforce_steps: int = 3000
    samples: int = 16
    seed: int = DEFAULT_SEED


QUICK = CollapseConfig(
    shares=(0.55, 0.6, 0.7, 0.8, 0.9),
    betas=tuple(np.geomspace(0.01, 10.0, 13).round(6)),
    reinforce_betas=(0.1, 1.0),
    reinforce_steps=800,
)


def run_collapse(config: CollapseConfig):
    """Closed-form minority mass for every ``(p, beta, reference)``, plus REINFORCE runs.

    Returns
    -------
    frame : DataFrame
        Tidy, one row per ``(p, beta, reference, method)``: ``target_minority_mass,
        kl_minority_mass, pm_minority_mass``; ``method`` is ``closed_form``
        (:func:`pmrlhf.theory.collapse_curve`) or ``reinforce`` (:func:`optimize_policy`).
    figure : matplotlib Figure
        Policy vs target minority mass (uniform reference), and minority mass vs beta.
    """
    seed = config.seed
    # The figure's and REINFORCE's betas are always on the grid (round labels, exact match).
    betas = sorted({*config.betas, *config.figure_betas, *config.reinforce_betas})
    frames = [
        collapse_curve(p, betas, reference=reference).assign(method="closed_form")
        for reference in ("uniform", "preference")
        for p in config.shares
    ]
    # REINFORCE on top: all shares at once, one prompt each, the trainer's own sampling.
    shares = np.array(config.shares)
    reward = np.log(np.stack([shares, 1 - shares], axis=1))  # (P, 2) BTL logits
    for i, beta in enumerate(config.reinforce_betas):
        common = {
            "method": "reinforce",
            "steps": config.reinforce_steps,
            "lr": 0.05,  # constant: at 3000 steps within 2e-4 of the closed form
            "lr_decay_steps": None,
            "samples": config.samples,
            "seed": seed + i,
        }
        kl = optimize_policy(reward, regularizer="kl", beta=beta, ref=[0.5, 0.5], **common)
        pm = optimize_policy(beta * reward, regularizer="pm", beta=beta, **common)
        frames.append(
            pd.DataFrame(
                {
                    "p": shares,
                    "beta": beta,
                    "reference": "uniform",
                    "method": "reinforce",
                    "target_minority_mass": 1 - shares,
                    "kl_minority_mass": kl.policy[:, 1],
                    "pm_minority_mass": pm.policy[:, 1],
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame, _figure(frame, config)


def headline(frame: pd.DataFrame) -> dict:
    """Minority mass at ``p = 0.6, beta = 0.1`` (docs/theory.md §2) and REINFORCE's errors."""
    closed = frame[(frame.method == "closed_form") & (frame.reference == "uniform")]
    row = closed.iloc[(closed.p.sub(0.6).abs() + closed.beta.sub(0.1).abs()).argmin()]
    reinforce = frame[frame.method == "reinforce"]
    return {
        "p": float(row.p),
        "beta": float(row.beta),
        "kl_minority_mass": float(row.kl_minority_mass),
        "pm_minority_mass": float(row.pm_minority_mass),
        "target_minority_mass": float(row.target_minority_mass),
        "reinforce_max_abs_error_kl": _reinforce_error_kl(frame),
        "reinforce_max_abs_error_pm": float(
            (reinforce.pm_minority_mass - reinforce.target_minority_mass).abs().max()
        )
        if len(reinforce)
        else float("nan"),
    }


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Minority mass at the share closest to ``p = 0.6`` for every power-of-ten ``beta``: the
    target, KL with a uniform and with a preference-matched reference, PM, and REINFORCE's
    KL and PM (uniform reference) where it ran (docs/theory.md §2)."""
    p = frame.p.iloc[(frame.p - 0.6).abs().argmin()]
    at = frame[np.isclose(frame.p, p)]
    decades = np.isclose(np.log10(at.beta), np.round(np.log10(at.beta)))
    at = at[decades]
    closed = at[at.method == "closed_form"]
    uniform = closed[closed.reference == "uniform"].set_index("beta")
    preference = closed[closed.reference == "preference"].set_index("beta")
    reinforce = at[at.method == "reinforce"].set_index("beta")
    table = pd.DataFrame(
        {
            "p": p,
            "target": uniform.target_minority_mass,
            "KL, uniform ref": uniform.kl_minority_mass,
            "KL, preference ref": preference.kl_minority_mass,
            "PM": uniform.pm_minority_mass,
            "KL, REINFORCE": reinforce.kl_minority_mass,
            "PM, REINFORCE": reinforce.pm_minority_mass,
        }
    )
    return table.sort_index().rename_axis("beta").reset_index()


def _reinforce_error_kl(frame: pd.DataFrame) -> float:
    """Largest gap between a REINFORCE KL run and the closed form at the same ``(p, beta)``."""
    reinforce = frame[frame.method == "reinforce"]
    closed = frame[(frame.method == "closed_form") & (frame.reference == "uniform")]
    if not len(reinforce):
        return float("nan")
    merged = reinforce.merge(closed, on=["p", "beta"], suffixes=("", "_closed"))
    return float((merged.kl_minority_mass - merged.kl_minority_mass_closed).abs().max())


@print_style
def _figure(frame: pd.DataFrame, config: CollapseConfig):
    # Two rows, each legend to the right of its panel: a long legend inside would hide curves.
    fig, (left, right) = subplots(1, nrows=2, height=5.4)
    closed = frame[(frame.method == "closed_form") & (frame.reference == "uniform")]
    diagonal = np.linspace(0, 0.5, 2)
    left.plot(diagonal, diagonal, ls=":", color="grey", lw=1, label="perfect matching (diagonal)")
    shades = ["#fcbba1", "#fb6a4a", "#a50f15"]
    for beta, shade in zip(config.figure_betas, shades, strict=False):
        rows = closed[closed.beta == beta]
        note = "\n(= PM, under the blue line)" if beta == 1.0 else ""
        left.plot(
            rows.target_minority_mass,
            rows.kl_minority_mass,
            "o-",
            color=shade,
            label=f"KL-RLHF, beta = {beta:g}{note}",
        )
    pm_rows = closed[closed.beta == closed.beta.min()]
    left.plot(
        pm_rows.target_minority_mass,
        pm_rows.pm_minority_mass,
        "s-",
        color=COLORS["pm"],
        lw=2.5,
        ms=4,
        label="PM-RLHF (reward scaled by beta)",
    )
    reinforce = frame[frame.method == "reinforce"]
    if len(reinforce):
        left.scatter(
            reinforce.target_minority_mass,
            reinforce.kl_minority_mass,
            marker="x",
            color="black",
            zorder=5,
            label="REINFORCE runs (KL and PM)",
        )
        left.scatter(
            reinforce.target_minority_mass,
            reinforce.pm_minority_mass,
            marker="x",
            color="black",
            zorder=5,
        )
    left.set(
        xlabel="target minority mass 1 - p (probability)",
        ylabel="policy minority mass (probability)",
        xlim=(0, 0.5),
        ylim=(0, 0.52),
        title="Policy vs preference (uniform reference)",
    )
    left.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)

    p = min(config.shares, key=lambda s: abs(s - 0.6))
    for reference, style in (("uniform", "-"), ("preference", "--")):
        rows = frame[
            (frame.method == "closed_form") & (frame.reference == reference) & (frame.p == p)
        ]
        right.plot(
            rows.beta,
            rows.kl_minority_mass,
            style,
            color=COLORS["kl"],
            label=f"KL-RLHF, {reference} reference",
        )
    right.plot(rows.beta, rows.pm_minority_mass, color=COLORS["pm"], lw=2.5, label="PM-RLHF")
    right.axhline(1 - p, color="grey", ls=":", lw=1, label=f"target 1 - p = {1 - p:.2f}")
    right.set(
        xscale="log",
        yscale="log",
        ylim=(1e-4, 1),
        xlabel="regularization strength beta (log scale)",
        ylabel="policy minority mass\n(probability, log scale)",
        title=f"Collapse as beta shrinks (p = {p:g})",
    )
    right.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return finish(fig, "Preference collapse of KL-RLHF vs preference matching (PM)")
