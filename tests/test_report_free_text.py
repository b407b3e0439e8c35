"""README's free-text block (``report/free_text_results.py``), from a real smoke audit of
``pmrlhf lm paper`` (one seed) and a two-seed variant of it whose intervals are set here."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pmrlhf.lm_experiments.evaluate.summary import seed_summary
from pmrlhf.lm_experiments.train.method import REFERENCE
from pmrlhf.report import free_text_results as free_text
from pmrlhf.report import matched_beta
from pmrlhf.report.figures import publish_figures
from pmrlhf.report.readme import update_readme

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "free_text_audit"
KL, CPM, REF = "KL b=0.1", "cPM b=1 a=0.1", "reference (SFT)"
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _results(tmp_path: Path, summary: dict | None = None) -> Path:
    folder = tmp_path / "results" / free_text.FOLDER
    (folder / "audit").mkdir(parents=True)
    shutil.copy(FIXTURE / "config.yaml", folder / "config.yaml")
    shutil.copy(FIXTURE / "summary.csv", folder / "audit" / "summary.csv")
    summary = summary or json.loads((FIXTURE / "summary.json").read_text())
    (folder / "audit" / "summary.json").write_text(json.dumps(summary))
    return tmp_path / "results"


def _stats(seeds: list[float]) -> dict:
    return seed_summary(seeds)


def two_seeds(kl_pmd=(11.0, 11.3)) -> dict:
    """Seeds 0 and 1: every metric spread by 1%; the population PMD set so that the reference
    beats KL b=0.1 (paired interval above 0) but not cPM (interval holds 0), and the paired
    KL - cPM intervals set: below 0 in PMD, holding 0 in reward."""
    summary = json.loads((FIXTURE / "summary.json").read_text())
    summary["seeds"] = [0, 1]
    for values in summary["policies"].values():
        for stat in values.values():
            stat.update(_stats([stat["mean"] * 0.99, stat["mean"] * 1.01]))
    pmd = free_text.POPULATION_PMD
    summary["policies"][REF][pmd] = _stats([10.0, 10.2])
    summary["policies"][KL][pmd] = _stats(list(kl_pmd))
    summary["policies"][CPM][pmd] = _stats([10.0, 10.3])
    for entry in summary["paired"]:
        entry["seeds"] = [entry["mean"], entry["mean"]]
        entry["low"], entry["high"] = entry["mean"] - 1, entry["mean"] + 1
        if entry["metric"] == pmd:
            entry.update(mean=-0.5, low=-0.9, high=-0.1)
        if entry["metric"] == "mean_reward":
            entry.update(mean=0.1, low=-0.2, high=0.4)
    return summary


def _table_rows(block: str) -> list[list[str]]:
    lines = [line for line in block.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


def _printed(summary: dict) -> set[str]:
    out = set()
    for values in summary["policies"].values():
        for stat in values.values():
            for key in ("mean", "low", "high"):
                if stat[key] is not None:
                    out.add(f"{stat[key]:.3g}")
    return out


@pytest.mark.parametrize("variant", ["one seed", "two seeds"])
def test_table_shows_every_policy_with_numbers_from_the_summary(tmp_path, variant):
    summary = two_seeds() if variant == "two seeds" else None
    results = _results(tmp_path, summary)
    summary = summary or json.loads((FIXTURE / "summary.json").read_text())
    block = free_text.free_text_block(results)
    assert block.startswith(free_text.START) and block.endswith(free_text.END)
    for label in free_text.COLUMNS.values():
        assert label in block
    rows = _table_rows(block[block.index("**The measurement**") :])
    assert [row[0] for row in rows] == [REF, KL, CPM]  # the reference first
    printed = _printed(summary)
    for row in rows:
        for cell in row[1:]:
            if cell == "–":  # the reference has no optimum of its own
                assert row[0] == REF
                continue
            numbers = NUMBER.findall(cell)
            assert numbers, cell
            assert all(n in printed for n in numbers), (cell, printed)
            # an interval exactly where the summary has one
            assert ("[" in cell) == (variant == "two seeds"), cell
    assert f"figures/{free_text.FIGURE}" in block and f"figures/{free_text.CURVES}" in block
    # The theory's prediction is printed before the measurement, its numbers the summary's.
    assert block.index("**The theory's prediction**") < block.index("**The measurement**")
    assert block.index("**Choosing alpha**") < block.index("**The theory's prediction**")
    prediction = block[
        block.index("**The theory's prediction**") : block.index("**The measurement**")
    ]
    optima = summary["optima"]
    predicted = _table_rows(prediction)
    assert [row[0] for row in predicted[:-1]] == list(optima)
    pm, rm = predicted.pop(), summary["reward_model"]  # PM b=1's optimum: the reward model
    assert pm[0].startswith("PM b=1") and pm[1] == f"{rm['pmd_vs_population']:.3g}"
    assert pm[3] == "0" and pm[4] == "0"
    for row, optimum in zip(predicted, optima.values(), strict=True):
        assert row[1] == f"{optimum['pairs_pmd_vs_population']:.3g}"
        assert row[-1] == f"{optimum['reference_pairs_gap_vs_optimum']:.3g}"
    used = f"{summary['alpha']:g} (used)"
    assert f"| {used} |" in block
    assert "smollm2-135m" in block and "pmrlhf/free-text" in block
    rm = summary["reward_model"]
    assert f"{rm['test_accuracy']:.3g}" in block and f"{rm['pmd_vs_population']:.3g}" in block


def test_paired_sentences_give_the_sign_or_say_no_result(tmp_path):
    one = free_text.free_text_block(_results(tmp_path / "one"))
    assert f"{KL} minus {CPM} in pairwise PMD vs the population" in one
    assert "one seed, no interval: no result" in one
    two = free_text.free_text_block(_results(tmp_path / "two", two_seeds()))
    pmd = next(s for s in two.splitlines() if f"{KL} minus {CPM} in pairwise PMD" in s)
    assert "-0.5 [-0.9, -0.1]" in pmd and f"{KL} is closer (the interval lies below 0)" in pmd
    reward = next(s for s in two.splitlines() if f"{KL} minus {CPM} in mean reward" in s)
    assert "+0.1 [-0.2, +0.4]" in reward and "the interval contains 0: no result" in reward
    # a reward interval above 0: a has the higher reward
    summary = two_seeds()
    for entry in summary["paired"]:
        if entry["metric"] == "mean_reward":
            entry.update(low=0.05, high=0.15)
    sentences = free_text.paired_sentences(summary)
    assert any(f"{KL} has the higher value (the interval lies above 0)" in s for s in sentences)


def test_the_reference_beating_a_method_is_said_exactly_when_it_does():
    said = "The reference (SFT) itself is closer to the population than"
    lines = free_text.reference_sentences(two_seeds())
    assert lines[0].startswith(f"{said} {KL} ") and CPM not in lines[0]
    cpm = next(line for line in lines if line.startswith(f"{CPM} minus the reference"))
    assert "no result" in cpm
    # KL closer than the reference: said the other way round, and no baseline sentence
    lines = free_text.reference_sentences(two_seeds(kl_pmd=(9.0, 9.3)))
    assert not any(said in line for line in lines)
    kl = next(line for line in lines if line.startswith(f"{KL} minus the reference"))
    assert f"{KL} is closer (the interval lies below 0)" in kl
    # one seed: no interval, so no claim either way
    one = json.loads((FIXTURE / "summary.json").read_text())
    assert not any(said in line for line in free_text.reference_sentences(one))
    assert one == json.loads((FIXTURE / "summary.json").read_text())  # left unchanged


def test_update_readme_rewrites_the_block_and_leaves_it_without_results(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()  # the block as published, or not yet
    start, end = text.index(free_text.START), text.index(free_text.END)
    placeholder = "*No free-text result is published yet"
    text = text[:start] + f"{free_text.START}\n{placeholder}.*\n" + text[end:]
    readme.write_text(text)
    original = readme.read_text()
    assert placeholder in original and original.count(free_text.START) == 1
    # no results at all: nothing written, the placeholder stays
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        update_readme(readme, tmp_path / "empty", command="c")
    assert readme.read_text() == original
    # the free-text results only: its block is written, every other block left as it was
    results = _results(tmp_path, two_seeds())
    update_readme(readme, results, command="c")
    text = readme.read_text()
    assert placeholder not in text and text.count(free_text.START) == 1
    assert free_text.free_text_block(results) in text
    before, after = original.split(free_text.START)[0], original.split(free_text.END)[1]
    assert text.startswith(before) and text.endswith(after)
    # matched-beta results only: the free-text block stays as it was
    stale = f"{free_text.START}\nKEPT\n{free_text.END}\n{matched_beta.START}\nSTALE\n"
    readme.write_text(stale + f"{matched_beta.END}\n")
    other = tmp_path / "other"  # no paper_cpu; matched-beta's block stands in for its results
    other.mkdir()
    new = f"{matched_beta.START}\nNEW\n{matched_beta.END}"
    monkeypatch.setattr(matched_beta, "matched_beta_block", lambda results: new)
    update_readme(readme, other, command="c")
    assert readme.read_text() == f"{free_text.START}\nKEPT\n{free_text.END}\n{new}\n"


def test_publish_copies_the_free_text_figure_only_when_it_exists(tmp_path):
    assert publish_figures(tmp_path, tmp_path / "figs") == []
    audit = tmp_path / free_text.FOLDER / "audit"
    audit.mkdir(parents=True)
    (audit / "implied_preferences.png").write_bytes(b"png")
    copied = publish_figures(tmp_path, tmp_path / "figs")
    assert [Path(p).name for p in copied] == [free_text.FIGURE]


def test_paired_sentences_go_pair_by_pair_kl_against_cpm_first():
    summary = json.loads((FIXTURE / "summary.json").read_text())
    methods = [e for e in summary["paired"] if REF not in (e["a"], e["b"])]
    kl1 = [dict(e, a="KL b=1") for e in methods]
    kls = [dict(e, b="KL b=1") for e in methods]
    summary["paired"] = kls + summary["paired"] + kl1  # the reference's entries stay out
    heads = [
        s.split(" in ")[0] + " / " + s.split(" in ")[1].split(":")[0]
        for s in free_text.paired_sentences(summary)
    ]
    metrics = ["pairwise PMD vs the population", "pairs gap vs the population", "mean reward"]
    pairs = [f"{KL} minus {CPM}", f"KL b=1 minus {CPM}", f"{KL} minus KL b=1"]
    assert heads == [f"{pair} / {metric}" for pair in pairs for metric in metrics]


def test_the_reading_sentences_follow_the_numbers():
    from pmrlhf.report.free_text_reading import reading_sentences

    summary = {
        "policies": {
            REFERENCE: {"kl_to_reference_per_token": {"mean": 0.0}},
            "KL b=0.1": {"kl_to_reference_per_token": {"mean": 0.0123}},
        }
    }
    pairs = pd.DataFrame(
        {
            "policy": [REFERENCE, REFERENCE, "KL b=0.1", "KL b=0.1"],
            "p_policy": [1.0, 0.5, 0.01, 0.99],
            "p_population": [0.4, 0.6, 0.4, 0.97],
        }
    )
    moved, saturated = reading_sentences(summary, {"rl": {"steps": 7, "lr": 1e-5}}, pairs)
    assert "after 7 steps" in moved and "KL b=0.1 0.0123" in moved and REFERENCE + " 0" not in moved
    assert "against 0.25 for the population" in saturated
    assert f"{REFERENCE} 0.5, KL b=0.1 1" in saturated
    assert "not the method" not in saturated  # half the reference's pairs: not "most"
    assert "of the optima" not in saturated  # pairs.csv without p_optimum
    pairs["seed"] = 0
    pairs["p_optimum"] = [None, None, 0.5, 0.999]
    assert "; of the optima (theory): KL b=0.1 0.5" in reading_sentences(summary, {}, pairs)[-1]
    pairs["p_policy"] = [1.0, 0.0, 0.01, 0.99]
    assert "not the method" in reading_sentences(summary, {}, pairs)[-1]
    assert reading_sentences({"policies": {}}, {}, None) == []
    # With the optima: how far each policy went toward its own.
    summary["optima"] = {"KL b=0.1": {"reference_pairs_gap_vs_optimum": 0.4}}
    gap = {"mean": 0.3, "low": 0.25, "high": 0.35}
    summary["policies"]["KL b=0.1"]["pairs_gap_vs_optimum"] = gap
    toward = reading_sentences(summary, {}, None)[-1]
    assert "KL b=0.1 0.4 -> 0.3 [0.25, 0.35], closer than the reference" in toward
    gap.update(mean=0.5, low=0.45, high=0.55)
    assert "further than the reference" in reading_sentences(summary, {}, None)[-1]
    gap.update(low=0.35)
    assert "contains the reference's value: no result" in reading_sentences(summary, {}, None)[-1]
    gap.update(low=None, high=None)
    assert "one seed, no interval: no result" in reading_sentences(summary, {}, None)[-1]


def test_the_prediction_sentence_compares_kl_and_cpm_at_the_same_beta_only():
    from pmrlhf.report.free_text_theory import prediction_sentences

    pmd = "pairs_pmd_vs_population"
    summary = {
        "policies": {REF: {pmd: {"mean": 12.5}}},
        "reward_model": {"pmd_vs_population": 0.5},
        "optima": {"KL b=0.1": {pmd: 13.0}, "KL b=1": {pmd: 12.5}, CPM: {pmd: 11.3}},
    }
    (line,) = prediction_sentences(summary)  # KL b=0.1 has no cPM at its beta
    assert line.startswith("At beta 1, KL's optimum is at pairwise PMD 12.5")
    assert "conditional PM's at 11.3 (the reference: 12.5)" in line
    assert "as the paper claims, by 10% of the way from KL's optimum" in line
    summary["optima"][CPM][pmd] = 12.9
    (line,) = prediction_sentences(summary)
    assert "predicts KL the closer here, against the paper's claim." in line
