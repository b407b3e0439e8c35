"""What ``--help`` says: every subcommand, every experiment, optional options as optional."""

import pytest

from pmrlhf.cli import build_parser
from pmrlhf.cli.simulate import EXPERIMENT_NAMES


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_every_subcommand_is_registered(capsys):
    text = _help(capsys)
    for command in ("derive", "check", "simulate", "lm", "reproduce"):
        assert f" {command} " in text, command


def test_simulate_help_lists_every_experiment(capsys):
    from pmrlhf.simulate.experiments import EXPERIMENTS

    assert EXPERIMENT_NAMES == tuple(EXPERIMENTS)
    text = _help(capsys, "simulate")
    for name in EXPERIMENTS:
        assert name in text, name


def test_lm_run_shows_its_config_file_as_optional(capsys):
    text = _help(capsys, "lm", "run")
    assert "[--config FILE]" in text and "optional YAML/JSON" in text
    assert "with a config file" not in _help(capsys, "lm")


def test_reproduce_publishes_only_when_asked(capsys):
    text = _help(capsys, "reproduce")
    assert "[--publish]" in text and "--no-publish" not in text
