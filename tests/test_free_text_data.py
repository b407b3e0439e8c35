"""The free-text preference data set with a known truth (issue 22): its population, its
pairs and splits, its files, the loader by name or path, and ``pmrlhf lm free-text-data``."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from pmrlhf.errors import PmrlhfUserError
from pmrlhf.lm_experiments.commands.free_text_config import FreeTextConfig
from pmrlhf.lm_experiments.commands.free_text_data import build_splits, make_free_text_data
from pmrlhf.lm_experiments.data.free_text import (
    CARD_FILE,
    SPLIT_FILES,
    clean_response,
    label_pairs,
    read_prompts,
    shipped_folder,
    split_prompts,
    write_free_text,
)
from pmrlhf.lm_experiments.data.preference_datasets import load_preference_dataset
from pmrlhf.lm_experiments.data.preference_pairs import (
    PreferencePair,
    load_preference_pairs,
    write_preference_pairs,
)
from pmrlhf.lm_experiments.data.text_population import (
    FREE_TEXT_POPULATION,
    REASON_MARKERS,
    TextGroup,
    TextPopulation,
)

TEXTS = [
    "Python.",
    "Python, because it reads like English.",
    "Start with Python since the syntax is simple and the community is large and kind.",
    "Morning.",
    "Study at night; I have no strong view on that at all, honestly it depends on you.",
    "Therefore JavaScript.",
    "",
    "The reason is simple: sleep first.",
]


def _brute_force(population, a: str, b: str) -> float:
    """``sum_g w_g sigmoid(u_g(a) - u_g(b))`` by hand, one pair at a time."""
    total = 0.0
    for group in population.groups:
        u = []
        for text in (a, b):
            lowered = " ".join(text.lower().split())
            words = lowered.replace(",", " ").replace(".", " ").replace(":", " ")
            words = " " + words.replace(";", " ") + " "
            reason = any(f" {m} " in words for m in population.markers)
            u.append(group.reason * reason + group.per_word * len(text.split()))
        total += group.weight / (1 + math.exp(-(u[0] - u[1])))
    return total


def test_population_probabilities_are_exact_symmetric_and_in_the_unit_interval():
    a = [x for x in TEXTS for _ in TEXTS]
    b = [y for _ in TEXTS for y in TEXTS]
    p = FREE_TEXT_POPULATION.preference_probability(a, b)
    assert p.shape == (len(a),) and np.all((p >= 0) & (p <= 1))
    expected = [_brute_force(FREE_TEXT_POPULATION, x, y) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p + FREE_TEXT_POPULATION.preference_probability(b, a), 1, atol=1e-12)
    assert np.allclose(p[[i * len(TEXTS) + i for i in range(len(TEXTS))]], 0.5)
    groups = FREE_TEXT_POPULATION.group_probabilities(a, b)
    np.testing.assert_allclose(FREE_TEXT_POPULATION.weights @ groups, p)


def test_reason_markers_are_whole_words_in_any_case():
    words, reason = FREE_TEXT_POPULATION.features(
        ["BECAUSE it is.", "so  that\nyou can", "sincere thanks", "sooner", "Since when", "x"]
    )
    assert reason.tolist() == [1, 1, 0, 0, 1, 0]
    assert words.tolist() == [3, 4, 2, 1, 2, 1]
    assert "because" in REASON_MARKERS


def test_the_two_groups_disagree_where_only_the_longer_answer_gives_a_reason():
    short, reasoned = "Python.", "Python, because it reads like English."
    assert FREE_TEXT_POPULATION.disagreement([short, short], [reasoned, "Python, I think."]) == 0.5
    majority, minority = FREE_TEXT_POPULATION.group_probabilities([short], [reasoned])[:, 0]
    assert majority > 0.5 > minority


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ((), "groups must be a non-empty tuple"),
        ((TextGroup("a", 0.5, 0, -0.1),), "weights must sum to 1"),
        ((TextGroup("a", 0.5, 0, -0.1), TextGroup("a", 0.5, 1, 0)), "distinct names"),
        (("brief",), r"groups\[0\] must be a TextGroup"),
    ],
)
def test_population_validation_names_the_argument(groups, message):
    with pytest.raises(ValueError, match=message):
        TextPopulation(groups)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("a", 1.0, float("nan"), 0.0), "group 'a': reason must be finite"),
        (("a", 1.0, 0.0, float("inf")), "group 'a': per_word must be finite"),
        (("a", 0.0, 0.0, 0.0), "group 'a': weight must lie in"),
        (("a", "1", 0.0, 0.0), "group 'a': weight must be a real number"),
        (("", 1.0, 0.0, 0.0), "name must be a non-empty string"),
    ],
)
def test_group_validation_names_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        TextGroup(*fields)


def test_population_refuses_bad_markers_and_texts_and_round_trips():
    group = TextGroup("all", 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="markers must be"):
        TextPopulation((group,), markers=("because", " "))
    with pytest.raises(TypeError, match="a must be a sequence of strings"):
        FREE_TEXT_POPULATION.preference_probability("abc", ["x"])
    with pytest.raises(ValueError, match="equal lengths"):
        FREE_TEXT_POPULATION.preference_probability(["a"], ["b", "c"])
    data = json.loads(json.dumps(FREE_TEXT_POPULATION.to_dict()))
    assert TextPopulation.from_dict(data) == FREE_TEXT_POPULATION


def test_labels_are_drawn_from_the_exact_probability():
    short, reasoned = "Python.", "Python, because it reads like English and it is calm."
    p = float(FREE_TEXT_POPULATION.preference_probability([short], [reasoned])[0])
    rng = np.random.default_rng(0)
    draws = [
        label_pairs("q?", [short, reasoned], FREE_TEXT_POPULATION, rng)[0] for _ in range(4000)
    ]
    wins = np.mean([pair.chosen == short for pair, _ in draws])
    assert abs(wins - p) < 4 * math.sqrt(p * (1 - p) / 4000)
    for pair, extra in draws[:20]:
        truth = FREE_TEXT_POPULATION.preference_probability([pair.chosen], [pair.rejected])[0]
        assert extra["population_preference"] == pytest.approx(truth, abs=1e-12)
        assert set(extra["group_preferences"]) == {"brief", "reasons"}
        assert pair.messages == ({"role": "user", "content": "q?"},)


def test_a_cut_off_response_keeps_its_full_sentences():
    assert clean_response(" Python. Because it is", ended=False) == "Python."
    assert clean_response('He said "go!" and then', ended=False) == 'He said "go!"'
    assert clean_response("Version 3.11 is", ended=False) == ""
    assert clean_response(" Ends here, no stop ", ended=True) == "Ends here, no stop"
    assert clean_response(" One. Two", ended=False, unfinished="keep") == "One. Two"
    assert clean_response(" One. Two", ended=False, unfinished="drop") == ""
    texts = [["One. Two", "One!", "no end"], ["A b.", "A b.", "A b c."], ["x.", "y."]]
    ended = [[False, True, False], [True, True, True], [True, True]]
    splits, stats = build_splits(
        ["p", "q", "r"], texts, FREE_TEXT_POPULATION, seed=0, test_share=0.3, ended=ended
    )
    assert stats["kept"] == 6 and stats["empty_dropped"] == 1 and stats["repeats_dropped"] == 1
    texts = {text for pair, _ in splits["train"] + splits["test"] for text in pair[1:]}
    assert texts == {"One.", "One!", "A b.", "A b c.", "x.", "y."}


def test_the_split_holds_out_whole_prompts():
    prompts = [f"question {i}?" for i in range(8)]
    texts = [[f"answer {i}.{k}" + " word" * k for k in range(3)] + [""] for i in range(8)]
    splits, stats = build_splits(prompts, texts, FREE_TEXT_POPULATION, seed=3, test_share=0.25)
    seen = {name: {p.messages[0]["content"] for p, _ in rows} for name, rows in splits.items()}
    assert len(seen["test"]) == 2 and len(seen["train"]) == 6 and not seen["test"] & seen["train"]
    assert len(splits["train"]) == 6 * 3 and stats["empty_dropped"] == 8
    again, _ = build_splits(prompts, texts, FREE_TEXT_POPULATION, seed=3, test_share=0.25)
    assert again == splits
    assert split_prompts(2, 0.9, np.random.default_rng(0))[0]  # one prompt stays in train
    with pytest.raises(PmrlhfUserError, match="at least 2 prompts"):
        split_prompts(1, 0.5, np.random.default_rng(0))


def test_written_files_read_back_exactly(tmp_path):
    prompts = ["Tea or coffee?", "Bus or bike?", "Cat or dog?"]
    texts = [[" Tea.", "Coffee, because it wakes me.", "Tea\n\nAssistant: no"]] * 3
    splits, _ = build_splits(prompts, texts, FREE_TEXT_POPULATION, seed=0, test_share=0.3)
    write_free_text(tmp_path, splits, {"name": "x"})
    data = load_preference_dataset(tmp_path)
    assert data.card == {"name": "x"} and set(data.splits) == {"train", "test"}
    for name, rows in splits.items():
        assert list(data[name]) == [pair for pair, _ in rows]
        assert data.truth[name] == tuple(extra["population_preference"] for _, extra in rows)
        assert load_preference_pairs(tmp_path / SPLIT_FILES[name]) == list(data[name])
    row = data.rows("test")[0]
    assert set(row) == {"prompt", "chosen", "rejected", "population_preference"}
    assert row["chosen"][0]["role"] == "assistant"
    dataset = data.to_dataset("train")
    assert dataset.num_rows == len(splits["train"]) and dataset[0] == data.rows("train")[0]


def test_extra_keys_may_not_replace_the_pair(tmp_path):
    pair = PreferencePair(({"role": "user", "content": "q"},), "a", "b")
    with pytest.raises(PmrlhfUserError, match="one mapping per pair"):
        write_preference_pairs(tmp_path / "p.jsonl", [pair], extra=[{"chosen": "c"}])
    with pytest.raises(PmrlhfUserError, match="one mapping per pair"):
        write_preference_pairs(tmp_path / "p.jsonl", [pair], extra=[])


def test_the_loader_refuses_unknown_names_and_partial_truth(tmp_path):
    with pytest.raises(PmrlhfUserError, match="unknown preference data set 'nope'") as err:
        load_preference_dataset("nope")
    assert "pmrlhf/free-text" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PmrlhfUserError, match="holds no train.jsonl"):
        load_preference_dataset(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_preference_dataset(tmp_path / "missing.jsonl")
    pair = PreferencePair(({"role": "user", "content": "q"},), "a", "b")
    write_preference_pairs(
        tmp_path / "train.jsonl", [pair, pair], extra=[{"population_preference": 0.7}, {}]
    )
    with pytest.raises(PmrlhfUserError, match="on 1 of 2 rows"):
        load_preference_dataset(tmp_path)
    write_preference_pairs(tmp_path / "train.jsonl", [pair], extra=[{"population_preference": 2}])
    with pytest.raises(PmrlhfUserError, match=r"population_preference must lie in \[0, 1\]"):
        load_preference_dataset(tmp_path)
    write_preference_pairs(tmp_path / "train.jsonl", [pair], extra=[{"population_preference": 1}])
    assert load_preference_dataset(tmp_path).truth == {"train": (1.0,)}
    with pytest.raises(PmrlhfUserError, match="split must be one of train"):
        load_preference_dataset(tmp_path / "train.jsonl", limit=1)["test"]


def test_a_hub_data_set_goes_through_the_hh_parser(monkeypatch):
    import datasets

    rows = [
        {
            "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello.",
            "rejected": "\n\nHuman: Hi?\n\nAssistant: Go.",
        }
    ]
    fake = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows * 3)})
    monkeypatch.setattr(datasets, "load_dataset", lambda name: fake)
    data = load_preference_dataset("Anthropic/hh-rlhf", limit=2)
    hello = PreferencePair(({"role": "user", "content": "Hi?"},), "Hello.", "Go.")
    assert data["train"] == (hello, hello)
    assert data.truth == {}

    def offline(name):
        raise ConnectionError("no network\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(PmrlhfUserError, match="could not load 'Anthropic/hh-rlhf' from the hub"):
        load_preference_dataset("Anthropic/hh-rlhf")


def test_the_shipped_data_set_matches_its_card_and_its_population():
    folder = shipped_folder()
    card = json.loads((folder / CARD_FILE).read_text())
    data = load_preference_dataset("pmrlhf/free-text")
    assert data.card == card and load_preference_dataset("free_text").splits == data.splits
    population = TextPopulation.from_dict(card["population"])
    assert population == FREE_TEXT_POPULATION
    prompts = {}
    for name, pairs in data.splits.items():
        assert len(pairs) == card["pairs"][name]["pairs"] > 0
        assert (folder / SPLIT_FILES[name]).stat().st_size < 1_000_000
        chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
        recomputed = population.preference_probability(chosen, rejected)
        np.testing.assert_allclose(data.truth[name], recomputed, rtol=0, atol=1e-12)
        disagreement = population.disagreement(chosen, rejected)
        assert disagreement == pytest.approx(card["pairs"][name]["group_disagreement"], abs=1e-4)
        prompts[name] = {p.messages[-1]["content"] for p in pairs}
        assert len(prompts[name]) == card["prompts"][name]
    assert not prompts["train"] & prompts["test"]
    assert prompts["train"] | prompts["test"] <= set(read_prompts())
    assert card["pairs"]["all"]["group_disagreement"] >= 0.15  # the groups genuinely disagree


def test_generation_with_tiny_llama_is_deterministic_for_a_seed(tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"prompts": ["Tea?", "Bus or bike?", "Cat or dog?", "Rent?"]}))
    config = FreeTextConfig(
        model="tiny-llama",
        samples=3,
        max_new_tokens=6,
        prompts=str(prompts),
        batch_prompts=3,
        unfinished="keep",  # a random model seldom ends a sentence
    )
    cards = [make_free_text_data(config, tmp_path / n, progress=False) for n in ("a", "b")]
    for name in SPLIT_FILES.values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    card = cards[0]
    assert card["responses"]["sampled"] == 12 and card["prompts"]["test"] == 1
    assert card["model"] == "tiny-llama" and "seconds" in card
    data = load_preference_dataset(tmp_path / "a")
    assert len(data["train"]) == card["pairs"]["train"]["pairs"]
    make_free_text_data(replace(config, seed=1), tmp_path / "c", progress=False)
    train = SPLIT_FILES["train"]
    assert (tmp_path / "c" / train).read_bytes() != (tmp_path / "a" / train).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "1"], "--samples must be an int >= 2 (pairs need two responses), got 1"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be a positive int, got 0"),
        (["--test-share", "1"], "--test-share must lie in (0, 1), got 1.0"),
        (["--seed", "-1"], "--seed must be a non-negative int, got -1"),
        (["--model", " "], "--model must name a model"),
        (["--prompts", "missing.yaml"], "missing.yaml"),
        (["--batch-prompts", "0"], "--batch-prompts must be a positive int, got 0"),
    ],
)
def test_the_command_refuses_bad_values_in_one_line(pmrlhf_here, tmp_path, args, message):
    status, err = pmrlhf_here("lm", "free-text-data", "--out", tmp_path / "o", *args)
    assert status == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_the_shipped_files_are_package_data():
    """pyproject.toml's package-data globs cover every shipped file, so a wheel holds them."""
    import fnmatch
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    section = (root / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    globs = re.findall(r'"([^"]+)"', section.split("\n[")[0])
    package = root / "src" / "pmrlhf"
    for path in shipped_folder().iterdir():
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, g) for g in globs), relative
    assert {p.name for p in shipped_folder().iterdir()} >= {*SPLIT_FILES.values(), CARD_FILE}
