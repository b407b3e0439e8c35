"""The comparison's figures, drawn from summaries built without a model."""

import copy

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from pmrlhf._figure_style import MAX_WIDTH, MIN_FONT, print_problems, print_style
from pmrlhf.lm_experiments.evaluate import plots
from pmrlhf.lm_experiments.evaluate.exact import METRICS, candidate_metrics
from pmrlhf.lm_experiments.evaluate.freeform import implied_preference_figure
from pmrlhf.lm_experiments.evaluate.paired_plots import draw_paired, predicted_differences
from pmrlhf.lm_experiments.evaluate.plot_style import renormalised_label, whisker_lengths
from pmrlhf.lm_experiments.evaluate.plots import FIGURES, save_figures
from pmrlhf.lm_experiments.evaluate.summary import aggregate, paired_differences
from pmrlhf.lm_experiments.train.method import REFERENCE, Method

PNG = b"\x89PNG\r\n\x1a\n"
METHODS = (
    Method("KL b=0.1", "kl", 0.1),
    Method("KL b=1", "kl", 1.0),
    Method("PM b=1", "pm", 1.0),
    Method("cPM b=1 a=0.1", "cpm", 1.0, 0.1),
)
REWARDS = np.log([[0.6, 0.3, 0.1], [0.5, 0.35, 0.15], [0.6, 0.3, 0.1], [0.45, 0.4, 0.15]])
OFF_REWARD = -4.0


def _optimum(method, reference, reward):
    """``pi*(c) = W(c) exp(r_c / beta) / E`` over the candidates, then the rest (the LM
    layer's closed form): KL weighs by the reference, PM by 1 over 10^7 sequences, cPM by 1
    over a plausible tree of 5."""
    weight, total = {"kl": (reference, 1.0), "pm": (1.0, 1e7), "cpm": (1.0, 5.0)}[
        method.regularizer
    ]
    weight = np.broadcast_to(weight, reward.shape)
    off = np.exp(OFF_REWARD / method.beta)
    scaled = weight * np.exp(reward / method.beta)
    best = scaled / (off * total + np.sum(scaled - weight * off))
    return [*best, 1 - best.sum()]


def _evaluation(masses):
    rows = [
        candidate_metrics(np.log(mass), reward, np.exp(reward), OFF_REWARD)
        for mass, reward in zip(masses, REWARDS, strict=True)
    ]
    return {**{k: float(np.mean([r[k] for r in rows])) for k in METRICS}, "prompts": rows}


def fake_summary(seeds=(0, 1, 2)):
    """A summary as :func:`~pmrlhf.lm_experiments.evaluate.summary.aggregate` writes it: each RL
    method ends near its exact optimum, seed by seed, with noise that keeps differences
    non-zero."""
    rng = np.random.default_rng(0)
    reference = np.array([[0.2, 0.25, 0.15], [0.3, 0.1, 0.2], [0.1, 0.2, 0.3], [0.2, 0.2, 0.2]])
    per_seed = {REFERENCE: [{"evaluation": _evaluation(reference), "optimum": None}] * len(seeds)}
    for method in METHODS:
        optima = [_optimum(method, ref, r) for ref, r in zip(reference, REWARDS, strict=True)]
        runs = []
        for _ in seeds:
            noise = np.exp(rng.normal(0, 0.3, reference.shape))
            masses = np.array([o[:-1] for o in optima]) * noise
            masses = masses / np.maximum(masses.sum(1, keepdims=True), 1.0)
            rate = rng.uniform(10, 40)
            curve = [[step, 0.8 * np.exp(-step / rate) + 0.05] for step in range(0, 101, 10)]
            runs.append(
                {
                    "evaluation": _evaluation(masses),
                    "optimum": {"optimum": optima, "bound": [0.0] * len(optima)},
                    "curve": curve,
                }
            )
        per_seed[method.name] = runs
    methods = aggregate(list(seeds), METHODS, per_seed)
    targets = np.exp(REWARDS) / np.exp(REWARDS).sum(1, keepdims=True)
    return {
        "task": "fake_task",
        "model": "no-model",
        "seeds": list(seeds),
        "methods": methods,
        "paired": paired_differences(METHODS, methods),
        "prompts": [
            {"candidates": ["Summer", "Autumn", "Winter"], "target": t.tolist()} for t in targets
        ],
    }


@pytest.fixture(scope="module")
def summary():
    return fake_summary()


def _assert_pngs(paths, out):
    assert [p.name for p in paths] == list(FIGURES)
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name
        pdf = (out / name).with_suffix(".pdf").read_bytes()  # beside each PNG, for a paper
        assert pdf.startswith(b"%PDF") and len(pdf) > 1000, name


def test_save_figures_writes_every_figure_as_png(tmp_path, summary):
    _assert_pngs(save_figures(tmp_path, summary), tmp_path)


def test_a_summary_without_paired_entries_still_draws(tmp_path, summary):
    alone = copy.deepcopy(summary)
    alone["methods"] = {k: alone["methods"][k] for k in (REFERENCE, "KL b=0.1")}
    alone["paired"] = []
    _assert_pngs(save_figures(tmp_path, alone), tmp_path)


def test_a_single_seed_draws_without_intervals(tmp_path):
    _assert_pngs(save_figures(tmp_path, fake_summary(seeds=(0,))), tmp_path)


def test_the_paired_figure_marks_the_entries_predictions(summary):
    pair = next(p for p in summary["paired"] if p["metric"] == "tv_to_target")
    predicted = predicted_differences(pair)
    assert predicted.shape == (len(summary["prompts"]) + 1,)
    assert predicted[:-1] == pytest.approx([p["predicted"] for p in pair["prompts"]])
    assert predicted[-1] == pair["predicted"]
    assert np.all(np.isfinite(predicted)) and np.any(predicted != 0)


def test_pmd_lower_whisker_never_reaches_below_zero():
    means = [0.05, 1.0, 0.3]
    intervals = [[-0.2, 0.3], [0.4, 1.6], [float("nan"), float("nan")]]
    errors = whisker_lengths(means, intervals, floor=0.0)
    assert np.all(np.subtract(means, errors[0]) >= 0)
    assert errors[:, 0] == pytest.approx([0.05, 0.25])  # clipped at 0 below, as is above
    assert errors[:, 1] == pytest.approx([0.6, 0.6])
    assert errors[:, 2] == pytest.approx([0.0, 0.0])  # one seed: no interval
    unclipped = whisker_lengths(means, intervals)
    assert unclipped[0, 0] == pytest.approx(0.25)


def test_plain_pm_is_labelled_with_its_candidate_mass(summary):
    pm = summary["methods"]["PM b=1"]
    coverage = f"{pm['mean']['coverage']:.2g}"
    assert renormalised_label("PM b=1", pm) == f"PM b=1 (renormalised from {coverage} of the mass)"
    assert renormalised_label("KL b=1", summary["methods"]["KL b=1"]) == "KL b=1"
    assert renormalised_label("x", {"regularizer": "pm", "mean": {"coverage": 2.34e-7}}).endswith(
        "from 2.3e-07 of the mass)"
    )


DRAWS = (plots._distributions, plots._convergence, plots._implied, draw_paired)


def _summaries():
    """The fake summary, one with a single seed, and one with no paired entries and one RL
    method (the paired figure's note instead of its panels)."""
    full = fake_summary()
    alone = copy.deepcopy(full)
    alone["methods"] = {k: alone["methods"][k] for k in (REFERENCE, "KL b=0.1")}
    alone["paired"] = []
    return {"full": full, "one seed": fake_summary(seeds=(0,)), "alone": alone}


@pytest.mark.parametrize("draw", DRAWS, ids=lambda d: d.__name__)
@pytest.mark.parametrize("which", ["full", "one seed", "alone"])
def test_every_figure_prints_in_a_two_column_paper(draw, which):
    """At most 7 in wide as saved and no text under 7 pt, at 100 % (issue 23)."""
    figure = draw(_summaries()[which])
    assert print_problems(figure) == []
    plt.close(figure)


@pytest.mark.parametrize("policies", [1, 2, 4, 5])
def test_the_freeform_figure_prints_in_a_two_column_paper(policies):
    rng = np.random.default_rng(0)
    implied = {"reward": rng.uniform(size=30).tolist(), "policy": rng.uniform(size=30).tolist()}
    results = {f"policy {k}": {"implied": implied, "pairwise_pmd": 0.1} for k in range(policies)}
    figure = implied_preference_figure(results)
    assert print_problems(figure) == []
    plt.close(figure)


def test_print_problems_finds_a_wide_figure_and_small_text():
    wide = plt.figure(figsize=(MAX_WIDTH + 1, 2))
    wide.text(0.5, 0.5, "small", fontsize=MIN_FONT - 1)
    problems = print_problems(wide)
    assert any("set width" in p for p in problems) and any("'small'" in p for p in problems)
    # Set narrow, saved wide: a legend outside the figure widens the saved file.
    spill = plt.figure(figsize=(MAX_WIDTH - 0.5, 2))
    ax = spill.add_subplot()
    ax.plot([0, 1], label="a label long enough to reach past the right edge of the page")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    assert any("saved width" in p for p in print_problems(spill))
    plt.close("all")


def test_the_print_style_stays_inside_its_figures():
    before = dict(matplotlib.rcParams)
    figure = print_style(plt.figure)()
    assert figure.texts == [] and dict(matplotlib.rcParams) == before
    plt.close(figure)
