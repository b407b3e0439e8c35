"""Random task files and option values through ``pmrlhf lm run`` (tiny model): each ends
as a one-line error with exit status 2 and nothing written, or as a finished run whose
reported numbers are finite. Never a traceback."""

import json
import math

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pmrlhf.cli import main

words = st.text(alphabet="abcdefgh XYZ", min_size=0, max_size=8)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-10, 10),
    st.sampled_from([0.0, 1e300, -1e300, 1e-300]),
    words,  # a string where a number belongs
)


@st.composite
def task_documents(draw, clean: bool):
    """A well-formed task with random values (``clean``), or one with random defects in
    its fields: a wrong shape, a wrong type, an extreme value, an unknown key."""
    if clean:
        pool = ["Yes", "No", "Maybe", " Sure", "Sure"]
        candidates = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=3, unique=True))
        n = len(candidates)
    else:
        candidates = draw(st.lists(words, max_size=3))
        n = draw(st.integers(1, 3))
    values = st.floats(-3, 3) if clean else numbers
    prompt = {
        "messages": [{"role": "user", "content": draw(words) or "Pick one."}],
        "candidates": candidates,
        "population": {
            "weights": [1.0] if clean else draw(st.lists(numbers, max_size=2)),
            "utilities": [draw(st.lists(values, min_size=n, max_size=n))],
        },
    }
    if draw(st.booleans()):
        weights = st.floats(0.1, 1) if clean else numbers
        prompt["sft_weights"] = draw(st.lists(weights, min_size=n, max_size=n))
    document = {"name": "fuzz", "prompts": [prompt]}
    if draw(st.booleans()):
        document["off_candidate_margin"] = draw(st.floats(0.5, 5) if clean else numbers)
    if not clean and draw(st.booleans()):
        document[draw(st.sampled_from(["promts", "sft_weigths", "x"]))] = 1
    return document


@st.composite
def option_values(draw, clean: bool):
    """Valid options (``clean``), or random ones from a list of bad and extreme values."""
    if clean:
        regularizer = draw(st.sampled_from(["kl", "pm", "cpm"]))
        chosen = {"--regularizer": regularizer, "--beta": draw(st.sampled_from(["1", "0.1"]))}
        if regularizer == "cpm":
            chosen["--alpha"] = draw(st.sampled_from(["0.1", "0.5"]))
        return chosen
    bad = {
        "--beta": st.sampled_from(["0", "-1", "nan", "inf", "1e300", "1e-6", "x"]),
        "--alpha": st.sampled_from(["0", "1", "1.5", "nan"]),
        "--regularizer": st.sampled_from(["kl", "pm", "cpm"]),
        "--samples-per-prompt": st.sampled_from(["1", "0", "-3", "100000000", "2.5"]),
    }
    return draw(st.fixed_dictionaries({}, optional=bad))


@st.composite
def cases(draw):
    """A clean task with clean options (a run that must finish), or defects in one."""
    task_clean, options_clean = draw(st.sampled_from([(True, True), (True, False), (False, True)]))
    return draw(task_documents(task_clean)), draw(option_values(options_clean))


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_random_tasks_and_options_end_in_one_line_or_a_finite_run(tmp_path_factory, capsys, case):
    document, chosen = case
    folder = tmp_path_factory.mktemp("fuzz")
    task = folder / "task.yaml"
    task.write_text(yaml.safe_dump(document))
    out = folder / "run"
    args = ["lm", "run", "--model", "tiny-llama", "--task", str(task), "--steps", "1"]
    args += ["--sft-steps", "0", "--out", str(out)]
    if "--samples-per-prompt" not in chosen:
        args += ["--samples-per-prompt", "2"]
    for flag, value in chosen.items():
        args += [flag, value]
    try:
        status = main(args)
    except SystemExit as exit:
        status = exit.code
    err = capsys.readouterr().err
    event(f"exit {status}")
    assert "Traceback" not in err
    if status == 0:
        assert _finite(json.loads((out / "eval.json").read_text()))
    else:
        assert status == 2, err
        assert err.count("\n") == 1, err
        assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())
