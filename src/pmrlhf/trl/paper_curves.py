"""Convergence in ``lm paper``'s audit: each method's reward and own penalty per RL step,
read from the trainer's log history, and their figure (mean over seeds, each seed thin)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._figure_style import WIDTH, print_style


def training_curves(rl_folders: dict) -> dict:
    """Per method and seed, the mean reward and the method's own mean per-token penalty
    ``c_t`` (docs/theory.md §4: TRL's ``kl`` for KL, ``penalty`` for PM and cPM) at each RL
    step, from the runs' ``done.json`` (the trainer's log history)."""
    curves = {}
    for name, by_seed in rl_folders.items():
        curves[name] = {}
        for seed, folder in sorted(by_seed.items()):
            history = json.loads((Path(folder) / "done.json").read_text()).get("log_history", [])
            steps = [e for e in history if "reward" in e and "step" in e]
            curves[name][seed] = {
                "step": [int(e["step"]) for e in steps],
                "reward": [float(e["reward"]) for e in steps],
                "penalty": [float(e.get("penalty", e.get("kl", np.nan))) for e in steps],
            }
    return curves


@print_style
def training_figure(curves: dict):
    """Two panels against the RL step: the reward model's mean reward of the samples and the
    method's own mean penalty per sampled token, ``c_t = log pi - log w`` (docs/theory.md §4:
    the KL estimate for KL, ``log pi`` on plausible tokens for cPM); ``curves``:
    ``{method: {seed: {"step": [...], "reward": [...], "penalty": [...]}}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves must hold at least one method")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.0), squeeze=False, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, by_seed), color in zip(curves.items(), colors * len(curves), strict=False):
        for ax, key in zip(axes[0], ("reward", "penalty"), strict=True):
            runs = [r for r in by_seed.values() if r["step"]]
            for run in runs:
                ax.plot(run["step"], run[key], color=color, alpha=0.3, linewidth=0.8)
            length = min((len(r["step"]) for r in runs), default=0)
            if length:
                mean = np.mean([r[key][:length] for r in runs], axis=0)
                label = f"{name} (mean of {len(runs)} seed{'s' if len(runs) > 1 else ''})"
                ax.plot(runs[0]["step"][:length], mean, color=color, label=label)
    axes[0][0].set(xlabel="RL step", ylabel="mean reward of the samples", title="Reward")
    axes[0][1].set(
        xlabel="RL step", ylabel="penalty c_t per sampled token", title="Own penalty (§4)"
    )
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3),
               frameon=False)  # fmt: skip
    fig.suptitle("RL training: reward and each method's own penalty per step")
    return fig
