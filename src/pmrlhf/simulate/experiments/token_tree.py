"""Experiment 4: token-level KL vs PM vs conditional PM on a toy language (THEORY.md §4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import total_variation
from ..token_tree import TokenTree
from ._plot import COLORS, finish, subplots


@dataclass(frozen=True)
class TokenTreeConfig:
    vocab_size: int = 5
    max_len: int = 5
    alphas: tuple[float, ...] = tuple(np.geomspace(0.003, 0.6, 15).round(4))
    kl_betas: tuple[float, ...] = (0.1, 1.0)
    train_steps: int = 3000  # exact-gradient training checks the closed form at one alpha


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


def run_token_tree(config: TokenTreeConfig, *, seed: int = 0):
    """Mass on meaningful sequences and PM-matching within them, per regularizer."""
    tree = TokenTree(config.vocab_size, config.max_len, seed=seed)
    reference = np.exp(tree.sequence_logprobs(tree.ref_logprobs))
    rows = [_row(tree, reference, regularizer="reference", beta=np.nan, alpha=np.nan)]
    for beta in config.kl_betas:
        rows.append(
            _row(
                tree,
                tree.optimum(regularizer="kl", beta=beta),
                regularizer="kl",
                beta=beta,
                alpha=np.nan,
            )
        )
    rows.append(
        _row(tree, tree.optimum(regularizer="pm"), regularizer="pm", beta=1.0, alpha=np.nan)
    )
    for alpha in config.alphas:
        rows.append(
            _row(
                tree,
                tree.optimum(regularizer="cpm", alpha=alpha),
                regularizer="cpm",
                beta=1.0,
                alpha=alpha,
            )
        )
    frame = pd.DataFrame(rows)
    # The closed form is reachable by token-level training: check at a middle alpha.
    alpha = config.alphas[len(config.alphas) // 2]
    trained = tree.train(regularizer="cpm", alpha=alpha, steps=config.train_steps, lr=2.0)
    headline = {
        "n_sequences": tree.n_sequences,
        "n_meaningful": int(tree.meaningful.sum()),
        "reference_mass_on_meaningful": float(frame.mass_on_meaningful.iloc[0]),
        "pm_mass_on_meaningful": float(frame[frame.regularizer == "pm"].mass_on_meaningful.iloc[0]),
        "cpm_mass_on_meaningful_at_alpha": float(
            frame[(frame.regularizer == "cpm") & (frame.alpha == alpha)].mass_on_meaningful.iloc[0]
        ),
        "alpha": float(alpha),
        "cpm_trained_kl_to_closed_form": float(trained.history.kl_to_optimum.iloc[-1]),
    }
    return frame, _figure(frame, tree), headline


def _figure(frame, tree):
    fig, (left, right) = subplots(2)
    cpm = frame[frame.regularizer == "cpm"]
    for ax, column, label in (
        (left, "mass_on_meaningful", "mass on meaningful sequences"),
        (right, "tv_within_meaningful", "TV to softmax(r) within meaningful sequences"),
    ):
        ax.plot(cpm.alpha, cpm[column], "o-", color=COLORS["cpm"], label="conditional PM")
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
            xscale="log", xlabel="conditional-PM threshold alpha", ylabel=label, ylim=(-0.02, 1.02)
        )
        ax.legend(fontsize=8)
    left.set_title(f"{tree.n_sequences} sequences, {int(tree.meaningful.sum())} meaningful")
    right.set_title("Preference matching among meaningful sequences")
    return finish(fig, "Token-level toy language: conditional PM keeps PM where it makes sense")
