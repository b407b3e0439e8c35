"""``lm compare --methods REG:BETA[:ALPHA]``: one method per spec, refused in one line."""

import pytest

from pmrlhf.lm_experiments.commands.compare_config import parse_method, parse_methods
from pmrlhf.lm_experiments.train.method import Method


@pytest.mark.parametrize(
    "spec,expected",
    [("kl:1", Method("KL b=1", "kl", 1.0)), ("pm:0.5", Method("PM b=0.5", "pm", 0.5)),
     ("cpm:1:0.1", Method("cPM b=1 a=0.1", "cpm", 1.0, 0.1)),
     (" CPM:2:0.25 ", Method("cPM b=2 a=0.25", "cpm", 2.0, 0.25))],
)  # fmt: skip
def test_a_spec_gives_the_named_method(spec, expected):
    assert parse_method(spec) == expected


@pytest.mark.parametrize(
    "spec,match",
    [("kl", "REG:BETA"), ("kl:1:2:3", "REG:BETA"), ("dpo:1", "REG:BETA"), ("kl:x", "REG:BETA"),
     ("kl:0", "must be > 0"), ("kl:-1", "must be > 0"), ("kl:nan", "finite"),
     ("cpm:1", "needs an alpha"), ("kl:1:0.1", "takes no alpha"), ("pm:1:0.1", "takes no alpha"),
     ("cpm:1:1.5", r"\(0, 1\)"), ("cpm:1:0", r"\(0, 1\)"), (3, "REG:BETA")],
)  # fmt: skip
def test_a_bad_spec_is_refused_naming_methods(spec, match):
    with pytest.raises(ValueError, match=match) as error:
        parse_method(spec)
    assert "method" in str(error.value)


def test_methods_are_distinct_and_not_empty():
    assert [m.name for m in parse_methods(["kl:1", "cpm:1:0.1", "cpm:1:0.2"])] == [
        "KL b=1", "cPM b=1 a=0.1", "cPM b=1 a=0.2"]  # fmt: skip
    with pytest.raises(ValueError, match="each method once"):
        parse_methods(["kl:1", "kl:1.0"])
    with pytest.raises(ValueError, match="methods"):
        parse_methods([])


@pytest.mark.parametrize(
    "args,match",
    [(["--methods", "cpm:1"], "needs an alpha"), (["--methods", "kl:0"], "> 0"),
     (["--methods", "kl:1", "--betas", "1", "--alphas", "0.1"], "exclude each other")],
)  # fmt: skip
def test_cli_refuses_a_bad_method_in_one_line_before_writing(tmp_path, pmrlhf_here, args, match):
    out = tmp_path / "out"
    status, stderr = pmrlhf_here(
        "lm", "compare", "--quick", "--model", "tiny-llama", "--out", out, *args
    )
    assert status == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert pytest.importorskip("re").search(match, stderr) and not out.exists()


def test_cli_methods_reach_the_comparison(tmp_path, settings_reaching, pmrlhf_here):
    import pmrlhf.lm_experiments as lm

    seen = settings_reaching(lm, "run_compare")
    with pytest.raises(settings_reaching.stop):
        pmrlhf_here("lm", "compare", "--quick", "--model", "tiny-llama", "--out", tmp_path,
                    "--methods", "kl:1", "cpm:1:0.1", "cpm:1:0.2")  # fmt: skip
    assert [m.name for m in seen[0].methods] == ["KL b=1", "cPM b=1 a=0.1", "cPM b=1 a=0.2"]
