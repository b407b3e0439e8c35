"""Experiment 4: token-level KL vs PM vs conditional PM on a toy language (docs/theory.md §4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..._figure_style import print_style
from ..._validation import DEFAULT_SEED
from ..metrics import total_variation
from ..toy_language import TokenTree
from ._plot import COLORS, finish, legend_below, subplots


@dataclass(frozen=True)
class TokenTreeConfig:
    vocab_size: int = 5
    max_len: int = 5
    alphas: tuple[float, ...] = tuple(np.geomspace(0.003, 0.6, 15).round(4))
    kl_betas: tuple[float, ...] = (0.1, 1.0)
    train_steps: int = 3000  # exact-gradient training checks the closed form at one alpha
    seed: int = DEFAULT_SEED


QUICK = TokenTreeConfig(max_len=4, alphas=(0.005, 0.02, 0.1, 0.3, 0.6), train_steps=600)


def _row(tree: TokenTree, policy: np.ndarray, **labels) -> dict:
    meaningful = tree.meaningful
    inside = policy[meaningful] / policy[meaningful].sum()
    target = np.exp(tree.reward[meaningful]) / np.exp(tree.reward[meaningful]).sum()
    return {
        **labels,
        "mass_on_meaningful": float(policy[meaningful].sum()),
        "tv_within_meaningful": float(total_variation(inside, target)),
    }


def run_token_tree(config: TokenTreeConfig):
    """Mass on meaningful sequences and PM-matching within them, per regularizer (§4).

    Closed-form token-level optima (:meth:`TokenTree.optimum`) for KL at each of
    ``kl_betas``, PM and conditional PM at each ``alpha``; plus one exact-gradient
    training run of conditional PM at the middle ``alpha`` (row ``cpm_trained``), whose
    ``kl_to_closed_form`` shows the closed form is reached by token-level training.

    Returns
    -------
    frame : DataFrame
        ``regularizer, beta, alpha, mass_on_meaningful, tv_within_meaningful,
        kl_to_closed_form, n_sequences, n_meaningful``.
    figure : matplotlib Figure
    """
    tree = TokenTree(config.vocab_size, config.max_len, seed=config.seed)
    reference = np.exp(tree.sequence_logprobs(tree.ref_logprobs))
    rows = [_row(tree, reference, regularizer="reference", beta=np.nan, alpha=np.nan)]
    for beta in config.kl_betas:
        optimum = tree.optimum(regularizer="kl", beta=beta)
        rows.append(_row(tree, optimum, regularizer="kl", beta=beta, alpha=np.nan))
    optimum = tree.optimum(regularizer="pm")
    rows.append(_row(tree, optimum, regularizer="pm", beta=1.0, alpha=np.nan))
    for alpha in config.alphas:
        optimum = tree.optimum(regularizer="cpm", alpha=alpha)
        rows.append(_row(tree, optimum, regularizer="cpm", beta=1.0, alpha=alpha))
    # The closed form is reachable by token-level training: check at a middle alpha.
    alpha = config.alphas[len(config.alphas) // 2]
    trained = tree.train(regularizer="cpm", alpha=alpha, steps=config.train_steps, lr=2.0)
    policy = np.exp(tree.sequence_logprobs(trained.logits))
    rows.append(
        _row(tree, policy, regularizer="cpm_trained", beta=1.0, alpha=alpha)
        | {"kl_to_closed_form": float(trained.history.kl_to_optimum.iloc[-1])}
    )
    frame = pd.DataFrame(rows).assign(
        n_sequences=tree.n_sequences, n_meaningful=int(tree.meaningful.sum())
    )
    return frame, _figure(frame, tree)


def headline(frame) -> dict:
    """Mass on meaningful sequences: reference, PM, conditional PM; training's error."""
    trained = frame[frame.regularizer == "cpm_trained"].iloc[0]
    closed = frame[(frame.regularizer == "cpm") & (frame.alpha == trained.alpha)]
    return {
        "n_sequences": int(frame.n_sequences.iloc[0]),
        "n_meaningful": int(frame.n_meaningful.iloc[0]),
        "reference_mass_on_meaningful": float(frame.mass_on_meaningful.iloc[0]),
        "pm_mass_on_meaningful": float(frame[frame.regularizer == "pm"].mass_on_meaningful.iloc[0]),
        "cpm_mass_on_meaningful_at_alpha": float(closed.mass_on_meaningful.iloc[0]),
        "alpha": float(trained.alpha),
        "cpm_trained_kl_to_closed_form": float(trained.kl_to_closed_form),
    }


def summary_table(frame) -> pd.DataFrame:
    """Every row (reference, KL, PM, conditional PM over alpha, trained cPM), without the
    tree's size, which is the same on every row."""
    return frame.drop(columns=["n_sequences", "n_meaningful"])


@print_style
def _figure(frame, tree):
    fig, (left, right) = subplots(2, height=4.0)
    cpm = frame[frame.regularizer == "cpm"]
    for ax, column, label in (
        (left, "mass_on_meaningful", "policy mass on meaningful sequences\n(probability)"),
        (right, "tv_within_meaningful", "TV to softmax(r),\nboth restricted to meaningful"),
    ):
        ax.plot(cpm.alpha, cpm[column], "o-", color=COLORS["cpm"], label="conditional PM")
        trained = frame[frame.regularizer == "cpm_trained"]
        ax.scatter(
            trained.alpha,
            trained[column],
            marker="x",
            s=70,
            color="black",
            zorder=5,
            label="conditional PM, trained token by token",
        )
        for name, style, color in (("pm", "-", COLORS["pm"]), ("reference", ":", "grey")):
            ax.axhline(
                frame[frame.regularizer == name][column].iloc[0],
                ls=style,
                color=color,
                label="PM" if name == "pm" else "reference policy",
            )
        for (_, row), style in zip(
            frame[frame.regularizer == "kl"].iterrows(), ("--", "-."), strict=False
        ):
            ax.axhline(row[column], ls=style, color=COLORS["kl"], label=f"KL, beta = {row.beta:g}")
        ax.set(
            xscale="log",
            xlabel="cPM threshold alpha (log scale)",
            ylabel=label,
            ylim=(-0.02, 1.02),
        )
    left.set_title(
        f"Mass on the {int(tree.meaningful.sum())} meaningful of {tree.n_sequences} "
        "sequences\n(meaningful: every token is one\nthe reference finds plausible)",
    )
    right.set_title(
        "Matching within meaningful sequences\n(0 = exactly the preference\ndistribution)",
    )
    legend_below(fig, left, ncol=3)
    return finish(fig, "Token-level toy language: conditional PM keeps PM where it makes sense")
