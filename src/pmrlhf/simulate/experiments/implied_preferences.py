"""Experiment 7: implied pairwise preferences of the reference, the reward model and the
KL / PM / conditional-PM policies over a preference data set (docs/theory.md §2–5)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import print_style
from ..._validation import DEFAULT_SEED
from ..tree_prompts import log_policies, pair_metrics, tree_prompts
from ._plot import COLORS, finish, legend_below, subplots


@dataclass(frozen=True)
class ImpliedPreferencesConfig:
    prompts: int = 400
    vocab_size: int = 5
    max_len: int = 5
    kl_betas: tuple[float, ...] = (0.1, 1.0)
    alpha: float = 0.1  # conditional PM threshold (beta = 1)
    bins: int = 40
    seed: int = DEFAULT_SEED


QUICK = ImpliedPreferencesConfig(prompts=60)


def models(config) -> list[tuple[str, dict]]:
    """``(label, log_policies keyword arguments)`` of each model the histograms show."""
    out = [("reference (SFT)", {"model": "reference"}), ("reward model", {"model": "reward"})]
    out += [(f"KL-RLHF, beta = {b:g}", {"model": "kl", "beta": b}) for b in config.kl_betas]
    out += [("PM-RLHF", {"model": "pm"})]
    out += [(f"cPM-RLHF, alpha = {config.alpha:g}", {"model": "cpm", "alpha": config.alpha})]
    return out


def run_implied_preferences(config: ImpliedPreferencesConfig):
    """Histograms of ``sigma(log pi(a) - log pi(b))`` over every meaningful pair.

    ``prompts`` token-level toy languages (:func:`pmrlhf.simulate.tree_prompts.tree_prompts`);
    the pairs are all pairs of meaningful sequences of a prompt, oriented so that the
    reward prefers ``a`` (the reward model's own implied preference lies in ``[1/2, 1)``).
    The paper's histograms show the same picture for language models: KL-RLHF piles the
    pairs at 1 (collapse) and scatters them with the reference's bias; PM and conditional
    PM reproduce the reward model's histogram — PM at the price of its mass on meaningful
    text (``coverage``), conditional PM without paying it.

    Returns
    -------
    frame : DataFrame
        Per ``model``: ``bin_left, bin_right, fraction`` of pairs, and the summaries
        ``mean_abs_gap_to_rm`` (mean ``|p_pi - p_r|``), ``pairwise_pmd`` (mean
        ``KL(Bern(p_r) || Bern(p_pi))``), ``share_above_0.99``, ``coverage``, ``pairs``.
    figure : matplotlib Figure
    """
    trees = tree_prompts(
        config.prompts, vocab_size=config.vocab_size, max_len=config.max_len, seed=config.seed
    )
    edges = np.linspace(0, 1, config.bins + 1)
    frames = []
    for label, kwargs in models(config):
        metrics = pair_metrics(trees, log_policies(trees, **kwargs))
        counts, _ = np.histogram(metrics["implied"], bins=edges)
        frames.append(
            pd.DataFrame(
                {
                    "model": label,
                    "bin_left": edges[:-1],
                    "bin_right": edges[1:],
                    "fraction": counts / metrics["pairs"],
                    "mean_abs_gap_to_rm": float(
                        np.abs(metrics["implied"] - metrics["target"]).mean()
                    ),
                    "pairwise_pmd": metrics["kl_bernoulli"],
                    "share_above_0.99": float((metrics["implied"] > 0.99).mean()),
                    "coverage": metrics["coverage"],
                    "pairs": metrics["pairs"],
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame, _figure(frame, config)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "_", label.lower()).strip("_")


def headline(frame) -> dict:
    """Per model: mean ``|p_pi - p_r|`` (``*_gap``) and mass on meaningful sequences."""
    first = frame.groupby("model", sort=False).first()
    out = {"pairs": int(first.pairs.iloc[0])}
    for model, row in first.iterrows():
        out[f"{_slug(model)}_gap"] = float(row.mean_abs_gap_to_rm)
        if not np.isnan(row.coverage):
            out[f"{_slug(model)}_coverage"] = float(row.coverage)
    return out


def summary_table(frame) -> pd.DataFrame:
    """One row per model: the summary columns of the frame (the histograms are in the CSV)."""
    columns = ["mean_abs_gap_to_rm", "pairwise_pmd", "share_above_0.99", "coverage", "pairs"]
    return frame.groupby("model", sort=False)[columns].first().reset_index()


def _color(model: str) -> str:
    for key, name in (("KL", "kl"), ("cPM", "cpm"), ("PM", "pm"), ("reward", "rm")):
        if key in model:
            return COLORS[name]
    return "grey"


@print_style
def _figure(frame, config):
    labels = list(dict.fromkeys(frame.model))
    ncols = min(3, len(labels))
    nrows = -(-len(labels) // ncols)
    fig, axes = subplots(ncols, nrows=nrows, height=0.4 + 2.3 * nrows)
    for ax in axes[len(labels) :]:
        ax.remove()
    target = frame[frame.model == "reward model"]
    for ax, label in zip(axes, labels, strict=False):
        rows = frame[frame.model == label]
        ax.bar(
            rows.bin_left,
            rows.fraction,
            width=rows.bin_right - rows.bin_left,
            align="edge",
            color=_color(label),
        )
        if label != "reward model":
            ax.step(
                np.r_[target.bin_left, 1.0],
                np.r_[target.fraction, target.fraction.iloc[-1]],
                where="post",
                color="black",
                lw=1,
                label="the reward model's histogram, for comparison",
            )
        first = rows.iloc[0]
        coverage = "" if np.isnan(first.coverage) else f"\nmass on meaningful {first.coverage:.2f}"
        ax.set_title(f"{label}\nmean |p - p_r| = {first.mean_abs_gap_to_rm:.3f}{coverage}")
        ax.set(xlim=(0, 1), xlabel="implied preference\nfor the reward's favourite")
    # One legend below the panels: inside, it hid the histograms' tall bars.
    outlined = [ax for ax, label in zip(axes, labels, strict=False) if label != "reward model"]
    if outlined:
        legend_below(fig, outlined[0], ncol=1)
    for k in range(0, len(labels), ncols):
        axes[k].set_ylabel("fraction of pairs")
    return finish(
        fig,
        f"Implied pairwise preferences on {int(frame.pairs.iloc[0])} pairs of meaningful "
        f"responses\n({config.prompts} prompts, token-level toy language)",
    )
