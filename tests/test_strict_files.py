"""Task and config files are read strictly: YAML 1.2 booleans and floats, bounds on size,
depth and aliases, unknown keys with the nearest name, wrong types named, one line each."""

import json
import time

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pmrlhf.errors import PmrlhfUserError
from pmrlhf.lm_experiments import load_task
from pmrlhf.lm_experiments.commands.run_config import RunConfig

TASK = {
    "prompts": [
        {
            "messages": [{"role": "user", "content": "Pick one."}],
            "candidates": ["A", "B"],
            "population": {"weights": [1.0], "utilities": [[0.0, 1.0]]},
            "sft_weights": [0.5, 0.5],
        }
    ],
}


def load_yaml_text(text, *, source):
    from pmrlhf._yaml import load_yaml_text

    return load_yaml_text(text, source=source)


def read_data_file(path, *, name):
    from pmrlhf._yaml import read_data_file

    return read_data_file(path, name=name)


MAX_DEPTH = 50  # pmrlhf._yaml.MAX_DEPTH


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# --- the YAML loader ------------------------------------------------------------------


def test_yaml_11_booleans_stay_strings_and_12_floats_are_floats():
    data = load_yaml_text(
        "candidates: [Yes, No, on, off, y, n, true, False, TRUE]\nlr: 3e-5\n"
        "x: [1e10, .5, -1.5E+3, .inf, -.inf, 1, 2.0]\nn: .nan\n",
        source="f",
    )
    assert data["candidates"] == ["Yes", "No", "on", "off", "y", "n", True, False, True]
    assert data["lr"] == 3e-05 and isinstance(data["lr"], float)
    assert data["x"] == [1e10, 0.5, -1500.0, float("inf"), float("-inf"), 1, 2.0]
    assert isinstance(data["x"][5], int)
    assert data["n"] != data["n"]  # NaN


def test_yaml_12_ints():
    data = load_yaml_text("[010, 0o17, 0x1F, -5, +3, 0, 1:30, 1_000]", source="f")
    assert data == [10, 15, 31, -5, 3, 0, "1:30", "1_000"]


@given(st.integers())
def test_ints_written_by_yaml_read_back_as_the_same_int(value):
    assert load_yaml_text(yaml.safe_dump(value), source="f") == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_written_by_yaml_or_repr_read_back_as_the_same_float(value):
    assert load_yaml_text(repr(value), source="f") == value
    assert load_yaml_text(yaml.safe_dump(value), source="f") == value


def test_billion_laughs_is_refused_fast_in_one_line():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 500
    start = time.perf_counter()
    with pytest.raises(PmrlhfUserError, match="aliases") as err:
        load_yaml_text(text, source="bomb.yaml")
    assert time.perf_counter() - start < 0.5
    assert _one_line(err).startswith("bomb.yaml")


def test_recursive_alias_is_refused():
    with pytest.raises(PmrlhfUserError, match="alias"):
        load_yaml_text("&a [*a]", source="f")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_gives_one_line_not_recursion_error(tmp_path, suffix):
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(PmrlhfUserError, match=f"deeper than {MAX_DEPTH}") as err:
        read_data_file(path, name="--config")
    assert _one_line(err).startswith("--config")


def test_nesting_up_to_the_bound_is_read():
    text = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_yaml_text(text, source="f") is not None


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x00\x01\x02binary", "binary file"),
        ("name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"a: " + b"x" * (1 << 20), "larger than"),
    ],
)
def test_binary_latin1_and_huge_files_are_refused_naming_the_argument(tmp_path, content, match):
    path = tmp_path / "f.yaml"
    path.write_bytes(content)
    with pytest.raises(PmrlhfUserError, match=match) as err:
        read_data_file(path, name="--config")
    assert _one_line(err).startswith(f"--config {path}")


def test_a_folder_is_refused_naming_the_argument(tmp_path):
    with pytest.raises(PmrlhfUserError, match="is a folder") as err:
        RunConfig.from_file(tmp_path, name="--config")
    assert _one_line(err).startswith("--config")
    with pytest.raises(PmrlhfUserError, match="task file .* is a folder"):
        load_task(tmp_path)


def test_utf8_with_bom_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xef\xbb\xbfseed: 3\n")
    assert RunConfig.from_file(path).seed == 3


# --- task files -----------------------------------------------------------------------


def _task(tmp_path, data, name="task.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "mutate, match",
    [
        (
            lambda d: d["prompts"][0].update(sft_weigths=d["prompts"][0].pop("sft_weights")),
            r"unknown key 'sft_weigths' in .*prompts\[0\] \(did you mean 'sft_weights'\?\)",
        ),
        (lambda d: d.update(promts=[]), r"unknown key 'promts' .*did you mean 'prompts'"),
        (
            lambda d: d["prompts"][0]["population"].update(wieghts=[1.0]),
            r"unknown key 'wieghts' .*population \(did you mean 'weights'\?\)",
        ),
        (
            lambda d: d["prompts"][0]["messages"][0].update(contnet="x"),
            r"unknown key 'contnet' .*messages\[0\] \(did you mean 'content'\?\)",
        ),
        (
            lambda d: d["prompts"][0]["population"].update(weights="1"),
            r"population\.weights must be numbers, got '1'",
        ),
        (
            lambda d: d["prompts"][0]["population"].update(utilities=[["0", 1.0]]),
            r"population\.utilities must be numbers",
        ),
        (
            lambda d: d["prompts"][0].update(sft_weights=["0.5", 0.5]),
            r"sft_weights must be numbers",
        ),
        (lambda d: d.update(name=["x"]), "name must be a string"),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_task_files_refuse_unknown_keys_and_strings_for_numbers(tmp_path, mutate, match, suffix):
    data = json.loads(json.dumps(TASK))
    mutate(data)
    with pytest.raises(PmrlhfUserError, match=match) as err:
        load_task(_task(tmp_path, data, f"task{suffix}"))
    _one_line(err)


def test_task_yaml_keeps_yes_no_candidates_as_strings(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(
        "prompts:\n- messages: [{role: user, content: Agree}]\n  candidates: [Yes, No]\n"
        "  population: {weights: [1], utilities: [[1e-1, 0]]}\n"
    )
    assert load_task(path).prompts[0].candidates == ("Yes", "No")


# --- run configs ----------------------------------------------------------------------


def _config(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, match",
    [
        ("sedd: 1\n", r"unknown key 'sedd' in config file .*config\.yaml \(did you mean 'seed'"),
        ("rl: {lr_fnal: 0.1}\n", r"unknown key 'lr_fnal' .* under 'rl' \(did you mean 'lr_final'"),
        ("sft: {stpes: 1}\n", r"unknown key 'stpes' .* under 'sft' \(did you mean 'steps'"),
        ("rm: {heldot: 0.1}\n", r"unknown key 'heldot' .* under 'rm' \(did you mean 'heldout'"),
        ("sft: []\n", "sft must be a mapping, got list"),
        ("rl: 3\n", "rl must be a mapping, got int"),
        ("gradient_checkpointing: maybe\n", "gradient_checkpointing must be true or false"),
        ("gradient_checkpointing: yes\n", "gradient_checkpointing must be true or false"),
        ("rl: {lr_final: x}\n", "rl.lr_final must be a number, got 'x'"),
        ("rl: {clip: [0.2]}\n", r"rl.clip must be a number or null, got \[0\.2\]"),
        ("rl: {steps: 2.5}\n", "rl.steps must be an int, got 2.5"),
        ("rl: {beta: '1'}\n", "rl.beta must be a number, got '1'"),
        ("seed: '1'\n", "seed must be an int, got '1'"),
        ("model: 7\n", "model must be a string, got 7"),
        ("lora: [8]\n", "lora must be a mapping"),
        ("rl: {regularizer: pm, alpha: 0.1}\n", "alpha only applies to regularizer='cpm'"),
        ("rl: {regularizer: cpm, alpha: 1.5}\n", r"alpha must lie in the open interval"),
        ("- 1\n", "must be a mapping, got list"),
    ],
)
def test_config_files_are_read_strictly(tmp_path, text, match):
    with pytest.raises(PmrlhfUserError, match=match) as err:
        RunConfig.from_file(_config(tmp_path, text))
    _one_line(err)


def test_config_lora_keys_are_peft_fields(tmp_path):
    pytest.importorskip("peft")
    with pytest.raises(
        PmrlhfUserError, match=r"unknown key 'rr' .* under 'lora' \(did you mean 'r'"
    ):
        RunConfig.from_file(_config(tmp_path, "lora: {rr: 8}\n"))
    assert RunConfig.from_file(_config(tmp_path, "lora: {r: 8}\n")).lora == {"r": 8}


def test_config_reads_3e_5_as_a_float_and_keeps_good_values(tmp_path):
    config = RunConfig.from_file(
        _config(tmp_path, "rl: {lr: 3e-5, clip: null, beta: 2}\nsft: {lr: 1e-4}\n")
    )
    assert config.rl.lr == 3e-05 and config.sft.lr == 1e-04 and config.rl.beta == 2
    assert config.rl.regularizer == "cpm" and config.rl.alpha == 0.1


def test_cli_refuses_a_config_pm_with_alpha_like_its_options(
    tmp_path, monkeypatch, capsys, settings_reaching
):
    import pmrlhf.lm_experiments.commands.single_run as runs
    from pmrlhf.cli import main

    monkeypatch.chdir(tmp_path)  # a default --out would land here
    reached = settings_reaching(runs, "run_one")  # never trains, even where the check fails
    path = _config(
        tmp_path, "model: tiny-llama\ntask: two_answers\nrl: {regularizer: pm, alpha: 0.1}\n"
    )
    tiny = ["--model", "tiny-llama", "--task", "two_answers"]
    assert main(["lm", "run", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    assert main(["lm", "run", *tiny, "--regularizer", "pm", "--alpha", "0.1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("alpha only applies to regularizer='cpm'" in e for e in err)
    assert not reached and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_max_depth_is_the_documented_bound():
    from pmrlhf._yaml import MAX_DEPTH as bound

    assert bound == MAX_DEPTH


LAUGHS = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True)
)


@pytest.mark.parametrize(
    "saved, match",
    [
        (LAUGHS, "aliases"),
        ("[" * 5000 + "]" * 5000, "deeper than"),
        ("- 1\n", "must be a mapping"),
    ],
)  # fmt: skip
def test_lm_trl_reads_its_saved_config_strictly(tmp_path, saved, match):
    pytest.importorskip("transformers")
    from pmrlhf.trl.command import TRAINER_DIR, _check_folder

    (tmp_path / TRAINER_DIR / "checkpoint-1").mkdir(parents=True)
    (tmp_path / "config.yaml").write_text(saved)
    with pytest.raises(PmrlhfUserError, match=match) as err:
        _check_folder(tmp_path, {"seed": 0}, resume=True, restart=False)
    assert _one_line(err).startswith("saved config")
