"""The experiments end to end, the runner's files and determinism."""

import json

import numpy as np
import pandas as pd
import pytest

from pmrlhf.simulate import run_experiments
from pmrlhf.simulate.experiments import EXPERIMENTS


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    return out, run_experiments(None, out_dir=out, seed=0, quick=True, progress=False)


def test_every_experiment_writes_csv_png_and_summary(quick_run):
    out, summary = quick_run
    for name in EXPERIMENTS:
        assert len(pd.read_csv(out / f"{name}.csv")) > 0
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in summary["experiments"]
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_headlines_show_collapse_and_matching(quick_run):
    _, summary = quick_run
    collapse = summary["experiments"]["collapse"]
    assert collapse["kl_minority_mass"] == pytest.approx(0.01705, abs=1e-5)
    assert collapse["pm_minority_mass"] == pytest.approx(0.4)
    assert collapse["reinforce_max_abs_error_pm"] < 1e-3
    assert collapse["reinforce_max_abs_error_kl"] < 1e-2
    finite = summary["experiments"]["finite_data"]
    assert finite["pm_tv_to_truth"] < 0.1 < 0.5 < finite["kl_tv_to_truth"]
    hetero = summary["experiments"]["heterogeneous"]
    assert hetero["max_pm_algorithm_gap"] < 1e-9 < hetero["max_reward_model_gap"]
    tree = summary["experiments"]["token_tree"]
    assert tree["cpm_mass_on_meaningful_at_alpha"] > 0.8 > 0.2 > tree["pm_mass_on_meaningful"]
    ranks = summary["experiments"]["pairwise_vs_rankings"]
    assert ranks["tv_full_rankings"] < ranks["tv_pairwise"]


def test_same_seed_same_numbers(tmp_path):
    a = run_experiments(
        ["finite_data", "collapse"], out_dir=tmp_path / "a", seed=3, quick=True, progress=False
    )
    b = run_experiments(
        ["finite_data", "collapse"], out_dir=tmp_path / "b", seed=3, quick=True, progress=False
    )
    for name in ("finite_data", "collapse"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "a" / f"{name}.csv"), pd.read_csv(tmp_path / "b" / f"{name}.csv")
        )
        assert {k: v for k, v in a["experiments"][name].items() if k != "seconds"} == {
            k: v for k, v in b["experiments"][name].items() if k != "seconds"
        }
    c = run_experiments(["finite_data"], out_dir=tmp_path / "c", seed=4, quick=True, progress=False)
    assert not np.isclose(
        c["experiments"]["finite_data"]["pm_tv_to_truth"],
        a["experiments"]["finite_data"]["pm_tv_to_truth"],
    )


def test_unknown_experiment_name_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="collapse"):
        run_experiments(["nope"], out_dir=tmp_path)


@pytest.mark.parametrize("name", ["heterogeneous", "token_tree"])
def test_each_experiment_maps_a_config_to_a_frame_and_a_figure(name):
    import dataclasses

    from matplotlib.figure import Figure

    from pmrlhf.simulate.experiments import HEADLINES

    function, full, quick = EXPERIMENTS[name]
    assert dataclasses.is_dataclass(full) and type(full) is type(quick)
    frame, figure = function(dataclasses.replace(quick, seed=2))
    assert isinstance(frame, pd.DataFrame) and isinstance(figure, Figure)
    assert figure.texts and all(ax.get_xlabel() and ax.get_ylabel() for ax in figure.axes)
    assert all(np.isfinite(v) for v in HEADLINES[name](frame).values())


def test_every_experiment_has_a_report_table_of_its_comparison(quick_run):
    from pmrlhf.report.writer import MAX_TABLE_ROWS
    from pmrlhf.simulate.experiments import REPORT_TABLES

    out, _ = quick_run
    assert set(REPORT_TABLES) == set(EXPERIMENTS)
    for name, summarize in REPORT_TABLES.items():
        table = summarize(pd.read_csv(out / f"{name}.csv"))
        assert 0 < len(table) <= 2 * MAX_TABLE_ROWS, name
        assert not any("|" in str(column) for column in table.columns), name  # Markdown cells


def test_finite_data_table_puts_pm_beside_kl(quick_run):
    from pmrlhf.simulate.experiments import REPORT_TABLES

    out, _ = quick_run
    frame = pd.read_csv(out / "finite_data.csv")
    table = REPORT_TABLES["finite_data"](frame).set_index("comparisons")
    assert list(table.index) == sorted(frame.comparisons.unique())
    for n, group in frame.groupby("comparisons"):
        for method, name in (("pm", "PM"), ("kl", "KL")):
            rows = group[group.method == method]
            assert table.loc[n, f"{name}: mean TV to truth"] == pytest.approx(
                rows.tv_to_truth.mean()
            )
            assert table.loc[n, f"{name}: mean KL to truth"] == pytest.approx(
                rows.kl_to_truth.mean()
            )
        assert table.loc[n, "seeds"] == group.seed.nunique()
    # The comparison the report's text makes: PM approaches the truth, KL does not.
    tv = table[["PM: mean TV to truth", "KL: mean TV to truth"]]
    assert (tv.iloc[:, 0] < tv.iloc[:, 1]).all() and tv.iloc[-1, 0] < tv.iloc[0, 0]


def test_collapse_and_biased_reference_tables_show_every_method(quick_run):
    from pmrlhf.simulate.experiments import REPORT_TABLES

    out, _ = quick_run
    collapse = REPORT_TABLES["collapse"](pd.read_csv(out / "collapse.csv")).set_index("beta")
    assert collapse.loc[0.1, "KL, uniform ref"] == pytest.approx(0.01705, abs=1e-5)
    np.testing.assert_allclose(collapse.PM, collapse.target)
    assert collapse.loc[0.1, "PM, REINFORCE"] == pytest.approx(0.4, abs=1e-3)
    biased = REPORT_TABLES["biased_reference"](pd.read_csv(out / "biased_reference.csv"))
    assert {"KL b=0.1", "KL b=1", "PM b=1"} <= set(biased.columns)
    assert biased["PM b=1"].nunique() == 1  # PM ignores the reference's odds


def test_one_folder_holds_one_consistent_set_of_results(tmp_path):
    from pmrlhf.errors import PmrlhfUserError
    from pmrlhf.simulate.runner import run_experiments

    run_experiments(["collapse"], out_dir=tmp_path, quick=True, progress=False)
    both = run_experiments(["token_tree"], out_dir=tmp_path, quick=True, progress=False)
    assert set(both["experiments"]) == {"collapse", "token_tree"}  # merged, not replaced
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["experiments"]) == {"collapse", "token_tree"}
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(PmrlhfUserError, match="seed 0.*--force"):
        run_experiments(["collapse"], out_dir=tmp_path, seed=1, quick=True, progress=False)
    with pytest.raises(PmrlhfUserError, match="quick True.*--force"):
        run_experiments(["collapse"], out_dir=tmp_path, quick=False, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # refused before any work
    forced = run_experiments(
        ["collapse"], out_dir=tmp_path, seed=1, quick=True, progress=False, force=True
    )
    assert forced["seed"] == 1 and set(forced["experiments"]) == {"collapse"}
    assert not (tmp_path / "token_tree.csv").exists()  # the other seed's files went with it


def test_an_unreadable_summary_is_refused_without_force(tmp_path):
    from pmrlhf.errors import PmrlhfUserError
    from pmrlhf.simulate.runner import run_experiments

    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(PmrlhfUserError, match="unreadable summary.json"):
        run_experiments(["collapse"], out_dir=tmp_path, quick=True, progress=False)
    run_experiments(["collapse"], out_dir=tmp_path, quick=True, progress=False, force=True)
    assert json.loads((tmp_path / "summary.json").read_text())["experiments"]


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_figure_prints_in_a_two_column_paper(name):
    """At most 7 in wide as saved and no text under 7 pt, at 100 % (issue 23)."""
    import matplotlib.pyplot as plt

    from pmrlhf._figure_style import print_problems

    function, _, quick = EXPERIMENTS[name]
    _, figure = function(quick)
    assert print_problems(figure) == []
    plt.close(figure)
